import type { ConfState, Entry, HardState, Snapshot } from "./types.ts";

/**
 * The read side of a log store, as the pure core sees it. Calls are
 * synchronous: the core is a synchronous state machine, and the log tail it
 * reads on the hot path is expected to be cached by the backend.
 *
 * Indexes: entries `firstIndex() .. lastIndex()` are readable. `term(i)` is
 * also defined for `i = firstIndex() - 1` (the index of the last snapshot or
 * compaction point). An empty log has `firstIndex() = 1, lastIndex() = 0`
 * and `term(0) = 0`.
 */
export interface RaftLogReader {
  /** The persisted hard state and membership at start-up. */
  initialState(): { readonly hardState: HardState; readonly confState: ConfState };
  firstIndex(): number;
  lastIndex(): number;
  /** Throws {@link CompactedError} below `firstIndex() - 1`, {@link UnavailableError} above `lastIndex()`. */
  term(index: number): number;
  /**
   * Entries in `[lo, hi)`. Returns at least one entry when `lo < hi`, and stops
   * before the total `data` size would exceed `maxBytes`.
   * Throws {@link CompactedError} if `lo < firstIndex()`.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /**
   * The newest snapshot, to send to a follower that is behind the compaction
   * point. Throws {@link SnapshotTemporarilyUnavailableError} if one is being made.
   */
  snapshot(): Snapshot;
}

export { CompactedError, SnapshotTemporarilyUnavailableError, UnavailableError } from "../errors.ts";
