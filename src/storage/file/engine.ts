/**
 * FileStorageEngine: the default LogStore, a segmented append-only WAL.
 *
 * Layout of the data directory:
 *   LOCK                       pid of the owning process (see lock.ts)
 *   MANIFEST                   first live segment + snapshot metadata (manifest.ts)
 *   wal-<seq>.log              preallocated segments of CRC-framed records (record.ts)
 *   prealloc-*.tmp             the next segment, being zero-filled in the background
 *
 * Writes are encoded and placed (segment, offset) synchronously, queued, and
 * written in order by one flush loop; `sync()` queues a barrier, and every
 * barrier that is queued while an fdatasync runs is served by the next one
 * (group commit). Truncation is logical (a Truncate record, or an entry whose
 * index is not past the end): nothing is ever overwritten in place, so a torn
 * write can only damage the unsynced tail.
 *
 * Opening (recovery: every record CRC-checked, sealed segments on worker
 * threads, torn tails repaired, any other damage a CorruptionError) is in
 * recovery.ts.
 *
 * A failed write (EIO, ENOSPC in the middle of a segment) poisons the engine:
 * every later call fails with the same StorageError until it is reopened,
 * because the in-memory view may be ahead of the disk. A full disk when a new
 * segment is needed is caught earlier, while preallocating: that write is
 * refused with a StorageError, nothing changes, and it succeeds once space is
 * back.
 */

import { closeSync, fdatasync, mkdirSync, rmSync, writev } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { ConfigError, CorruptionError, invariant, StorageError } from "../../errors.ts";
import type { Entry, HardState, SnapshotMetadata } from "../../raft/types.ts";
import { EMPTY_HARD_STATE } from "../../raft/types.ts";
import {
  AbstractLogStore,
  type LogStoreCapabilities,
  type LogStoreOptions,
  positiveIntOption,
  type RecoveredLog,
  type WriteKind,
} from "../log-store.ts";
import { fsyncDir, wrapIoError } from "./fsutil.ts";
import { DirLock } from "./lock.ts";
import type { LogIndex } from "./log-index.ts";
import { type Manifest, writeManifest } from "./manifest.ts";
import {
  decodeEntry,
  ENTRY_OVERHEAD_BYTES,
  encodeEntry,
  encodeEntryInto,
  encodeHardState,
  encodeSegmentHeader,
  encodeTruncate,
  HEADER_BYTES,
  RecordKind,
} from "./record.ts";
import { recoverWal, type StorageLogger } from "./recovery.ts";
import {
  type PreallocPace,
  preallocateFile,
  type Segment,
  SegmentCursor,
  segmentFileName,
} from "./segment.ts";
import { type Deferred, deferred, MAX_WRITEV_BYTES, type QueueItem, writeAllAt } from "./write-queue.ts";

const _writevAsync = promisify(writev);
const fdatasyncAsync = promisify(fdatasync);

export type { StorageLogger };

const defaultLogger: StorageLogger = {
  warn: (obj, msg) => process.emitWarning(`${msg} ${JSON.stringify(obj)}`, "TsraftStorageWarning"),
  info: () => {},
};

export interface FileStorageOptions extends LogStoreOptions {
  /** The data directory (created if missing). */
  readonly dir: string;
  /** Size of each preallocated segment. Default 64 MiB, minimum 64 KiB. */
  readonly segmentSizeBytes?: number;
  /** The largest entry accepted. Default 16 MiB, capped by the segment size. */
  readonly maxEntryBytes?: number;
  /** Queued, unwritten bytes before writes wait (backpressure). Default 32 MiB. */
  readonly maxPendingBytes?: number;
  /** Sparse index density: one file offset kept per this many entries. Default 32. */
  readonly indexStrideEntries?: number;
  readonly logger?: StorageLogger;
  /**
   * Worker threads that CRC-check sealed segments in parallel on open.
   * "auto" (the default): min(4, cores) once there are 48 MiB of sealed
   * segments, else none; 0: scan on the calling thread only.
   */
  readonly recoveryWorkers?: number | "auto";
}

/** Room kept free at the end of every segment for small records (hard state, truncate). */
const SMALL_RECORD_RESERVE_BYTES = 256;
export class FileStorageEngine extends AbstractLogStore {
  readonly capabilities: LogStoreCapabilities;
  readonly dir: string;
  private readonly segmentSizeBytes: number;
  private readonly maxPendingBytes: number;
  private readonly stride: number;
  private readonly logger: StorageLogger;
  private readonly recoveryWorkers: number | "auto";

  private lock: DirLock | null = null;
  private manifest!: Manifest;
  private segments: Segment[] = [];
  private writeSeg!: Segment;
  private index!: LogIndex<Segment>;
  /** The newest hard state handed to the WAL; copied into every new segment. */
  private walHardState: HardState = EMPTY_HARD_STATE;

  private pool: { path: string; fd: number }[] = [];
  private preallocating: Promise<void> | null = null;
  /** The pace of the background preallocation in progress (a waiting write makes it urgent). */
  private preallocPace: PreallocPace = { urgent: false };
  private preallocCounter = 0;

  private queue: QueueItem[] = [];
  private queueHead = 0;
  private pendingBytes = 0;
  private flushing: Promise<void> | null = null;
  /** The flush loop runs (set synchronously at its start; `flushing` is set only if it did not end at once). */
  private flushActive = false;
  /** The flush loop will start at the end of this event-loop turn, for the plain writes queued in it. */
  private flushStartQueued = false;
  private failed: Error | null = null;

  constructor(options: FileStorageOptions) {
    super(options);
    if (typeof options.dir !== "string" || options.dir === "") throw new ConfigError("dir", "must be a path");
    this.dir = options.dir;
    this.segmentSizeBytes = positiveIntOption("segmentSizeBytes", options.segmentSizeBytes, 64 * 1024 * 1024);
    if (this.segmentSizeBytes < 64 * 1024)
      throw new ConfigError("segmentSizeBytes", "must be at least 64 KiB");
    this.maxPendingBytes = positiveIntOption("maxPendingBytes", options.maxPendingBytes, 32 * 1024 * 1024);
    this.stride = positiveIntOption("indexStrideEntries", options.indexStrideEntries, 32);
    const maxEntry = positiveIntOption("maxEntryBytes", options.maxEntryBytes, 16 * 1024 * 1024);
    this.logger = options.logger ?? defaultLogger;
    const rw = options.recoveryWorkers ?? "auto";
    if (rw !== "auto" && (!Number.isSafeInteger(rw) || rw < 0)) {
      throw new ConfigError("recoveryWorkers", `must be "auto" or a non-negative integer, got ${rw}`);
    }
    this.recoveryWorkers = rw;
    this.capabilities = Object.freeze({
      backend: "file",
      persistent: true,
      durableSync: true,
      crashSimulation: false,
      maxEntryBytes: Math.min(
        maxEntry,
        this.segmentSizeBytes - 2 * SMALL_RECORD_RESERVE_BYTES - ENTRY_OVERHEAD_BYTES,
      ),
    });
  }

  /**
   * Resolves once the next segment is preallocated (it is made in the
   * background after open and after each roll). Benchmarks and latency-
   * sensitive starts wait for it so 64 MiB of zeros do not compete with syncs.
   */
  whenPreallocated(): Promise<void> {
    return this.preallocating ?? Promise.resolve();
  }

  /** Live segment files (for tests and metrics). */
  segmentCount(): number {
    return this.segments.length;
  }

  // ---- open / recovery -------------------------------------------------------

  protected async _open(): Promise<RecoveredLog> {
    mkdirSync(this.dir, { recursive: true });
    this.lock = DirLock.acquire(this.dir);
    try {
      return await this.recover();
    } catch (err) {
      this.closeAllFds();
      this.lock.release();
      this.lock = null;
      throw err;
    }
  }

  private async recover(): Promise<RecoveredLog> {
    const r = await recoverWal({
      dir: this.dir,
      stride: this.stride,
      logger: this.logger,
      workers: this.recoveryWorkers,
    });
    this.manifest = r.manifest;
    this.segments = r.segments;
    this.index = r.index;
    const hs = r.hardState;
    this.walHardState = hs;
    const manifest = r.manifest;
    const base = manifest.snapshot.index;
    const last = this.index.lastIndex;

    if (this.segments.length === 0) {
      const seq = manifest.firstSegmentSeq;
      const path = join(this.dir, segmentFileName(seq));
      const fd = await preallocateFile(`${path}.new.tmp`, this.segmentSizeBytes);
      await rename(`${path}.new.tmp`, path);
      await fsyncDir(this.dir);
      this.segments.push({
        seq,
        path,
        fd,
        sizeBytes: this.segmentSizeBytes,
        writePos: 0,
        flushedPos: 0,
        unflushed: [],
      });
    }
    this.writeSeg = this.segments[this.segments.length - 1]!;
    // In the background: opening must not wait for 64 MiB of zeros; the write
    // gate waits for it only if a write actually needs the next segment.
    void this.startPrealloc();
    if (this.writeSeg.writePos === 0) {
      this.put(encodeSegmentHeader(this.writeSeg.seq, last + 1, false, this.writeSeg.sizeBytes));
      this.put(encodeHardState(hs));
      await this.sync_();
    }
    return { hardState: hs, snapshot: manifest.snapshot, lastIndex: Math.max(last, base) };
  }

  // ---- the write path --------------------------------------------------------

  protected override _writeGate(bytes: number, kind: WriteKind, largest: number): Promise<void> | null {
    if (this.failed) return Promise.reject(this.failed);
    if (this.pendingBytes > this.maxPendingBytes) {
      // Over the bound: write now (the loop may not have started yet in this event-loop
      // turn) and wait for it, so writes not awaited in a row cannot queue without limit.
      if (!this.flushActive) this.startFlush();
      if (this.flushing) return this.flushing;
    }
    const seg = this.writeSeg;
    let segmentsNeeded: number;
    if (kind === "snapshot") {
      // A snapshot install that discards the log starts a new segment.
      segmentsNeeded = 1;
    } else if (kind === "compact") {
      // Compaction writes the manifest, nothing to a segment: waiting for a spare one (a
      // 64 MiB preallocation) would only hold every append behind it.
      segmentsNeeded = 0;
    } else if (kind !== "append") {
      // Small records may use the reserve kept at the end of every segment.
      segmentsNeeded = seg.writePos + 64 <= seg.sizeBytes ? 0 : 1;
    } else {
      const room = seg.sizeBytes - seg.writePos - SMALL_RECORD_RESERVE_BYTES;
      const usable = this.segmentSizeBytes - 2 * SMALL_RECORD_RESERVE_BYTES;
      // Entries are never split: a segment the batch rolls past holds more than `usable -
      // largest` of it (or the next entry would have fitted).
      segmentsNeeded = bytes <= room ? 0 : Math.ceil(bytes / Math.max(1, usable - largest));
    }
    if (this.pool.length >= segmentsNeeded) return null;
    return this.startPrealloc(segmentsNeeded, true);
  }

  /**
   * Keeps `target` preallocated segments ready; returns when they are (or
   * preallocation failed). `urgent`: a write waits for it, so no more pacing.
   */
  private startPrealloc(target = 1, urgent = false): Promise<void> {
    if (this.preallocating) {
      if (urgent) this.preallocPace.urgent = true;
      return this.preallocating;
    }
    if (this.pool.length >= target) return Promise.resolve();
    const pace: PreallocPace = { urgent };
    this.preallocPace = pace;
    const run = async () => {
      while (this.pool.length < target && this.status !== "closed") {
        const path = join(this.dir, `prealloc-${process.pid}-${this.preallocCounter++}.tmp`);
        const fd = await preallocateFile(path, this.segmentSizeBytes, pace);
        this.pool.push({ path, fd });
      }
    };
    const p = run().finally(() => {
      this.preallocating = null;
    });
    this.preallocating = p;
    // A background failure is reported to the write that needs the segment, not here.
    p.catch(() => undefined);
    return p;
  }

  private checkHealthy(): void {
    if (this.failed) throw this.failed;
  }

  /** Places a record at the end of the write segment, rolling to a fresh one if it does not fit. */
  private put(buf: Buffer, small = false): void {
    const seg = this.writeSeg;
    const limit = seg.sizeBytes - (small ? 0 : SMALL_RECORD_RESERVE_BYTES);
    if (seg.writePos + buf.length > limit) {
      this.roll(false);
      this.put(buf, small);
      return;
    }
    this.enqueueWrite(seg, buf);
  }

  private enqueueWrite(seg: Segment, buf: Buffer): number {
    const pos = seg.writePos;
    seg.writePos += buf.length;
    seg.unflushed.push({ pos, buf });
    this.pendingBytes += buf.length;
    this.enqueue({ kind: "write", seg, pos, buf });
    return pos;
  }

  private roll(resetsLog: boolean): void {
    const fresh = this.pool.shift();
    invariant(fresh !== undefined, "no preallocated segment (the write gate must ensure one)");
    const from = this.writeSeg;
    const seq = from.seq + 1;
    const to: Segment = {
      seq,
      path: join(this.dir, segmentFileName(seq)),
      fd: fresh.fd,
      sizeBytes: this.segmentSizeBytes,
      writePos: 0,
      flushedPos: 0,
      unflushed: [],
    };
    this.segments.push(to);
    this.writeSeg = to;
    this.enqueue({ kind: "roll", from, to, tmpPath: fresh.path });
    this.enqueueWrite(to, encodeSegmentHeader(seq, this.index.lastIndex + 1, resetsLog, to.sizeBytes));
    this.enqueueWrite(to, encodeHardState(this.walHardState));
    this.startPrealloc();
  }

  private enqueue(item: QueueItem): void {
    this.queue.push(item);
    if (this.flushActive) return;
    if (item.kind === "write") {
      // Plain writes (nobody waits for them to be durable: a commit index, say)
      // wait for the end of this event-loop turn, to go out in one writev with
      // whatever follows them and not to delay the work of this turn (answering
      // the proposals just committed); a sync (or any other item) starts the loop now.
      if (!this.flushStartQueued) {
        this.flushStartQueued = true;
        setImmediate(() => {
          this.flushStartQueued = false;
          this.startFlush();
        });
      }
      return;
    }
    this.startFlush();
  }

  /**
   * Runs the flush loop. It proceeds synchronously as far as it can: the
   * queued writes (up to SYNC_WRITE_MAX_BYTES) are in the page cache and the
   * fdatasync behind them is under way when this returns, so a caller that
   * goes on to apply a batch does not hold the disk back meanwhile.
   */
  private startFlush(): void {
    if (this.flushActive || this.queueHead >= this.queue.length) return;
    const p = this.flushLoop();
    if (this.flushActive) this.flushing = p;
  }

  protected _append(entries: readonly Entry[], lastIndexBefore: number): Promise<void> {
    this.checkHealthy();
    const first = entries[0]!.index;
    if (first <= lastIndexBefore) this.index.truncateFrom(first);
    let total = 0;
    for (const e of entries) total += ENTRY_OVERHEAD_BYTES + e.data.length;
    const seg = this.writeSeg;
    if (seg.writePos + total <= seg.sizeBytes - SMALL_RECORD_RESERVE_BYTES) {
      // The common case: the whole batch fits; one buffer, one queued write.
      const buf = Buffer.allocUnsafe(total);
      let off = 0;
      for (const e of entries) {
        this.index.add(e.index, e.term, seg, seg.writePos + off);
        off = encodeEntryInto(buf, off, e);
      }
      this.enqueueWrite(seg, buf);
      return Promise.resolve();
    }
    for (const e of entries) {
      const buf = encodeEntry(e);
      this.put(buf);
      this.index.add(e.index, e.term, this.writeSeg, this.writeSeg.writePos - buf.length);
    }
    return Promise.resolve();
  }

  protected _truncateSuffix(fromIndex: number): Promise<void> {
    this.checkHealthy();
    this.put(encodeTruncate(fromIndex), true);
    this.index.truncateFrom(fromIndex);
    return this.sync_();
  }

  protected _saveHardState(hardState: HardState): Promise<void> {
    this.checkHealthy();
    this.put(encodeHardState(hardState), true);
    this.walHardState = hardState;
    return Promise.resolve();
  }

  protected _compact(snapshot: SnapshotMetadata, discardLog: boolean): Promise<void> {
    this.checkHealthy();
    if (discardLog) {
      this.index.reset(snapshot.index);
      this.roll(true);
    } else {
      this.index.compactThrough(snapshot.index);
    }
    const first = discardLog ? this.writeSeg : (this.index.oldestSegment() ?? this.writeSeg);
    const manifest: Manifest = { version: 1, firstSegmentSeq: first.seq, snapshot };
    const d = deferred();
    this.enqueue({ kind: "manifest", seg: this.writeSeg, manifest, done: d.done });
    return d.promise;
  }

  protected _sync(): Promise<void> {
    this.checkHealthy();
    return this.sync_();
  }

  private sync_(): Promise<void> {
    const d = deferred();
    this.enqueue({ kind: "sync", seg: this.writeSeg, done: d.done });
    return d.promise;
  }

  private async flushLoop(): Promise<void> {
    this.flushActive = true;
    // Barriers taken off the queue and not yet answered: a failure answers them too.
    let waiters: Deferred[] = [];
    try {
      while (this.queueHead < this.queue.length) {
        const item = this.queue[this.queueHead]!;
        switch (item.kind) {
          case "write": {
            const p = this.flushWrites();
            if (p) await p;
            break;
          }
          case "sync": {
            // Group commit: write everything queued up to the next non-write item,
            // then one fdatasync answers every sync among it.
            waiters = [];
            const seg = item.seg;
            while (this.queueHead < this.queue.length) {
              const it = this.queue[this.queueHead]!;
              if (it.kind === "sync" && it.seg === seg) {
                waiters.push(it.done);
                this.queueHead++;
              } else if (it.kind === "write" && it.seg === seg) {
                const p = this.flushWrites();
                if (p) await p;
              } else break;
            }
            await fdatasyncAsync(seg.fd).catch((err) => {
              throw wrapIoError(`fdatasync of ${seg.path}`, err);
            });
            for (const w of waiters) w.resolve();
            waiters = [];
            break;
          }
          case "roll":
            this.queueHead++;
            await fdatasyncAsync(item.from.fd);
            await rename(item.tmpPath, item.to.path);
            await fsyncDir(this.dir);
            break;
          case "manifest": {
            this.queueHead++;
            waiters = [item.done];
            await fdatasyncAsync(item.seg.fd);
            await writeManifest(join(this.dir, "MANIFEST"), item.manifest);
            this.manifest = item.manifest;
            const dead = this.segments.filter((s) => s.seq < item.manifest.firstSegmentSeq);
            this.segments = this.segments.filter((s) => s.seq >= item.manifest.firstSegmentSeq);
            for (const s of dead) {
              closeSync(s.fd);
              await unlink(s.path);
            }
            if (dead.length > 0) await fsyncDir(this.dir);
            item.done.resolve();
            waiters = [];
            break;
          }
        }
        if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.queueHead);
          this.queueHead = 0;
        }
      }
    } catch (err) {
      this.poison(err);
      for (const w of waiters) w.reject(this.failed);
    } finally {
      // Synchronously after the last emptiness check: a later enqueue starts a new loop.
      this.queue = [];
      this.queueHead = 0;
      this.flushing = null;
      this.flushActive = false;
    }
  }

  /**
   * Writes the run of consecutive queued writes to one segment with writev
   * calls: done on return (undefined) up to SYNC_WRITE_MAX_BYTES, else a promise.
   */
  private flushWrites(): Promise<void> | undefined {
    const first = this.queue[this.queueHead] as Extract<QueueItem, { kind: "write" }>;
    const seg = first.seg;
    const bufs: Buffer[] = [];
    let bytes = 0;
    while (this.queueHead < this.queue.length && bytes < MAX_WRITEV_BYTES) {
      const it = this.queue[this.queueHead]!;
      if (it.kind !== "write" || it.seg !== seg || it.pos !== first.pos + bytes) break;
      bufs.push(it.buf);
      bytes += it.buf.length;
      this.queueHead++;
    }
    const written = (): void => {
      seg.flushedPos = first.pos + bytes;
      this.pendingBytes -= bytes;
      let drop = 0;
      while (drop < seg.unflushed.length && seg.unflushed[drop]!.pos < seg.flushedPos) drop++;
      seg.unflushed.splice(0, drop);
    };
    const pending = writeAllAt(seg, bufs, bytes, first.pos);
    if (pending) return pending.then(written);
    written();
    return undefined;
  }

  private poison(err: unknown): void {
    const e =
      err instanceof StorageError || err instanceof CorruptionError
        ? err
        : new StorageError(`WAL write failed; reopen the store to recover: ${String(err)}`, { cause: err });
    this.failed ??= e;
    this.logger.warn({ dir: this.dir, err: String(err) }, "file log store failed; it must be reopened");
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const it = this.queue[i]!;
      if (it.kind === "sync" || it.kind === "manifest") it.done.reject(this.failed);
    }
    this.queue = [];
    this.queueHead = 0;
  }

  // ---- reads -----------------------------------------------------------------

  protected _readTermSync(index: number): number {
    return this.index.term(index);
  }

  protected _readEntriesSync(lo: number, hi: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let size = 0;
    let i = lo;
    while (i < hi) {
      const { run, offset, skip } = this.index.locate(i);
      const cursor = new SegmentCursor(run.segment);
      const runEnd = run.start + run.count;
      let pos = offset;
      let toSkip = skip;
      while (i < hi && i < runEnd) {
        const r = cursor.record(pos);
        pos += HEADER_BYTES + r.payloadBytes;
        if (r.buf[r.payload] !== RecordKind.Entry) continue;
        if (toSkip > 0) {
          toSkip--;
          continue;
        }
        const e = decodeEntry(r.buf, r.payload, r.payloadBytes);
        if (e.index !== i) {
          throw new CorruptionError(
            run.segment.path,
            pos - HEADER_BYTES - r.payloadBytes,
            `expected entry ${i}`,
          );
        }
        if (out.length > 0 && size + e.data.length > maxBytes) return out;
        out.push(e);
        size += e.data.length;
        i++;
      }
    }
    return out;
  }

  // ---- close -----------------------------------------------------------------

  protected async _close(): Promise<void> {
    try {
      if (!this.failed) await this.sync_();
      // Closing: finish the segment being zeroed at full speed rather than paced.
      this.preallocPace.urgent = true;
      await this.preallocating?.catch(() => undefined);
      await this.flushing;
    } finally {
      this.closeAllFds();
      this.lock?.release();
      this.lock = null;
    }
  }

  private closeAllFds(): void {
    for (const s of this.segments) closeSync(s.fd);
    this.segments = [];
    for (const p of this.pool) {
      closeSync(p.fd);
      rmSync(p.path, { force: true });
    }
    this.pool = [];
  }
}
