/**
 * A LogStore over any ordered key-value store with synchronous point reads and
 * atomic, durable batch writes: the shared core of the LMDB and RocksDB
 * backends (and a short path for yours, see docs/custom-storage.md).
 *
 * Writes collect in an in-memory overlay (visible to reads at once) and reach
 * the store as one atomic batch per `sync()`; syncs issued while a batch is in
 * flight share the next batch (group commit). Keys: entries under their index
 * as 8 big-endian bytes (so they sort numerically), metadata under "m:*".
 */

import { mkdirSync } from "node:fs";
import { ConfigError, CorruptionError, StoppedError } from "../errors.ts";
import type { Entry, EntryType, HardState, SnapshotMetadata } from "../raft/types.ts";
import { EMPTY_HARD_STATE } from "../raft/types.ts";
import { DirLock } from "./file/lock.ts";
import {
  AbstractLogStore,
  EMPTY_SNAPSHOT_METADATA,
  isConfState,
  type LogStoreCapabilities,
  type LogStoreOptions,
  positiveIntOption,
  type RecoveredLog,
  type WriteKind,
} from "./log-store.ts";

export type KvOp =
  | { readonly type: "put"; readonly key: Buffer; readonly value: Uint8Array }
  | { readonly type: "del"; readonly key: Buffer };

/** What a key-value backend must provide. */
export interface KvBackend {
  getSync(key: Buffer): Uint8Array | undefined;
  /** Applies `ops` atomically; resolves once they are durable. */
  write(ops: readonly KvOp[]): Promise<void>;
  close(): Promise<void>;
}

export interface KvLogStoreOptions extends LogStoreOptions {
  /** Unsynced bytes held in the overlay before writes wait for a batch. Default 32 MiB. */
  readonly maxPendingBytes?: number;
  /** Default 64 MiB. */
  readonly maxEntryBytes?: number;
}

export function entryKey(index: number): Buffer {
  const k = Buffer.allocUnsafe(8);
  k.writeUInt32BE(Math.floor(index / 0x1_0000_0000), 0);
  k.writeUInt32BE(index >>> 0, 4);
  return k;
}

const META_HARD_STATE = Buffer.from("m:hs");
const META_SNAPSHOT = Buffer.from("m:snap");
const META_LAST = Buffer.from("m:last");
/** The lowest index whose key a compaction may not have deleted yet (deletes go in bounded batches). */
const META_GC = Buffer.from("m:gc");

function encodeValue(e: Entry): Buffer {
  const b = Buffer.allocUnsafe(9 + e.data.length);
  b.writeUInt32BE(Math.floor(e.term / 0x1_0000_0000), 0);
  b.writeUInt32BE(e.term >>> 0, 4);
  b[8] = e.type;
  b.set(e.data, 9);
  return b;
}

function decodeValue(backend: string, index: number, v: Uint8Array): Entry {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (b.length < 9)
    throw new CorruptionError(
      backend,
      index,
      `log entry ${index} is ${b.length} bytes, under its 9-byte header`,
    );
  const term = b.readUInt32BE(0) * 0x1_0000_0000 + b.readUInt32BE(4);
  const type = b[8]!;
  if (term < 1 || !Number.isSafeInteger(term) || (type !== 0 && type !== 1)) {
    throw new CorruptionError(backend, index, `log entry ${index} has term ${term} and type ${type}`);
  }
  return { index, term, type: type as EntryType, data: Uint8Array.prototype.slice.call(b, 9) };
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}

export abstract class KvLogStore extends AbstractLogStore {
  abstract override readonly capabilities: LogStoreCapabilities;
  private kv: KvBackend | null = null;
  /** Pending entry writes: an Entry to put, null to delete. */
  private overlay = new Map<number, Entry | null>();
  private inflight = new Map<number, Entry | null>();
  private meta = new Map<string, Buffer>();
  private pendingBytes = 0;
  private writing: Promise<void> | null = null;
  private nextBatch: Promise<void> | null = null;
  private failed: Error | null = null;
  /** See META_GC. */
  private gcFrom = 1;
  /** Compactions delete one after another (gcFrom is the frontier of the one before). */
  private gcChain: Promise<void> = Promise.resolve();
  protected readonly maxPendingBytes: number;
  protected readonly maxEntryBytes: number;

  constructor(options: KvLogStoreOptions) {
    super(options);
    this.maxPendingBytes = positiveIntOption("maxPendingBytes", options.maxPendingBytes, 32 * 1024 * 1024);
    this.maxEntryBytes = positiveIntOption("maxEntryBytes", options.maxEntryBytes, 64 * 1024 * 1024);
    if (this.maxEntryBytes > 1024 * 1024 * 1024)
      throw new ConfigError("maxEntryBytes", "must be at most 1 GiB");
  }

  /** Opens the key-value store (and whatever lock it needs). */
  protected abstract openBackend(): Promise<KvBackend>;

  protected async _open(): Promise<RecoveredLog> {
    const kv = await this.openBackend();
    try {
      const { recovered, gcFrom } = this.readMeta(kv);
      this.gcFrom = gcFrom;
      this.kv = kv;
      return recovered;
    } catch (err) {
      // Damaged metadata: release the database (and its lock), so it can be inspected or reopened.
      await kv.close().catch(() => {});
      throw err;
    }
  }

  /**
   * The hard state, snapshot, last index and compaction frontier (m:gc), checked: damage is
   * a CorruptionError, never a bad log.
   */
  private readMeta(kv: KvBackend): { recovered: RecoveredLog; gcFrom: number } {
    const backend = this.capabilities.backend;
    const get = (k: Buffer): unknown => {
      const v = kv.getSync(k);
      if (v === undefined) return undefined;
      try {
        return JSON.parse(Buffer.from(v).toString("utf8"));
      } catch (err) {
        throw new CorruptionError(
          backend,
          0,
          `metadata ${k.toString()} is not JSON: ${(err as Error).message}`,
        );
      }
    };
    const damaged = (what: string, v: unknown) =>
      new CorruptionError(backend, 0, `metadata ${what} is damaged: ${JSON.stringify(v)}`);
    const hs = get(META_HARD_STATE) ?? EMPTY_HARD_STATE;
    const snap = get(META_SNAPSHOT) ?? EMPTY_SNAPSHOT_METADATA;
    const last = get(META_LAST) ?? (snap as SnapshotMetadata).index;
    const isIndex = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
    const h = hs as Record<string, unknown>;
    if (typeof hs !== "object" || hs === null || !isIndex(h.term) || !isIndex(h.vote) || !isIndex(h.commit)) {
      throw damaged("m:hs", hs);
    }
    const s = snap as Record<string, unknown>;
    if (
      typeof snap !== "object" ||
      snap === null ||
      !isIndex(s.index) ||
      !isIndex(s.term) ||
      !isConfState(s.confState)
    ) {
      throw damaged("m:snap", snap);
    }
    if (!isIndex(last) || last < s.index) throw damaged("m:last", last);
    if ((h.commit as number) > last) throw damaged("m:hs (commit beyond the last index)", hs);
    const gcFrom = get(META_GC) ?? s.index + 1;
    if (!isIndex(gcFrom) || gcFrom < 1) throw damaged("m:gc", gcFrom);
    return {
      recovered: { hardState: hs as HardState, snapshot: snap as SnapshotMetadata, lastIndex: last },
      gcFrom,
    };
  }

  protected override _writeGate(_bytes: number, _kind: WriteKind, _largest: number): Promise<void> | null {
    if (this.failed) return Promise.reject(this.failed);
    return this.pendingBytes > this.maxPendingBytes ? this.batch() : null;
  }

  private setEntry(index: number, e: Entry | null): void {
    this.overlay.set(index, e);
    this.pendingBytes += e === null ? 16 : e.data.length + 32;
  }

  private setMeta(key: Buffer, value: unknown): void {
    this.meta.set(key.toString("latin1"), json(value));
  }

  protected _append(entries: readonly Entry[], lastIndexBefore: number): Promise<void> {
    for (const e of entries) this.setEntry(e.index, e);
    const last = entries[entries.length - 1]!.index;
    for (let i = last + 1; i <= lastIndexBefore; i++) this.setEntry(i, null);
    this.setMeta(META_LAST, last);
    return Promise.resolve();
  }

  protected _truncateSuffix(fromIndex: number, lastIndexBefore: number): Promise<void> {
    for (let i = fromIndex; i <= lastIndexBefore; i++) this.setEntry(i, null);
    this.setMeta(META_LAST, fromIndex - 1);
    return this.batch();
  }

  protected _saveHardState(hardState: HardState): Promise<void> {
    this.setMeta(META_HARD_STATE, hardState);
    return Promise.resolve();
  }

  protected async _compact(snapshot: SnapshotMetadata, discardLog: boolean): Promise<void> {
    // The snapshot (and, discarding the log, the new last index) goes in the first batch:
    // from then on no key at or below it is read, so deleting them may take several
    // batches of bounded size, resumed by the next compaction after a crash (m:gc).
    // Keys above the snapshot are left to the appends that will overwrite them: a
    // delete issued later could land after a new entry at the same index.
    this.setMeta(META_SNAPSHOT, snapshot);
    if (discardLog) this.setMeta(META_LAST, snapshot.index);
    // Only keys that may exist: a snapshot far ahead of a short log (a new or lagging
    // follower) must not queue a delete for every index up to it.
    const to = Math.min(snapshot.index, this.lastIndex());
    const run = this.gcChain.then(() => this.deleteThrough(to, snapshot.index));
    this.gcChain = run.catch(() => {});
    return run;
  }

  /** Deletes keys up to `to`; then none is left up to the snapshot at `snapIndex` (beyond `to`, none was written). */
  private async deleteThrough(to: number, snapIndex: number): Promise<void> {
    const perBatch = Math.max(1, Math.floor(this.maxPendingBytes / 16));
    let i = this.gcFrom;
    for (;;) {
      const end = Math.min(to, i + perBatch - 1);
      for (; i <= end; i++) this.setEntry(i, null);
      this.gcFrom = Math.max(this.gcFrom, i > to ? Math.max(i, snapIndex + 1) : i);
      this.setMeta(META_GC, this.gcFrom);
      await this.batch();
      if (i > to) return;
    }
  }

  protected _sync(): Promise<void> {
    return this.batch();
  }

  /** Writes everything pending as one batch; concurrent callers share it. */
  private batch(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.nextBatch) return this.nextBatch;
    const after = this.writing ?? Promise.resolve();
    const p = after.then(() => {
      this.nextBatch = null;
      return this.writeNow();
    });
    this.nextBatch = p;
    return p;
  }

  private writeNow(): Promise<void> {
    const ops: KvOp[] = [];
    for (const [i, e] of this.overlay) {
      ops.push(
        e === null
          ? { type: "del", key: entryKey(i) }
          : { type: "put", key: entryKey(i), value: encodeValue(e) },
      );
    }
    for (const [k, v] of this.meta) ops.push({ type: "put", key: Buffer.from(k, "latin1"), value: v });
    this.inflight = this.overlay;
    this.overlay = new Map();
    this.meta = new Map();
    this.pendingBytes = 0;
    const w = (ops.length === 0 ? this.kv!.write([]) : this.kv!.write(ops)).then(
      () => {
        this.inflight = new Map();
        this.writing = null;
      },
      (err: unknown) => {
        // The overlay is gone and the store did not take it: reads would lie.
        this.failed = err instanceof Error ? err : new Error(String(err));
        this.writing = null;
        throw this.failed;
      },
    );
    this.writing = w;
    return w;
  }

  protected async _close(): Promise<void> {
    try {
      // A compaction still deleting in batches finishes first.
      await this.gcChain;
      if (!this.failed) await this.batch();
    } finally {
      await this.kv?.close();
      this.kv = null;
    }
  }

  private getEntry(index: number): Entry {
    const o = this.overlay.get(index) ?? this.inflight.get(index);
    if (o) return o;
    if (!this.kv) throw new StoppedError(`${this.capabilities.backend} log store`);
    const v = this.kv.getSync(entryKey(index));
    if (v === undefined)
      throw new CorruptionError(this.capabilities.backend, index, `log entry ${index} is missing`);
    return decodeValue(this.capabilities.backend, index, v);
  }

  protected _readEntriesSync(lo: number, hi: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.getEntry(i);
      if (out.length > 0 && e.term < out[out.length - 1]!.term) {
        throw new CorruptionError(
          this.capabilities.backend,
          i,
          `log entry ${i} has term ${e.term}, below the entry before it`,
        );
      }
      if (out.length > 0 && size + e.data.length > maxBytes) break;
      out.push(e);
      size += e.data.length;
    }
    return out;
  }

  protected _readTermSync(index: number): number {
    return this.getEntry(index).term;
  }
}

export interface DirKvLogStoreOptions extends KvLogStoreOptions {
  /** The backend's directory (created if missing). */
  readonly dir: string;
}

/** A persistent key-value backend kept in one directory, with one writing process at a time. */
export abstract class DirKvLogStore extends KvLogStore {
  readonly capabilities: LogStoreCapabilities;
  readonly dir: string;

  constructor(backend: string, options: DirKvLogStoreOptions) {
    super(options);
    if (typeof options.dir !== "string" || options.dir === "") throw new ConfigError("dir", "must be a path");
    this.dir = options.dir;
    this.capabilities = Object.freeze({
      backend,
      persistent: true,
      durableSync: true,
      crashSimulation: false,
      maxEntryBytes: this.maxEntryBytes,
    });
  }

  /** Creates the directory and takes its lock (the backend may allow many processes; a Raft log must have one writer). */
  protected lockDir(): DirLock {
    mkdirSync(this.dir, { recursive: true });
    return DirLock.acquire(this.dir);
  }
}
