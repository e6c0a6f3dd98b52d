/**
 * The in-memory backend, for tests and the deterministic simulator. With
 * `volatileUntilSync` it behaves like a disk with a write cache: writes are
 * visible at once but reach the {@link MemoryDisk} only when synced, and
 * `crash()` loses everything written since the last sync.
 */

import { LockedError } from "../errors.ts";
import type { Entry, HardState, SnapshotMetadata } from "../raft/types.ts";
import { EMPTY_HARD_STATE } from "../raft/types.ts";
import {
  AbstractLogStore,
  EMPTY_SNAPSHOT_METADATA,
  type LogStoreCapabilities,
  type LogStoreOptions,
  type RecoveredLog,
} from "./log-store.ts";

type Op =
  | { readonly kind: "append"; readonly entries: readonly Entry[] }
  | { readonly kind: "truncate"; readonly fromIndex: number }
  | { readonly kind: "hardState"; readonly hardState: HardState }
  | { readonly kind: "snapshot"; readonly snapshot: SnapshotMetadata; readonly discardLog: boolean };

/** A log as plain arrays: `entries[k]` has index `snapshot.index + 1 + k`. */
class MemoryLog {
  snapshot: SnapshotMetadata = EMPTY_SNAPSHOT_METADATA;
  entries: Entry[] = [];
  hardState: HardState = EMPTY_HARD_STATE;

  get lastIndex(): number {
    return this.snapshot.index + this.entries.length;
  }

  apply(op: Op): void {
    switch (op.kind) {
      case "append": {
        const first = op.entries[0]!.index;
        this.entries.length = first - this.snapshot.index - 1;
        for (const e of op.entries) this.entries.push(e);
        break;
      }
      case "truncate":
        this.entries.length = Math.min(this.entries.length, op.fromIndex - this.snapshot.index - 1);
        break;
      case "hardState":
        this.hardState = op.hardState;
        break;
      case "snapshot":
        this.entries = op.discardLog ? [] : this.entries.slice(op.snapshot.index - this.snapshot.index);
        this.snapshot = op.snapshot;
        break;
    }
  }

  clone(): MemoryLog {
    const c = new MemoryLog();
    c.snapshot = this.snapshot;
    c.entries = this.entries.slice();
    c.hardState = this.hardState;
    return c;
  }
}

/** The durable side of a memory store: pass the same disk to a new engine to "reopen" it. */
export class MemoryDisk {
  /** @internal */
  readonly log = new MemoryLog();
  /** @internal set while an engine has it open */
  inUse = false;
  /** How many syncs reached this disk (the simulator can assert on it). */
  syncCount = 0;
}

export interface MemoryStorageOptions extends LogStoreOptions {
  /** Shared durable state; a fresh one by default. */
  readonly disk?: MemoryDisk;
  /** Writes reach the disk only on sync (and are lost by `crash()`). Default false. */
  readonly volatileUntilSync?: boolean;
  /** Default 64 MiB. */
  readonly maxEntryBytes?: number;
}

export class MemoryStorageEngine extends AbstractLogStore {
  readonly capabilities: LogStoreCapabilities;
  readonly disk: MemoryDisk;
  private readonly volatile: boolean;
  private work = new MemoryLog();
  private pending: Op[] = [];

  constructor(options: MemoryStorageOptions = {}) {
    // Every entry stays in memory anyway: a cache would only duplicate it.
    super({ cacheMaxEntries: 1, cacheMaxBytes: 1, ...options });
    this.disk = options.disk ?? new MemoryDisk();
    this.volatile = options.volatileUntilSync ?? false;
    this.capabilities = Object.freeze({
      backend: "memory",
      persistent: true,
      durableSync: false,
      crashSimulation: this.volatile,
      maxEntryBytes: options.maxEntryBytes ?? 64 * 1024 * 1024,
    });
  }

  protected async _open(): Promise<RecoveredLog> {
    if (this.disk.inUse) throw new LockedError("memory disk", "another MemoryStorageEngine");
    this.disk.inUse = true;
    this.work = this.disk.log.clone();
    return { hardState: this.work.hardState, snapshot: this.work.snapshot, lastIndex: this.work.lastIndex };
  }

  private record(op: Op, durable: boolean): Promise<void> {
    this.work.apply(op);
    this.pending.push(op);
    if (!this.volatile || durable) this.flush();
    return Promise.resolve();
  }

  private flush(): void {
    for (const op of this.pending) this.disk.log.apply(op);
    this.pending = [];
  }

  protected _append(entries: readonly Entry[]): Promise<void> {
    return this.record({ kind: "append", entries }, false);
  }

  protected _truncateSuffix(fromIndex: number): Promise<void> {
    return this.record({ kind: "truncate", fromIndex }, true);
  }

  protected _saveHardState(hardState: HardState): Promise<void> {
    return this.record({ kind: "hardState", hardState }, false);
  }

  protected _compact(snapshot: SnapshotMetadata, discardLog: boolean): Promise<void> {
    return this.record({ kind: "snapshot", snapshot, discardLog }, true);
  }

  protected async _sync(): Promise<void> {
    this.flush();
    this.disk.syncCount++;
  }

  protected async _close(): Promise<void> {
    this.flush();
    this.disk.inUse = false;
  }

  protected override async _crash(): Promise<void> {
    this.pending = [];
    this.disk.inUse = false;
  }

  protected _readEntriesSync(lo: number, hi: number, maxBytes: number): Entry[] {
    const base = this.work.snapshot.index + 1;
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.work.entries[i - base]!;
      size += e.data.length;
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  protected _readTermSync(index: number): number {
    return this.work.entries[index - this.work.snapshot.index - 1]!.term;
  }
}
