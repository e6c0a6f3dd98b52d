/**
 * The log as the core reads it on a running node: entries and hard state from
 * the LogStore, and the newest state-machine snapshot as the snapshot to send
 * to followers behind the compaction point. (The store's own compaction point
 * may lag that snapshot by `keepTailEntries`, which is the point of a tail.)
 */

import { SnapshotTemporarilyUnavailableError } from "../errors.ts";
import type { RaftLogReader } from "../raft/storage.ts";
import type { ConfState, Entry, HardState, Snapshot } from "../raft/types.ts";
import type { LogStore } from "../storage/log-store.ts";

export class NodeLogReader implements RaftLogReader {
  private readonly store: LogStore;
  private readonly latest: () => Snapshot | null;

  constructor(store: LogStore, latest: () => Snapshot | null) {
    this.store = store;
    this.latest = latest;
  }

  initialState(): { readonly hardState: HardState; readonly confState: ConfState } {
    return this.store.initialState();
  }
  firstIndex(): number {
    return this.store.firstIndex();
  }
  lastIndex(): number {
    return this.store.lastIndex();
  }
  term(index: number): number {
    return this.store.term(index);
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.store.entries(lo, hi, maxBytes);
  }
  snapshot(): Snapshot {
    const s = this.latest();
    if (!s) throw new SnapshotTemporarilyUnavailableError();
    return s;
  }
}
