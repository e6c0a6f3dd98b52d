/**
 * The Raft log as the core sees it: durable entries behind a
 * {@link RaftLogReader}, followed by unstable entries not yet persisted.
 */

import { CompactedError, invariant, UnavailableError } from "../errors.ts";
import type { RaftLogReader } from "./storage.ts";
import type { Entry, Snapshot } from "./types.ts";
import { Unstable } from "./unstable.ts";

/**
 * What an entry costs beyond its data when encoded (index, term, type, data
 * length: at most 21 bytes with varints), counted against the byte limits of
 * a message or an apply batch so that many small or empty entries are bounded
 * too, not only large ones.
 */
export const ENTRY_OVERHEAD_BYTES = 24;

/** An entry's size against the byte limits of messages, inflight windows and apply batches. */
export function entryBytes(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD_BYTES;
}

export class RaftLog {
  readonly storage: RaftLogReader;
  readonly unstable: Unstable;
  /** Highest index known committed. */
  committed: number;
  /** Highest index handed to the application and acknowledged by advance(). */
  applied: number;
  private readonly maxApplyBytes: number;

  constructor(storage: RaftLogReader, maxApplyBytes: number) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
    this.maxApplyBytes = maxApplyBytes;
  }

  /** See RaftConfig.applyUnpersisted. */
  applyUnpersisted = false;
  /**
   * The application's applied index at start (RaftConfig.applied): entries up
   * to it are never handed out again, even when they are committed only
   * later (it applied them before they were durable locally).
   */
  applyFloor = 0;

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** The highest index that is durable and consistent with the in-memory log. */
  persistedIndex(): number {
    // A pending snapshot replaces the whole log: nothing of the new log is durable yet.
    if (this.unstable.snapshot) return 0;
    return Math.min(this.storage.lastIndex(), this.unstable.offset - 1);
  }

  term(i: number): number {
    const dummy = this.firstIndex() - 1;
    if (i < dummy) throw new CompactedError(i, dummy + 1);
    if (i > this.lastIndex()) throw new UnavailableError(i, this.lastIndex());
    const t = this.unstable.maybeTerm(i);
    if (t !== null) return t;
    return this.storage.term(i);
  }

  /** The term at `i`, or 0 when it is compacted or beyond the log (hot path: no exceptions). */
  termOrZero(i: number): number {
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return 0;
    const t = this.unstable.maybeTerm(i);
    if (t !== null) return t;
    try {
      return this.storage.term(i);
    } catch (e) {
      // The storage may have compacted concurrently with this call.
      if (e instanceof CompactedError || e instanceof UnavailableError) return 0;
      throw e;
    }
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  matchTerm(i: number, term: number): boolean {
    return this.termOrZero(i) === term && (term !== 0 || i === 0 || i === this.firstIndex() - 1);
  }

  /** Raft §5.4.1: is a candidate's log at least as up to date as ours? */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The follower side of AppendEntries: if our log matches (prevIndex,
   * prevTerm), append what is new (truncating any conflict) and advance the
   * commit index. Returns the index of the last new entry, or null on mismatch.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, ents: readonly Entry[]): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      invariant(
        ci > this.committed,
        () => `entry ${ci} conflicts with committed entry (committed ${this.committed})`,
      );
      this.append(ents.slice(ci - prevIndex - 1));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /** The first entry whose term differs from ours (or that we lack), or 0. */
  private findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * For fast backtracking: the largest index <= `index` whose term is <=
   * `term`, with that term. Used by followers (to hint) and leaders (to jump).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; ; i--) {
      let t: number;
      try {
        t = this.term(i);
      } catch (e) {
        if (e instanceof CompactedError || e instanceof UnavailableError) return { index: i, term: 0 };
        throw e;
      }
      if (t <= term) return { index: i, term: t };
    }
  }

  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    invariant(after >= this.committed, () => `append after ${after} is below committed ${this.committed}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Entries from `lo` to the end of the log, at most `maxBytes` (at least one). */
  entriesFrom(lo: number, maxBytes: number): Entry[] {
    if (lo > this.lastIndex()) return [];
    return this.slice(lo, this.lastIndex() + 1, maxBytes);
  }

  /** Entries in [lo, hi), at most `maxBytes` (always at least one if lo < hi). */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    const first = this.firstIndex();
    if (lo < first) throw new CompactedError(lo, first);
    invariant(hi <= this.lastIndex() + 1, () => `slice [${lo}, ${hi}) beyond last index ${this.lastIndex()}`);
    if (lo >= hi) return [];
    const off = this.unstable.offset;
    let out: Entry[] = [];
    let bytes = 0;
    if (lo < off) {
      const stableHi = Math.min(hi, off);
      out = this.storage.entries(lo, stableHi, maxBytes);
      invariant(out.length > 0, () => `storage returned no entries for [${lo}, ${stableHi})`);
      // Storage limits data bytes only: count the overhead too, keeping at least one entry.
      let n = 0;
      for (; n < out.length; n++) {
        const size = entryBytes(out[n]!);
        if (n > 0 && bytes + size > maxBytes) break;
        bytes += size;
      }
      if (n < out.length) return out.slice(0, n);
      if (out.length < stableHi - lo) return out;
    }
    if (hi > off) {
      const part = this.unstable.slice(Math.max(lo, off), hi);
      for (const e of part) {
        const size = entryBytes(e);
        if (out.length > 0 && bytes + size > maxBytes) break;
        out.push(e);
        bytes += size;
      }
    }
    return out;
  }

  /** The first index not yet handed out to apply. */
  private applyFrom(): number {
    return Math.max(this.applied + 1, this.firstIndex(), this.applyFloor + 1);
  }

  /** The highest index that may be handed out to apply. */
  private applyLimit(): number {
    return this.applyUnpersisted ? this.committed : Math.min(this.committed, this.persistedIndex());
  }

  /** Committed entries (durable locally unless applyUnpersisted) not yet handed to the application. */
  nextCommittedEntries(): Entry[] {
    if (this.unstable.snapshot) return [];
    const lo = this.applyFrom();
    const hi = this.applyLimit() + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxApplyBytes);
  }

  hasNextCommittedEntries(): boolean {
    if (this.unstable.snapshot) return false;
    return this.applyLimit() >= this.applyFrom();
  }

  commitTo(index: number): void {
    if (this.committed >= index) return;
    invariant(index <= this.lastIndex(), () => `commit ${index} is beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    invariant(
      index >= this.applied && index <= this.committed,
      () => `applied ${index} outside [${this.applied}, ${this.committed}]`,
    );
    this.applied = index;
  }

  /** Commits `index` only if it is from `term` (Raft §5.4.2: never by counting replicas of older terms). */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.termOrZero(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }
}
