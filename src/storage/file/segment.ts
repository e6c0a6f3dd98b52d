/**
 * Segment files: creation (preallocated), the recovery scan, and reading
 * records back — from the file, or from write buffers not yet flushed to it.
 */

import { closeSync, fdatasync, open, readSync, rmSync, write, writeSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { CorruptionError } from "../../errors.ts";
import { wrapIoError } from "./fsutil.ts";
import { checkRecord, getU32, HEADER_BYTES } from "./record.ts";

const openAsync = promisify(open);
const writeAsync = promisify(write);
const fdatasyncAsync = promisify(fdatasync);

export interface Segment {
  readonly seq: number;
  path: string;
  readonly fd: number;
  readonly sizeBytes: number;
  /** Where the next record goes (includes bytes still queued for writing). */
  writePos: number;
  /** Bytes `[0, flushedPos)` are in the file (maybe not yet synced). */
  flushedPos: number;
  /** Queued writes `[flushedPos, writePos)`, in order, so reads can see them. */
  readonly unflushed: { pos: number; buf: Buffer }[];
}

export function segmentFileName(seq: number): string {
  return `wal-${String(seq).padStart(16, "0")}.log`;
}

export function parseSegmentFileName(name: string): number | null {
  const m = /^wal-(\d{16})\.log$/.exec(name);
  return m ? Number(m[1]) : null;
}

const ZERO_CHUNK = Buffer.alloc(1024 * 1024);

/** Paced preallocation: the pause after each synced chunk, leaving the disk to the WAL's syncs. */
const PACE_PAUSE_MS = 2;

/**
 * How a background preallocation shares the disk: while `urgent` is false it
 * syncs every chunk and pauses (a 64 MiB burst of zeros flushed at once
 * would stall every fdatasync on the disk, this node's and its neighbours',
 * for tens to hundreds of milliseconds); a write that needs the segment now
 * sets `urgent`, and the rest goes at full speed.
 */
export interface PreallocPace {
  urgent: boolean;
}

/**
 * Creates a file of `sizeBytes` zeros and syncs it. Writing real zeros (not
 * ftruncate's holes) allocates the blocks now, so later appends and their
 * fdatasync never wait on block allocation, and a full disk shows up here,
 * before any record is accepted.
 */
export async function preallocateFile(path: string, sizeBytes: number, pace?: PreallocPace): Promise<number> {
  let fd = -1;
  try {
    fd = await openAsync(path, "wx+", 0o644);
    for (let pos = 0; pos < sizeBytes; pos += ZERO_CHUNK.length) {
      const n = Math.min(ZERO_CHUNK.length, sizeBytes - pos);
      let done = 0;
      while (done < n) done += (await writeAsync(fd, ZERO_CHUNK, done, n - done, pos + done)).bytesWritten;
      if (pace && !pace.urgent) {
        await fdatasyncAsync(fd);
        await sleep(PACE_PAUSE_MS);
      }
    }
    await fdatasyncAsync(fd);
    return fd;
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    // Give the space back at once: a full disk is the usual reason to be here.
    rmSync(path, { force: true });
    throw wrapIoError(`preallocating ${path}`, err);
  }
}

/** Copies `[pos, pos + len)` of a segment into `out`, taking unflushed bytes from the write queue. */
export function readSegmentBytes(seg: Segment, pos: number, len: number, out: Buffer): void {
  const end = pos + len;
  const diskEnd = Math.min(end, seg.flushedPos);
  let at = pos;
  while (at < diskEnd) {
    const n = readSync(seg.fd, out, at - pos, diskEnd - at, at);
    if (n === 0) throw new CorruptionError(seg.path, at, "file is shorter than its index says");
    at += n;
  }
  for (const u of seg.unflushed) {
    if (at >= end) break;
    const uEnd = u.pos + u.buf.length;
    if (uEnd <= at) continue;
    const from = at - u.pos;
    const n = Math.min(uEnd, end) - at;
    u.buf.copy(out, at - pos, from, from + n);
    at += n;
  }
  if (at < end) throw new CorruptionError(seg.path, at, "read beyond the written data");
}

/** Sequential, CRC-checked record reads over one segment with a read-ahead window. */
export class SegmentCursor {
  private buf: Buffer;
  private winStart = 0;
  private winEnd = 0;

  constructor(
    private readonly seg: Segment,
    windowBytes = 64 * 1024,
  ) {
    this.buf = Buffer.allocUnsafe(windowBytes);
  }

  /**
   * The record at `pos`: returns the buffer and the offset of its payload in
   * it, valid until the next call. Throws CorruptionError if it is not valid.
   */
  record(pos: number): { buf: Buffer; payload: number; payloadBytes: number } {
    this.ensure(pos, HEADER_BYTES);
    const len = getU32(this.buf, pos - this.winStart);
    if (pos + HEADER_BYTES + len > this.seg.writePos) {
      throw new CorruptionError(this.seg.path, pos, `record length ${len} runs past the written data`);
    }
    this.ensure(pos, HEADER_BYTES + len);
    const off = pos - this.winStart;
    if (checkRecord(this.buf, off, off + HEADER_BYTES + len) !== len || len === 0) {
      throw new CorruptionError(this.seg.path, pos, "record checksum mismatch on read");
    }
    return { buf: this.buf, payload: off + HEADER_BYTES, payloadBytes: len };
  }

  private ensure(pos: number, n: number): void {
    if (pos >= this.winStart && pos + n <= this.winEnd) return;
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
    const len = Math.min(this.buf.length, this.seg.writePos - pos);
    if (len < n) throw new CorruptionError(this.seg.path, pos, "record runs past the written data");
    readSegmentBytes(this.seg, pos, len, this.buf);
    this.winStart = pos;
    this.winEnd = pos + len;
  }
}

/** Reads `[from, to)` of a file. */
export function readRange(fd: number, from: number, to: number): Buffer {
  const b = Buffer.allocUnsafe(to - from);
  let got = 0;
  while (got < b.length) {
    const r = readSync(fd, b, got, b.length - got, from + got);
    if (r === 0) return b.subarray(0, got);
    got += r;
  }
  return b;
}

/**
 * Whether any valid record starts after `from`. A torn write (the tail of the
 * last unsynced batch) leaves garbage or zeros but no valid record after the
 * tear; a valid record after a bad one means data in the middle is damaged.
 */
export function validRecordAfter(fd: number, from: number, fileSize: number): number {
  const b = readRange(fd, from, fileSize);
  for (let o = 1; o + HEADER_BYTES < b.length; o++) {
    if ((b[o]! | b[o + 1]! | b[o + 2]! | b[o + 3]!) === 0) continue;
    if (checkRecord(b, o, b.length) > 0) return from + o;
  }
  return -1;
}

/** The unit a disk writes whole (or not at all) when power fails mid-write. */
const SECTOR_BYTES = 512;

/**
 * Whether part of the record at `[from, from + bytes)` was never written: a
 * 512-byte sector's share of it reads as all zeros. Segments are zero-filled
 * before use and no byte of one is written twice, so a write cut short by a
 * crash leaves whole sectors of zeros; a record with none is complete on disk,
 * and a failed checksum there is damage, not a torn write (the test etcd's
 * WAL makes, too). A record whose own data holds a sector's worth of zeros is
 * taken as torn: the check can only err towards today's repair.
 */
export function hasUnwrittenSector(fd: number, from: number, bytes: number): boolean {
  const b = readRange(fd, from, from + bytes);
  let start = 0;
  while (start < b.length) {
    const end = Math.min(b.length, start + SECTOR_BYTES - ((from + start) % SECTOR_BYTES));
    let zero = true;
    for (let i = start; i < end && zero; i++) zero = b[i] === 0;
    if (zero) return true;
    start = end;
  }
  return false;
}

/** Whether `[from, fileSize)` is all zeros (memcmp per chunk: cheap even for a large segment). */
export function isZeroFrom(fd: number, from: number, fileSize: number): boolean {
  const b = Buffer.allocUnsafe(ZERO_CHUNK.length);
  for (let pos = from; pos < fileSize; pos += b.length) {
    const n = readSync(fd, b, 0, Math.min(b.length, fileSize - pos), pos);
    if (n === 0) return true;
    if (!b.subarray(0, n).equals(ZERO_CHUNK.subarray(0, n))) return false;
  }
  return true;
}

/** Zeroes `[from, fileSize)` and syncs: the torn tail can never be mistaken for data again. */
export function zeroFrom(fd: number, from: number, fileSize: number): void {
  for (let pos = from; pos < fileSize; pos += ZERO_CHUNK.length) {
    const n = Math.min(ZERO_CHUNK.length, fileSize - pos);
    let done = 0;
    while (done < n) done += writeSync(fd, ZERO_CHUNK, done, n - done, pos + done);
  }
}
