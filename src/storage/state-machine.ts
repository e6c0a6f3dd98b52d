/**
 * The application side of a replicated node: a deterministic state machine
 * fed committed entries in log order, and the snapshots that let the log be
 * compacted and lagging followers catch up.
 *
 * The runtime (src/node/) guarantees:
 * - `apply` is called with committed entries in index order, each index at
 *   most once per process lifetime, never concurrently with another `apply`,
 *   `snapshot` or `restore`. After a restart it replays entries above
 *   `lastApplied()`: a state machine that persists its state must persist
 *   `lastApplied` atomically with it (or not persist at all and rely on
 *   snapshots + replay).
 * - Entries with empty data (a new leader's no-op) and membership entries are
 *   passed too, so `lastApplied` can advance; a state machine ignores them
 *   (`entry.type !== EntryType.Normal || entry.data.length === 0`).
 * - `read` may run between applies, never during one.
 */

import type { Entry } from "../raft/types.ts";

export interface StateMachine {
  /** Opens / recovers the state machine. Called once before anything else. */
  open(): Promise<void>;
  /** The index of the last entry applied (0 if none). */
  lastApplied(): number;
  /** Applies committed entries in order; returns one result per entry (empty for no-ops). */
  apply(entries: readonly Entry[]): Promise<readonly Uint8Array[]>;
  /** Answers a query against the current state (no side effects). */
  read(query: Uint8Array): Promise<Uint8Array>;
  /** Streams the state as of `lastApplied()`. The state must not change while it streams. */
  snapshot(): AsyncIterable<Uint8Array>;
  /** Replaces the whole state with a snapshot taken at `index`; `lastApplied()` becomes `index`. */
  restore(chunks: AsyncIterable<Uint8Array>, index: number): Promise<void>;
  close(): Promise<void>;
}

/** A stored snapshot: its Raft metadata plus where its bytes are. */
export interface SnapshotInfo {
  readonly index: number;
  readonly term: number;
  /** Encoded by the runtime (membership + member addresses); opaque to the store. */
  readonly meta: Uint8Array;
  readonly sizeBytes: number;
  /** CRC32C of the data bytes. */
  readonly crc32c: number;
}

/**
 * Snapshot files: written atomically (temp file, fsync, rename, fsync dir),
 * read back in chunks, the newest K kept.
 */
export interface SnapshotStore {
  open(): Promise<void>;
  /** Writes a complete snapshot; it becomes visible only once durable. Returns its info. */
  write(
    index: number,
    term: number,
    meta: Uint8Array,
    data: AsyncIterable<Uint8Array>,
  ): Promise<SnapshotInfo>;
  /** Snapshots present, newest first. */
  list(): Promise<readonly SnapshotInfo[]>;
  latest(): Promise<SnapshotInfo | null>;
  /** Streams a snapshot's data in chunks of at most `chunkBytes`, verifying its checksum at the end. */
  read(index: number, chunkBytes: number): AsyncIterable<Uint8Array>;
  /** Deletes all but the newest `keep` snapshots. */
  prune(keep: number): Promise<void>;
  close(): Promise<void>;
}
