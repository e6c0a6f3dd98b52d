/**
 * FileStateMachine: the default state machine of the quick start, a
 * replicated key-value map (commands in kv-command.ts) that persists through
 * snapshot files in its directory.
 *
 * Durability model: the map lives in memory; `checkpoint()` writes it as a
 * snapshot (atomically, see snapshot-store.ts). On `open()` the newest
 * snapshot is loaded and `lastApplied` is its index; the runtime then
 * re-applies the committed log entries after it, which the LogStore keeps
 * until a snapshot covers them (compact only up to a checkpointed index).
 */

import { ConfigError, CorruptionError, InvalidArgumentError } from "../errors.ts";
import type { ConfState, Entry } from "../raft/types.ts";
import { EntryType } from "../raft/types.ts";
import { decodeKvCommand, type KvResult, readVarint, varintSize, writeVarint } from "./kv-command.ts";
import { FileSnapshotStore, type SnapshotInfo } from "./snapshot-store.ts";
import { AbstractStateMachine } from "./state-machine.ts";

export interface FileStateMachineOptions {
  readonly dir: string;
  /** Snapshots kept. Default 2. */
  readonly keepSnapshots?: number;
  /** Bytes per chunk of a snapshot stream. Default 256 KiB. */
  readonly snapshotChunkBytes?: number;
}

const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string;
/** A key as a map key: one char per byte, read straight from the bytes (no Buffer wrapper). */
const key = (k: Uint8Array): string => latin1Slice.call(k, 0, k.length);
const NOOP: KvResult = Object.freeze({ op: "noop" });

/** `read(key)`: the value as of `lastApplied()`, or null. */
export class FileStateMachine extends AbstractStateMachine<KvResult, Uint8Array, Uint8Array | null> {
  readonly snapshots: FileSnapshotStore;
  private map = new Map<string, Uint8Array>();
  private readonly chunkBytes: number;

  constructor(options: FileStateMachineOptions) {
    super();
    this.snapshots = new FileSnapshotStore({ dir: options.dir, keep: options.keepSnapshots ?? 2 });
    if (options.snapshotChunkBytes !== undefined && options.snapshotChunkBytes < 1) {
      throw new ConfigError("snapshotChunkBytes", "must be positive");
    }
    this.chunkBytes = options.snapshotChunkBytes ?? 256 * 1024;
  }

  /** Loads the newest snapshot, if any. */
  async open(): Promise<void> {
    const latest = this.snapshots.latest();
    if (latest)
      await this.restore(this.snapshots.read(latest.index), { index: latest.index, term: latest.term });
  }

  async close(): Promise<void> {}

  /** A local read: as fresh as `lastApplied()` (use ReadIndex for linearizable reads). */
  read(k: Uint8Array): Uint8Array | null {
    return this.map.get(key(k)) ?? null;
  }

  get size(): number {
    return this.map.size;
  }

  protected _applyOne(e: Entry): KvResult {
    if (e.type !== EntryType.Normal || e.data.length === 0) return NOOP;
    const cmd = decodeKvCommand(e.data);
    if (typeof cmd === "string") return { op: "invalid", reason: cmd };
    const k = key(cmd.key);
    const previous = this.map.get(k) ?? null;
    switch (cmd.op) {
      case "put":
        this.map.set(k, cmd.value);
        return { op: "put", previous };
      case "delete":
        this.map.delete(k);
        return { op: "delete", previous };
      case "get":
        return { op: "get", value: previous };
    }
  }

  protected _skipped(): KvResult {
    return NOOP;
  }

  snapshot(): AsyncIterable<Uint8Array> {
    // Values are never mutated in place, so a shallow copy is a point-in-time image.
    const image = [...this.map.entries()];
    const chunkBytes = this.chunkBytes;
    async function* stream(): AsyncIterable<Uint8Array> {
      let buf = Buffer.allocUnsafe(chunkBytes);
      let pos = 0;
      for (const [k, v] of image) {
        const kb = Buffer.from(k, "latin1");
        const need = varintSize(kb.length) + kb.length + varintSize(v.length) + v.length;
        if (pos + need > buf.length && pos > 0) {
          yield buf.subarray(0, pos);
          buf = Buffer.allocUnsafe(Math.max(chunkBytes, need));
          pos = 0;
        }
        if (need > buf.length) buf = Buffer.allocUnsafe(need);
        pos = writeVarint(buf, pos, kb.length);
        buf.set(kb, pos);
        pos += kb.length;
        pos = writeVarint(buf, pos, v.length);
        buf.set(v, pos);
        pos += v.length;
      }
      if (pos > 0) yield buf.subarray(0, pos);
    }
    return stream();
  }

  protected async _restore(data: AsyncIterable<Uint8Array>): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of data) chunks.push(Buffer.from(c));
    const b = Buffer.concat(chunks);
    const map = new Map<string, Uint8Array>();
    let p = 0;
    while (p < b.length) {
      const kl = readVarint(b, p);
      if (kl === null || kl[1] + kl[0] > b.length) throw new CorruptionError("kv snapshot", p, "bad key");
      const k = b.toString("latin1", kl[1], kl[1] + kl[0]);
      p = kl[1] + kl[0];
      const vl = readVarint(b, p);
      if (vl === null || vl[1] + vl[0] > b.length) throw new CorruptionError("kv snapshot", p, "bad value");
      map.set(k, new Uint8Array(b.subarray(vl[1], vl[1] + vl[0])));
      p = vl[1] + vl[0];
    }
    // Swap only once the whole image parsed (and its checksum passed): never a half state.
    this.map = map;
  }

  /**
   * Writes the current state as a snapshot file, with `confState` as its
   * metadata (JSON), and returns it: `{ index, term, confState }` is what to
   * pass to `LogStore.compact` next.
   */
  async checkpoint(confState: ConfState): Promise<SnapshotInfo> {
    const { index, term } = this.lastApplied();
    if (index === 0) throw new InvalidArgumentError("nothing applied yet: no snapshot to take");
    const meta = new TextEncoder().encode(JSON.stringify({ confState }));
    return this.snapshots.write(index, term, meta, this.snapshot());
  }
}
