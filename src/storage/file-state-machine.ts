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
import { type KvResult, parseKvCommand, readVarint, varintSize, writeVarint } from "./kv-command.ts";
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
const latin1Write = Buffer.prototype.latin1Write as (this: Uint8Array, s: string, offset: number) => number;
/**
 * Bytes as a string of one char per byte. Keys and values are kept this way:
 * a short string lives on the JavaScript heap and costs a fraction of a
 * Uint8Array, whose separate backing store is the dearest part of applying a
 * write (and, kept by the thousand, weighs on the garbage collector).
 */
const str = (b: Uint8Array, start = 0, end = b.length): string => latin1Slice.call(b, start, end);
function bytes(s: string | undefined): Uint8Array | null {
  if (s === undefined) return null;
  const out = new Uint8Array(s.length);
  latin1Write.call(out, s, 0);
  return out;
}
/** A put's or delete's result: the previous value becomes bytes only if it is read. */
class WithPrevious {
  #prev: string | undefined;
  #bytes: Uint8Array | null | undefined;
  constructor(
    readonly op: "put" | "delete",
    prev: string | undefined,
  ) {
    this.#prev = prev;
  }
  get previous(): Uint8Array | null {
    if (this.#bytes === undefined) this.#bytes = bytes(this.#prev);
    return this.#bytes;
  }
}
const NOOP: KvResult = Object.freeze({ op: "noop" });

/** `read(key)`: the value as of `lastApplied()`, or null. */
export class FileStateMachine extends AbstractStateMachine<KvResult, Uint8Array, Uint8Array | null> {
  readonly snapshots: FileSnapshotStore;
  private map = new Map<string, string>();
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
    return bytes(this.map.get(str(k)));
  }

  get size(): number {
    return this.map.size;
  }

  protected _applyOne(e: Entry): KvResult {
    if (e.type !== EntryType.Normal || e.data.length === 0) return NOOP;
    const cmd = parseKvCommand(e.data);
    if (typeof cmd === "string") return { op: "invalid", reason: cmd };
    const k = str(e.data, cmd.keyStart, cmd.keyEnd);
    const previous = this.map.get(k);
    switch (cmd.op) {
      case "put":
        this.map.set(k, str(e.data, cmd.keyEnd));
        return new WithPrevious("put", previous);
      case "delete":
        this.map.delete(k);
        return new WithPrevious("delete", previous);
      case "get":
        return { op: "get", value: bytes(previous) };
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
        const need = varintSize(k.length) + k.length + varintSize(v.length) + v.length;
        if (pos + need > buf.length && pos > 0) {
          yield buf.subarray(0, pos);
          buf = Buffer.allocUnsafe(Math.max(chunkBytes, need));
          pos = 0;
        }
        if (need > buf.length) buf = Buffer.allocUnsafe(need);
        pos = writeVarint(buf, pos, k.length);
        pos += buf.write(k, pos, "latin1");
        pos = writeVarint(buf, pos, v.length);
        pos += buf.write(v, pos, "latin1");
      }
      if (pos > 0) yield buf.subarray(0, pos);
    }
    return stream();
  }

  protected async _restore(data: AsyncIterable<Uint8Array>): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of data) chunks.push(Buffer.from(c));
    const b = Buffer.concat(chunks);
    const map = new Map<string, string>();
    let p = 0;
    while (p < b.length) {
      const kl = readVarint(b, p);
      if (kl === null || kl[1] + kl[0] > b.length) throw new CorruptionError("kv snapshot", p, "bad key");
      const k = b.toString("latin1", kl[1], kl[1] + kl[0]);
      p = kl[1] + kl[0];
      const vl = readVarint(b, p);
      if (vl === null || vl[1] + vl[0] > b.length) throw new CorruptionError("kv snapshot", p, "bad value");
      map.set(k, b.toString("latin1", vl[1], vl[1] + vl[0]));
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
