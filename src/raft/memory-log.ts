/**
 * A log kept in memory that implements the core's {@link RaftLogReader}, in
 * the shape of etcd's MemoryStorage: entries plus the snapshot they follow.
 * Used by the core's tests, the core benchmark and the simulator; durable
 * backends live in src/storage/.
 */

import {
  CompactedError,
  invariant,
  SnapshotTemporarilyUnavailableError,
  UnavailableError,
} from "../errors.ts";
import type { RaftLogReader } from "./storage.ts";
import {
  type ConfState,
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  type Entry,
  type HardState,
  type Snapshot,
} from "./types.ts";

/** What {@link MemoryRaftLog.saveState} captures. */
export interface MemoryRaftLogState {
  readonly hardState: HardState;
  readonly snap: Snapshot;
  readonly ents: readonly Entry[];
}

export class MemoryRaftLog implements RaftLogReader {
  hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot;
  /** entries[0] is the last snapshot's (index, term); real entries follow. */
  private ents: Entry[];
  /** Set while a snapshot is "being made": snapshot() throws then. */
  snapshotUnavailable = false;

  constructor(confState: ConfState = EMPTY_CONF_STATE) {
    this.snap = { metadata: { index: 0, term: 0, confState }, data: new Uint8Array(0) };
    this.ents = [{ index: 0, term: 0, type: 0, data: new Uint8Array(0) }];
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  term(i: number): number {
    const off = this.ents[0]!.index;
    if (i < off) throw new CompactedError(i, off + 1);
    if (i - off >= this.ents.length) throw new UnavailableError(i, this.lastIndex());
    return this.ents[i - off]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const off = this.ents[0]!.index;
    if (lo <= off) throw new CompactedError(lo, off + 1);
    invariant(
      hi <= this.lastIndex() + 1,
      () => `entries [${lo}, ${hi}) beyond last index ${this.lastIndex()}`,
    );
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - off]!;
      if (out.length > 0 && bytes + e.data.length > maxBytes) break;
      out.push(e);
      bytes += e.data.length;
    }
    return out;
  }

  snapshot(): Snapshot {
    if (this.snapshotUnavailable) throw new SnapshotTemporarilyUnavailableError();
    return this.snap;
  }

  /** Appends (truncating any conflicting suffix), as a runtime does with a Ready's entries. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const lastNew = entries[entries.length - 1]!.index;
    if (lastNew < first) return; // all compacted already
    const ents = first > entries[0]!.index ? entries.slice(first - entries[0]!.index) : entries;
    const off = ents[0]!.index - this.ents[0]!.index;
    invariant(off <= this.ents.length, () => `gap: appending ${ents[0]!.index} after ${this.lastIndex()}`);
    if (off < this.ents.length) this.ents.length = off;
    for (const e of ents) this.ents.push(e);
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  /** A copy of everything it holds, for a simulated disk to go back to ({@link restoreState}). */
  saveState(): MemoryRaftLogState {
    return { hardState: this.hardState, snap: this.snap, ents: [...this.ents] };
  }

  restoreState(s: MemoryRaftLogState): void {
    this.hardState = s.hardState;
    this.snap = s.snap;
    this.ents = [...s.ents];
  }

  /** Installs a snapshot (from a leader), replacing the whole log. */
  applySnapshot(s: Snapshot): void {
    if (s.metadata.index <= this.snap.metadata.index) return;
    this.snap = s;
    this.ents = [{ index: s.metadata.index, term: s.metadata.term, type: 0, data: new Uint8Array(0) }];
  }

  /** Records a snapshot taken locally at `index` (<= applied) and drops the entries it covers. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    invariant(
      index > this.snap.metadata.index && index <= this.lastIndex(),
      `snapshot index ${index} out of range`,
    );
    this.snap = { metadata: { index, term: this.term(index), confState }, data };
    return this.snap;
  }

  /** Discards entries before `index` (which stays readable as the new dummy entry). */
  compact(index: number): void {
    const off = this.ents[0]!.index;
    if (index <= off) return;
    invariant(index <= this.lastIndex(), `compact ${index} beyond last index ${this.lastIndex()}`);
    const i = index - off;
    const dummy = { index, term: this.ents[i]!.term, type: 0 as const, data: new Uint8Array(0) };
    this.ents = [dummy, ...this.ents.slice(i + 1)];
  }
}
