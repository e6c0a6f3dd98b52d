/**
 * The LogStore contract: the interface, its options and capabilities, and the
 * validation helpers backends share. The base class is abstract-log-store.ts;
 * log-store.ts re-exports both.
 *
 * Shape (after abstract-level): the public methods validate and normalize,
 * keep the small in-memory mirror the synchronous reads need (first/last
 * index, hard state, snapshot metadata, the tail cache), then call `_hooks`
 * that each backend implements. A backend never sees an invalid request.
 *
 * Write semantics, the part a runtime must get right:
 * - `append` and `saveHardState` take effect at once for every reader (the
 *   synchronous reader agrees with them the moment the call returns) and are
 *   durable only after a later `sync()` resolves. Many writes share one sync:
 *   that is group commit.
 * - `truncateSuffix`, `compact` and `installSnapshot` are durable when their
 *   promise resolves.
 * - Writes are applied in call order, even when some wait (backpressure).
 */

import { ConfigError, InvalidArgumentError } from "../errors.ts";
import type { RaftLogReader } from "../raft/storage.ts";
import {
  type ConfState,
  EMPTY_CONF_STATE,
  type Entry,
  type HardState,
  type SnapshotMetadata,
} from "../raft/types.ts";

/** What a backend can do; the conformance suite and runtimes branch on it. */
export interface LogStoreCapabilities {
  /** Backend name, for logs and metrics. */
  readonly backend: string;
  /** Data survives `close()` and a later open of the same location. */
  readonly persistent: boolean;
  /** `sync()` is a real durability barrier against power loss (fsync or equivalent). */
  readonly durableSync: boolean;
  /** The store offers `crash()`: drop every write not covered by a completed `sync()`. */
  readonly crashSimulation: boolean;
  /** The largest `data` of a single entry the backend accepts. */
  readonly maxEntryBytes: number;
}

/** Supplies snapshot bytes for {@link RaftLogReader.snapshot}; see docs/custom-storage.md. */
export type SnapshotDataSource = (metadata: SnapshotMetadata) => Uint8Array;

export interface LogStore extends RaftLogReader {
  readonly capabilities: LogStoreCapabilities;
  /** Opens (and recovers) the store. Must be called once before anything else. */
  open(): Promise<void>;
  /** Flushes and syncs pending writes, then releases every resource (files, locks). Idempotent. */
  close(): Promise<void>;

  /**
   * Appends contiguous entries. If the first index is at or below `lastIndex()`,
   * the conflicting suffix is replaced (Raft's log-matching overwrite). Entries
   * at or below the snapshot index are skipped: they are committed and, by the
   * log matching property, already equal. Durable after the next `sync()`.
   */
  append(entries: readonly Entry[]): Promise<void>;
  /** Removes entries `>= fromIndex`. Durable when resolved. */
  truncateSuffix(fromIndex: number): Promise<void>;
  /** Durable after the next `sync()`. */
  saveHardState(hardState: HardState): Promise<void>;
  hardState(): HardState;
  /** The newest snapshot recorded by `compact` or `installSnapshot` (index 0 if none). */
  snapshotMetadata(): SnapshotMetadata;
  /**
   * Records a snapshot taken locally at `snapshot.index` and discards entries
   * `<= snapshot.index`. Requires `snapshot.index <= hardState().commit` and the
   * matching term. Durable when resolved.
   */
  compact(snapshot: SnapshotMetadata): Promise<void>;
  /**
   * Records a snapshot received from the leader. If the log holds an entry
   * with the snapshot's index and term, the entries after it are kept
   * (Raft §7); otherwise the whole log is discarded. Durable when resolved.
   */
  installSnapshot(snapshot: SnapshotMetadata): Promise<void>;
  /** Resolves once every write issued before the call is durable. */
  sync(): Promise<void>;

  /** The synchronous view the pure core reads (this store itself). */
  reader(): RaftLogReader;
  /** Where `snapshot()` gets the snapshot bytes; without one, `data` is empty. */
  attachSnapshotData(source: SnapshotDataSource | null): void;
}

/** A store that can simulate a crash (see {@link LogStoreCapabilities.crashSimulation}). */
export interface CrashableLogStore extends LogStore {
  /** Loses unsynced writes and closes the store, as a power cut would. */
  crash(): Promise<void>;
}

export interface LogStoreOptions {
  /** Newest entries kept in memory for synchronous reads. Default 8192. */
  readonly cacheMaxEntries?: number;
  /** Data bytes of those entries. Default 16 MiB. */
  readonly cacheMaxBytes?: number;
}

export const LOG_STORE_DEFAULTS = {
  cacheMaxEntries: 8192,
  cacheMaxBytes: 16 * 1024 * 1024,
} as const;

/** Which write a backend's gate is asked about ("compact" keeps the log; "snapshot" installs one, which may discard it). */
export type WriteKind = "append" | "hardState" | "truncate" | "compact" | "snapshot" | "sync";

/** What a backend found on open. */
export interface RecoveredLog {
  readonly hardState: HardState;
  readonly snapshot: SnapshotMetadata;
  /** Entries `snapshot.index + 1 .. lastIndex` are readable. */
  readonly lastIndex: number;
}

export const EMPTY_SNAPSHOT_METADATA: SnapshotMetadata = Object.freeze({
  index: 0,
  term: 0,
  confState: EMPTY_CONF_STATE,
});

export function positiveIntOption(key: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(key, `must be a positive integer, got ${v}`);
  return v;
}

export function validateHardState(hs: HardState): void {
  for (const k of ["term", "vote", "commit"] as const) {
    if (!Number.isSafeInteger(hs[k]) || hs[k] < 0) {
      throw new InvalidArgumentError(`hard state ${k} must be a non-negative integer, got ${hs[k]}`);
    }
  }
}

export function validateSnapshotMetadata(m: SnapshotMetadata): void {
  if (!Number.isSafeInteger(m.index) || m.index < 1 || !Number.isSafeInteger(m.term) || m.term < 1) {
    throw new InvalidArgumentError(
      `snapshot index and term must be positive integers (${m.index}/${m.term})`,
    );
  }
}

/** Whether `x` has the shape of a ConfState (positive integer ids; read back from disk or the wire). */
export function isConfState(x: unknown): x is ConfState {
  if (typeof x !== "object" || x === null) return false;
  const cs = x as Record<string, unknown>;
  const ids = (v: unknown) => Array.isArray(v) && v.every((id) => Number.isSafeInteger(id) && id > 0);
  return (
    ids(cs.voters) &&
    ids(cs.learners) &&
    ids(cs.votersOutgoing) &&
    ids(cs.learnersNext) &&
    typeof cs.autoLeave === "boolean"
  );
}
