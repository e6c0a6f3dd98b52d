/**
 * Opening a WAL directory: which segments are live, what each holds, and the
 * rebuilt sparse index and hard state.
 *
 * Every record of every live segment is CRC-checked on every open. Sealed
 * segments (all but the last) are scanned in parallel on worker threads
 * (scan-pool.ts) once there is enough of them to pay for the threads; the
 * results are applied strictly in segment order, so the outcome, and the
 * first error reported, are the same as a sequential scan's.
 *
 * Rules:
 *  - an incomplete record in the last segment with no valid record after it,
 *    or a corrupt one part of which was never written (a sector of zeros), is
 *    a torn tail: zeroed, logged, the log ends before it;
 *  - a corrupt record written in full, or a length running past the end of
 *    the segment, is damage even at the very end: a CorruptionError (it was
 *    synced, and may hold an acknowledged entry);
 *  - any other damage is a CorruptionError naming the file and offset;
 *  - a hard state whose commit index lies beyond the recovered log is a
 *    CorruptionError: committed entries are never silently dropped.
 */

import { closeSync, fdatasync, openSync, readdirSync, rmSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CorruptionError } from "../../errors.ts";
import type { HardState } from "../../raft/types.ts";
import { EMPTY_HARD_STATE } from "../../raft/types.ts";
import { EMPTY_SNAPSHOT_METADATA } from "../log-store.ts";
import { fsyncDir } from "./fsutil.ts";
import { LogIndex } from "./log-index.ts";
import { type Manifest, readManifest, writeManifest } from "./manifest.ts";
import { SEGMENT_MAGIC } from "./record.ts";
import {
  EV_ENTRIES,
  EV_HARD_STATE,
  EV_HEADER,
  EV_TRUNCATE,
  type SegmentScan,
  scanSegmentFile,
} from "./scan.mjs";
import { ScanPool, ScanPoolUnavailable } from "./scan-pool.ts";
import {
  hasUnwrittenSector,
  isZeroFrom,
  parseSegmentFileName,
  type Segment,
  segmentFileName,
  validRecordAfter,
  zeroFrom,
} from "./segment.ts";

const fdatasyncAsync = promisify(fdatasync);

/** A pino-compatible subset, so a pino logger can be passed as is. */
export interface StorageLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface RecoveryOptions {
  readonly dir: string;
  readonly stride: number;
  readonly logger: StorageLogger;
  /** Worker threads for sealed segments: a number, or "auto" (see FileStorageOptions.recoveryWorkers). */
  readonly workers: number | "auto";
}

export interface RecoveredWal {
  readonly manifest: Manifest;
  /** Live segments, oldest first (possibly none: the caller creates the first). */
  readonly segments: Segment[];
  readonly index: LogIndex<Segment>;
  readonly hardState: HardState;
}

/** Below this much sealed data, threads cost more than they save. */
const AUTO_WORKERS_MIN_BYTES = 48 * 1024 * 1024;

export async function recoverWal(opts: RecoveryOptions): Promise<RecoveredWal> {
  const { dir } = opts;
  const names = readdirSync(dir);
  for (const n of names) if (n.endsWith(".tmp")) rmSync(join(dir, n), { force: true });
  const seqs = names
    .map(parseSegmentFileName)
    .filter((s): s is number => s !== null)
    .sort((a, b) => a - b);
  const manifestPath = join(dir, "MANIFEST");
  let manifest = readManifest(manifestPath);
  if (manifest === null) {
    if (seqs.length > 0) throw new CorruptionError(manifestPath, 0, "MANIFEST is missing but segments exist");
    manifest = { version: 1, firstSegmentSeq: 1, snapshot: EMPTY_SNAPSHOT_METADATA };
    await writeManifest(manifestPath, manifest);
  }
  const base = manifest.snapshot.index;

  // Segments before the manifest's first are compacted away (a crash may have
  // interrupted their deletion).
  for (const s of seqs) if (s < manifest.firstSegmentSeq) rmSync(join(dir, segmentFileName(s)));
  const live = seqs.filter((s) => s >= manifest.firstSegmentSeq);
  const missing = (seq: number) =>
    new CorruptionError(join(dir, segmentFileName(seq)), 0, "segment is missing");
  if (live.length > 0 && live[0] !== manifest.firstSegmentSeq) throw missing(manifest.firstSegmentSeq);
  for (let i = 1; i < live.length; i++) if (live[i] !== live[i - 1]! + 1) throw missing(live[i - 1]! + 1);
  if (live.length === 0 && (manifest.firstSegmentSeq !== 1 || base !== 0)) {
    throw missing(manifest.firstSegmentSeq);
  }

  const r = new Recovery(opts, manifest, live);
  try {
    return await r.run();
  } finally {
    await r.release();
  }
}

class Recovery {
  private readonly base: number;
  /** Replaying the first live segment (see addEntries). */
  private firstLive = false;
  /** Entries set aside above a gap, waiting for the truncation that removed them. */
  private stale: { from: number; path: string; offset: number } | null = null;
  private readonly index: LogIndex<Segment>;
  private hs: HardState = EMPTY_HARD_STATE;
  /** Opened segment files; those not handed over are closed by release(). */
  private readonly opened: Segment[] = [];
  private readonly kept: Segment[] = [];
  private pool: ScanPool | null = null;
  private handedOver = false;
  private readonly scans: (Promise<SegmentScan> | undefined)[] = [];

  constructor(
    private readonly opts: RecoveryOptions,
    private readonly manifest: Manifest,
    private readonly live: number[],
  ) {
    this.base = manifest.snapshot.index;
    this.index = new LogIndex<Segment>(opts.stride, this.base);
  }

  async run(): Promise<RecoveredWal> {
    const { dir } = this.opts;
    // Open and size every segment first, so the scans can start at once. A
    // short segment is reported when its turn comes: errors surface in file
    // order, as a sequential scan would report them.
    const short: (CorruptionError | null)[] = [];
    let sealedBytes = 0;
    for (let i = 0; i < this.live.length; i++) {
      const seq = this.live[i]!;
      const path = join(dir, segmentFileName(seq));
      const fd = openSync(path, "r+");
      const sizeBytes = statSync(path).size;
      this.opened.push({ seq, path, fd, sizeBytes, writePos: 0, flushedPos: 0, unflushed: [] });
      // Segments are renamed into place only once fully preallocated.
      short.push(
        sizeBytes < 64 * 1024
          ? new CorruptionError(path, sizeBytes, `segment is truncated (${sizeBytes} bytes)`)
          : null,
      );
      if (i < this.live.length - 1) sealedBytes += sizeBytes;
    }
    const sealed = this.live.length - 1;
    const wanted =
      this.opts.workers === "auto"
        ? sealedBytes >= AUTO_WORKERS_MIN_BYTES
          ? Math.min(4, availableParallelism())
          : 0
        : this.opts.workers;
    const workers = Math.min(wanted, sealed);
    if (workers > 0) this.pool = new ScanPool(workers);
    const window = 2 * workers;
    for (let i = 0; i < Math.min(window, sealed); i++) this.request(i, short[i]);
    // While the workers start and scan, this thread scans the last segment.
    if (this.live.length > 0 && short[this.live.length - 1] === null) {
      const last = this.opened[this.live.length - 1]!;
      this.scans[this.live.length - 1] = Promise.resolve(scanSegmentFile(last.fd, last.sizeBytes));
    }

    for (let i = 0; i < this.live.length; i++) {
      if (i + window < sealed) this.request(i + window, short[i + window]);
      const seg = this.opened[i]!;
      if (short[i]) throw short[i];
      const scan = await this.scanOf(i);
      this.scans[i] = undefined;
      if ((await this.apply(seg, scan, i)) === "abandon") break;
    }

    if (this.stale !== null) {
      throw new CorruptionError(
        this.stale.path,
        this.stale.offset,
        `entry ${this.stale.from} leaves a gap after ${this.base}, and no truncation removed it`,
      );
    }
    const last = this.index.lastIndex;
    if (this.hs.commit > Math.max(last, this.base)) {
      const tail = this.kept[this.kept.length - 1];
      throw new CorruptionError(
        join(dir, segmentFileName(tail?.seq ?? this.manifest.firstSegmentSeq)),
        tail?.writePos ?? 0,
        `committed index ${this.hs.commit} is beyond the recovered log (last index ${last}): committed entries are missing`,
      );
    }
    this.handedOver = true;
    return { manifest: this.manifest, segments: [...this.kept], index: this.index, hardState: this.hs };
  }

  /** Stops the workers, then closes every file not handed to the engine. */
  async release(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
    for (const s of this.opened) if (!this.handedOver || !this.kept.includes(s)) closeSync(s.fd);
    this.kept.length = 0;
    this.opened.length = 0;
  }

  private request(i: number, short: CorruptionError | null | undefined): void {
    if (short || this.scans[i] !== undefined || this.pool === null) return;
    const seg = this.opened[i]!;
    const p = this.pool.scan(seg.fd, seg.sizeBytes);
    p.catch(() => undefined); // awaited in order by scanOf
    this.scans[i] = p;
  }

  private async scanOf(i: number): Promise<SegmentScan> {
    const seg = this.opened[i]!;
    const p = this.scans[i];
    if (p === undefined) return scanSegmentFile(seg.fd, seg.sizeBytes);
    try {
      return await p;
    } catch (err) {
      if (!(err instanceof ScanPoolUnavailable)) throw err;
      this.opts.logger.warn({ file: seg.path, err: String(err) }, "scan worker failed; scanning in-thread");
      return scanSegmentFile(seg.fd, seg.sizeBytes);
    }
  }

  /** Applies one segment's scan to the index, repairing a torn tail; "abandon" drops it and all after it. */
  private async apply(seg: Segment, scan: SegmentScan, i: number): Promise<"ok" | "abandon"> {
    const { dir } = this.opts;
    const isLast = i === this.live.length - 1;
    this.firstLive = i === 0;
    const { path, fd, sizeBytes, seq } = seg;
    const { events: ev, offsets, terms } = scan;
    let sawHeader = false;
    for (let j = 0; j < ev.length; ) {
      const tag = ev[j]!;
      const offset = ev[j + 1]!;
      if (!sawHeader) {
        if (tag !== EV_HEADER || ev[j + 2] !== SEGMENT_MAGIC || ev[j + 3] !== seq) {
          throw new CorruptionError(path, offset, "segment does not start with its header");
        }
        sawHeader = true;
        const startIndex = ev[j + 4]!;
        const resetsLog = ev[j + 5] === 1;
        const headerSize = ev[j + 6]!;
        if (headerSize !== sizeBytes) {
          throw new CorruptionError(
            path,
            sizeBytes,
            `segment is ${sizeBytes} bytes, its header says ${headerSize}`,
          );
        }
        if (resetsLog && seq > this.manifest.firstSegmentSeq) {
          // A snapshot install that crashed before its manifest was written:
          // nothing from here on was acknowledged (see the "manifest" write).
          for (const s of this.live.slice(i)) rmSync(join(dir, segmentFileName(s)), { force: true });
          this.opts.logger.warn(
            { dir, fromSegment: seq },
            "discarded segments of an interrupted snapshot install",
          );
          await fsyncDir(dir);
          return "abandon";
        }
        const expected = Math.max(this.index.lastIndex, this.base) + 1;
        // (Above the end while entries are set aside as stale: more of them, see addEntries.)
        if (!resetsLog && i > 0 && startIndex > expected && this.stale === null) {
          throw new CorruptionError(
            path,
            offset,
            `segment starts at ${startIndex}, log ends at ${expected - 1}`,
          );
        }
        // Lower: an overwriting append (a Raft conflict) rolled into this segment; the log
        // was cut back to just before it (the engine writes no truncation record then).
        if (!resetsLog && i > 0 && startIndex < expected) this.cutFrom(startIndex);
        j += 7;
        continue;
      }
      switch (tag) {
        case EV_ENTRIES: {
          const first = ev[j + 2]!;
          const count = ev[j + 3]!;
          const offStart = ev[j + 4]!;
          const termsStart = ev[j + 5]!;
          const termCount = ev[j + 6]!;
          for (let t = 0; t < termCount; t++) {
            const from = terms[2 * (termsStart + t)]!;
            const term = terms[2 * (termsStart + t) + 1]!;
            const to = t + 1 < termCount ? terms[2 * (termsStart + t + 1)]! : first + count;
            this.addEntries(seg, from, to - from, term, offsets, offStart + (from - first));
          }
          j += 7;
          break;
        }
        case EV_HARD_STATE:
          this.hs = { term: ev[j + 2]!, vote: ev[j + 3]!, commit: ev[j + 4]! };
          j += 5;
          break;
        case EV_TRUNCATE: {
          this.cutFrom(ev[j + 2]!);
          j += 3;
          break;
        }
        default:
          throw new CorruptionError(path, offset, "segment header in the middle of a segment");
      }
    }

    const stop = scan.stop;
    let end = stop.end;
    let damaged = stop.kind === "bad" ? stop.reason : null;
    if (damaged === null && isLast && !isZeroFrom(fd, end, sizeBytes))
      damaged = "non-zero bytes after the end";
    if (damaged !== null) {
      const next = validRecordAfter(fd, end, sizeBytes);
      if (!isLast || next >= 0) {
        throw new CorruptionError(
          path,
          end,
          `${damaged}${next >= 0 ? ` (a valid record follows at ${next})` : " in a sealed segment"}`,
        );
      }
      if (
        stop.kind === "bad" &&
        (stop.damage === true ||
          (stop.recordBytes !== undefined && !hasUnwrittenSector(fd, end, stop.recordBytes)))
      ) {
        // Written in full and synced before anything depended on it: dropping it could lose
        // an acknowledged entry or a vote.
        throw new CorruptionError(
          path,
          end,
          stop.damage === true
            ? `${damaged}: damaged, not torn (a write cut short cannot make a length larger)`
            : `${damaged} in a record written in full (no sector of it is unwritten): damaged, not torn`,
        );
      }
      this.opts.logger.warn({ file: path, offset: end, reason: damaged }, "truncating torn WAL tail");
      zeroFrom(fd, end, sizeBytes);
      await fdatasyncAsync(fd);
    }
    if (!sawHeader) {
      if (!isLast) throw new CorruptionError(path, 0, "empty segment in the middle of the log");
      end = 0;
    }
    seg.writePos = end;
    seg.flushedPos = end;
    this.kept.push(seg);
    return "ok";
  }

  /** `count` consecutive entries of one term from `index` (the sequential rules, applied to a run). */
  private addEntries(
    seg: Segment,
    index: number,
    count: number,
    term: number,
    offsets: Float64Array,
    from: number,
  ): void {
    let idx = index;
    let n = count;
    let at = from;
    // An entry at or below the end overwrites the log from there (a Raft conflict), above the
    // snapshot too, even when the overwriting entries themselves are all compacted away.
    if (idx <= this.index.lastIndex) this.cutFrom(idx);
    if (idx + n - 1 <= this.base) return;
    if (idx <= this.base) {
      const skip = this.base - idx + 1;
      idx += skip;
      n -= skip;
      at += skip;
    }
    const last = this.index.lastIndex;
    if (idx > last + 1) {
      // The first live segment may begin with entries that a later truncation (in the WAL's
      // order) removed, while compaction deleted the segment before them: set them aside; the
      // truncation must come, or recovery fails at the end.
      if (this.firstLive || this.stale !== null) {
        this.stale ??= { from: idx, path: seg.path, offset: offsets[at]! };
        return;
      }
      throw new CorruptionError(seg.path, offsets[at]!, `entry ${idx} leaves a gap after ${last}`);
    }
    this.index.addRun(idx, n, term, seg, offsets, at);
  }

  /**
   * The log was cut back to just before `from`: entries from there on are gone. A cut at or
   * below the snapshot index removes every entry above it (compacted ones are gone already).
   */
  private cutFrom(from: number): void {
    this.index.truncateFrom(Math.max(from, this.base + 1));
    if (this.stale !== null && from <= this.stale.from) this.stale = null;
  }
}
