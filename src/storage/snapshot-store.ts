/**
 * SnapshotStore: snapshot files written atomically, read back in chunks.
 *
 * File `snap-<index>-<term>.snap`:
 *   "TSRS" | u32 LE metaLength | meta (opaque) | data ... |
 *   u64 LE dataLength | u32 LE crc32c(meta ‖ data) | "TSRE"
 *
 * A snapshot is streamed to a temp file, fsynced, renamed into place and the
 * directory fsynced, so after a crash it either exists complete or not at
 * all. Readers verify the checksum as they stream and fail with a
 * CorruptionError at the end if it does not match: a consumer must not commit
 * what it restored until the stream has ended without error.
 */

import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { ConfigError, CorruptionError, InvalidArgumentError, ResourceExhaustedError } from "../errors.ts";
import { crc32c } from "./crc32c.ts";
import { fsyncDir, wrapIoError } from "./file/fsutil.ts";
import type { SnapshotDataSource } from "./log-store.ts";

export interface SnapshotInfo {
  readonly index: number;
  readonly term: number;
  /** Opaque metadata stored with the snapshot (a runtime keeps the ConfState and member addresses here). */
  readonly meta: Uint8Array;
  /** Size of the data (not counting framing and metadata). */
  readonly sizeBytes: number;
  readonly path: string;
}

export interface SnapshotStore {
  open(): Promise<void>;
  close(): Promise<void>;
  /** Writes a snapshot atomically and durably (replacing one at the same index). */
  write(
    index: number,
    term: number,
    meta: Uint8Array,
    data: AsyncIterable<Uint8Array>,
  ): Promise<SnapshotInfo>;
  /** The snapshot's data in chunks, checksum-verified by the end of the stream. */
  read(index: number, chunkBytes?: number): AsyncIterable<Uint8Array>;
  latest(): SnapshotInfo | null;
  /** Newest first. */
  list(): SnapshotInfo[];
  /** Deletes all but the newest `keep` and those at the indexes in `alsoKeep`. */
  prune(keep: number, alsoKeep?: readonly number[]): Promise<void>;
}

export interface FileSnapshotStoreOptions {
  readonly dir: string;
  /** If set, prune to the newest `keep` after every write. Default: prune only when asked. */
  readonly keep?: number;
  /** Read chunk size. Default 1 MiB. */
  readonly chunkBytes?: number;
  /** Largest snapshot `dataSource()` will load into memory for the core. Default 64 MiB. */
  readonly maxInlineBytes?: number;
}

const HEAD = Buffer.from("TSRS");
const TAIL = Buffer.from("TSRE");
const TRAILER_BYTES = 16;

function fileName(index: number, term: number): string {
  return `snap-${String(index).padStart(16, "0")}-${String(term).padStart(16, "0")}.snap`;
}

export class FileSnapshotStore implements SnapshotStore {
  readonly dir: string;
  private readonly keep: number | undefined;
  private readonly chunkBytes: number;
  private readonly maxInlineBytes: number;
  private infos: SnapshotInfo[] = [];

  constructor(options: FileSnapshotStoreOptions) {
    this.dir = options.dir;
    this.keep = options.keep;
    this.chunkBytes = options.chunkBytes ?? 1024 * 1024;
    this.maxInlineBytes = options.maxInlineBytes ?? 64 * 1024 * 1024;
    if (this.keep !== undefined && (!Number.isSafeInteger(this.keep) || this.keep < 1)) {
      throw new ConfigError("keep", "must be at least 1");
    }
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes < 1)
      throw new ConfigError("chunkBytes", "must be positive");
    mkdirSync(this.dir, { recursive: true });
    for (const n of readdirSync(this.dir)) {
      if (n.endsWith(".tmp")) {
        // An interrupted write: never renamed into place, so never acknowledged.
        void rm(join(this.dir, n), { force: true });
      } else if (n.startsWith("snap-") && n.endsWith(".snap")) {
        this.infos.push(this.readInfo(join(this.dir, n)));
      }
    }
    this.infos.sort((a, b) => b.index - a.index);
  }

  async open(): Promise<void> {}

  async close(): Promise<void> {}

  private readInfo(path: string): SnapshotInfo {
    const fd = openSync(path, "r");
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(8);
      if (
        size < 8 + TRAILER_BYTES ||
        readSync(fd, head, 0, 8, 0) !== 8 ||
        !head.subarray(0, 4).equals(HEAD)
      ) {
        throw new CorruptionError(path, 0, "not a tsraft snapshot");
      }
      const metaLen = head.readUInt32LE(4);
      if (8 + metaLen + TRAILER_BYTES > size)
        throw new CorruptionError(path, 4, "metadata length out of range");
      const meta = Buffer.alloc(metaLen);
      readSync(fd, meta, 0, metaLen, 8);
      const trailer = Buffer.alloc(TRAILER_BYTES);
      readSync(fd, trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES);
      const dataBytes = trailer.readUInt32LE(0) + trailer.readUInt32LE(4) * 0x1_0000_0000;
      if (!trailer.subarray(12).equals(TAIL) || 8 + metaLen + dataBytes + TRAILER_BYTES !== size) {
        throw new CorruptionError(path, size - TRAILER_BYTES, "bad snapshot trailer");
      }
      const name = /^snap-(\d{16})-(\d{16})\.snap$/.exec(basename(path));
      if (!name) throw new CorruptionError(path, 0, "snapshot file name is not snap-<index>-<term>.snap");
      return {
        index: Number(name[1]),
        term: Number(name[2]),
        meta: new Uint8Array(meta),
        sizeBytes: dataBytes,
        path,
      };
    } finally {
      closeSync(fd);
    }
  }

  async write(
    index: number,
    term: number,
    appMeta: Uint8Array,
    data: AsyncIterable<Uint8Array>,
  ): Promise<SnapshotInfo> {
    if (!Number.isSafeInteger(index) || index < 1 || !Number.isSafeInteger(term) || term < 1) {
      throw new InvalidArgumentError(`snapshot index and term must be positive integers (${index}/${term})`);
    }
    const path = join(this.dir, fileName(index, term));
    const tmp = `${path}.${process.pid}.tmp`;
    const meta = Buffer.from(appMeta);
    let crc = crc32c(meta);
    let dataBytes = 0;
    const fh = await open(tmp, "w");
    try {
      const head = Buffer.alloc(8);
      HEAD.copy(head);
      head.writeUInt32LE(meta.length, 4);
      await fh.write(head);
      await fh.write(meta);
      for await (const chunk of data) {
        crc = crc32c(chunk, crc);
        dataBytes += chunk.length;
        await fh.write(chunk);
      }
      const trailer = Buffer.alloc(TRAILER_BYTES);
      trailer.writeUInt32LE(dataBytes >>> 0, 0);
      trailer.writeUInt32LE(Math.floor(dataBytes / 0x1_0000_0000), 4);
      trailer.writeUInt32LE(crc, 8);
      TAIL.copy(trailer, 12);
      await fh.write(trailer);
      await fh.datasync();
      await fh.close();
      await rename(tmp, path);
      await fsyncDir(this.dir);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw wrapIoError(`writing snapshot ${path}`, err);
    }
    const info: SnapshotInfo = { index, term, meta: new Uint8Array(meta), sizeBytes: dataBytes, path };
    this.infos = [info, ...this.infos.filter((i) => i.index !== index)].sort((a, b) => b.index - a.index);
    if (this.keep !== undefined) await this.prune(this.keep);
    return info;
  }

  async *read(index: number, chunkBytes = this.chunkBytes): AsyncIterable<Uint8Array> {
    const info = this.infos.find((i) => i.index === index);
    if (!info) throw new InvalidArgumentError(`no snapshot at index ${index}`);
    const fh = await open(info.path, "r");
    try {
      const head = Buffer.alloc(8);
      await fh.read(head, 0, 8, 0);
      const metaLen = head.readUInt32LE(4);
      const meta = Buffer.alloc(metaLen);
      await fh.read(meta, 0, metaLen, 8);
      let crc = crc32c(meta);
      let pos = 8 + metaLen;
      const end = pos + info.sizeBytes;
      while (pos < end) {
        const chunk = Buffer.alloc(Math.min(chunkBytes, end - pos));
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
        if (bytesRead !== chunk.length) throw new CorruptionError(info.path, pos, "snapshot file is short");
        crc = crc32c(chunk, crc);
        pos += bytesRead;
        if (pos === end) {
          const trailer = Buffer.alloc(TRAILER_BYTES);
          await fh.read(trailer, 0, TRAILER_BYTES, end);
          if (trailer.readUInt32LE(8) !== crc)
            throw new CorruptionError(info.path, end + 8, "snapshot checksum mismatch");
        }
        yield chunk;
      }
      if (info.sizeBytes === 0) {
        const trailer = Buffer.alloc(TRAILER_BYTES);
        await fh.read(trailer, 0, TRAILER_BYTES, end);
        if (trailer.readUInt32LE(8) !== crc)
          throw new CorruptionError(info.path, end + 8, "snapshot checksum mismatch");
      }
    } finally {
      await fh.close();
    }
  }

  /**
   * A {@link SnapshotDataSource} for `LogStore.attachSnapshotData`: loads the
   * snapshot matching the log's metadata synchronously (the core's read is
   * synchronous). Snapshots above `maxInlineBytes` must be streamed by the
   * runtime instead; this throws ResourceExhaustedError for them.
   */
  dataSource(): SnapshotDataSource {
    return (m) => {
      const info = this.infos.find((i) => i.index === m.index && i.term === m.term);
      if (!info)
        throw new CorruptionError(this.dir, m.index, `no snapshot file for index ${m.index} term ${m.term}`);
      if (info.sizeBytes > this.maxInlineBytes)
        throw new ResourceExhaustedError("inline snapshot", this.maxInlineBytes);
      const fd = openSync(info.path, "r");
      try {
        const head = Buffer.alloc(8);
        readSync(fd, head, 0, 8, 0);
        const metaLen = head.readUInt32LE(4);
        const all = Buffer.alloc(metaLen + info.sizeBytes + TRAILER_BYTES);
        let got = 0;
        while (got < all.length) {
          const n = readSync(fd, all, got, all.length - got, 8 + got);
          if (n === 0) throw new CorruptionError(info.path, 8 + got, "snapshot file is short");
          got += n;
        }
        const crc = crc32c(all, 0, 0, metaLen + info.sizeBytes);
        if (all.readUInt32LE(metaLen + info.sizeBytes + 8) !== crc) {
          throw new CorruptionError(
            info.path,
            8 + metaLen + info.sizeBytes + 8,
            "snapshot checksum mismatch",
          );
        }
        return new Uint8Array(all.buffer, all.byteOffset + metaLen, info.sizeBytes);
      } finally {
        closeSync(fd);
      }
    };
  }

  latest(): SnapshotInfo | null {
    return this.infos[0] ?? null;
  }

  list(): SnapshotInfo[] {
    return [...this.infos];
  }

  async prune(keep: number, alsoKeep: readonly number[] = []): Promise<void> {
    if (!Number.isSafeInteger(keep) || keep < 1)
      throw new InvalidArgumentError("retain at least one snapshot");
    const kept = (s: SnapshotInfo, i: number) => i < keep || alsoKeep.includes(s.index);
    const dead = this.infos.filter((s, i) => !kept(s, i));
    this.infos = this.infos.filter(kept);
    for (const d of dead) await rm(d.path, { force: true });
    if (dead.length > 0) await fsyncDir(this.dir);
  }
}
