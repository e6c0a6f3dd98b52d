/**
 * WAL record framing. Every record is
 *
 *   u32 LE payloadLength | u32 LE crc32c(lengthBytes ‖ payload) | payload
 *
 * and `payload[0]` is the record kind. The checksum covers the length too, so
 * a corrupted length is caught rather than sending the scan off into the
 * weeds. Segments are preallocated with zeros and a record's length is never
 * 0, so a zero header marks the clean end of the written data.
 *
 * Integers are u64 stored as two u32 (indexes are safe integers < 2^53).
 */

import type { Entry, EntryType, HardState } from "../../raft/types.ts";
import { crc32c } from "../crc32c.ts";

export const HEADER_BYTES = 8;

export const RecordKind = {
  /** First record of every segment: `u32 magic, u64 seq, u64 startIndex, u8 resetsLog, u64 sizeBytes`. */
  SegmentHeader: 1,
  /** `u64 term, u64 index, u8 type, data`. */
  Entry: 2,
  /** `u64 term, u64 vote, u64 commit`. */
  HardState: 3,
  /** `u64 fromIndex`: entries >= fromIndex are gone. */
  Truncate: 4,
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

export const SEGMENT_MAGIC = 0x57525354; // "TSRW"
export const ENTRY_OVERHEAD_BYTES = HEADER_BYTES + 18;

export function isRecordKind(k: number): k is RecordKind {
  return k >= 1 && k <= 4;
}

function putU64(b: Buffer, off: number, v: number): void {
  b.writeUInt32LE(v >>> 0, off);
  b.writeUInt32LE(Math.floor(v / 0x1_0000_0000), off + 4);
}

export function getU64(b: Uint8Array, off: number): number {
  const lo = b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24);
  const hi = b[off + 4]! | (b[off + 5]! << 8) | (b[off + 6]! << 16) | (b[off + 7]! << 24);
  return (hi >>> 0) * 0x1_0000_0000 + (lo >>> 0);
}

export function getU32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

function frame(payloadBytes: number, fill: (b: Buffer, p: number) => void): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES + payloadBytes);
  b.writeUInt32LE(payloadBytes, 0);
  fill(b, HEADER_BYTES);
  b.writeUInt32LE(crc32c(b, crc32c(b, 0, 0, 4), HEADER_BYTES, b.length), 4);
  return b;
}

export function entryRecordBytes(dataBytes: number): number {
  return ENTRY_OVERHEAD_BYTES + dataBytes;
}

/** Encodes `e` as a record into `b` at `off`; returns the offset after it. */
export function encodeEntryInto(b: Buffer, off: number, e: Entry): number {
  const len = 18 + e.data.length;
  b.writeUInt32LE(len, off);
  const p = off + HEADER_BYTES;
  b[p] = RecordKind.Entry;
  putU64(b, p + 1, e.term);
  putU64(b, p + 9, e.index);
  b[p + 17] = e.type;
  b.set(e.data, p + 18);
  b.writeUInt32LE(crc32c(b, crc32c(b, 0, off, off + 4), p, p + len), off + 4);
  return p + len;
}

export function encodeEntry(e: Entry): Buffer {
  return frame(18 + e.data.length, (b, p) => {
    b[p] = RecordKind.Entry;
    putU64(b, p + 1, e.term);
    putU64(b, p + 9, e.index);
    b[p + 17] = e.type;
    b.set(e.data, p + 18);
  });
}

export function encodeHardState(hs: HardState): Buffer {
  return frame(25, (b, p) => {
    b[p] = RecordKind.HardState;
    putU64(b, p + 1, hs.term);
    putU64(b, p + 9, hs.vote);
    putU64(b, p + 17, hs.commit);
  });
}

export function encodeTruncate(fromIndex: number): Buffer {
  return frame(9, (b, p) => {
    b[p] = RecordKind.Truncate;
    putU64(b, p + 1, fromIndex);
  });
}

export function encodeSegmentHeader(
  seq: number,
  startIndex: number,
  resetsLog: boolean,
  sizeBytes: number,
): Buffer {
  return frame(30, (b, p) => {
    b[p] = RecordKind.SegmentHeader;
    b.writeUInt32LE(SEGMENT_MAGIC, p + 1);
    putU64(b, p + 5, seq);
    putU64(b, p + 13, startIndex);
    b[p + 21] = resetsLog ? 1 : 0;
    putU64(b, p + 22, sizeBytes);
  });
}

/** Decodes an entry payload (`p` points at the kind byte). The data is copied out of `b`. */
export function decodeEntry(b: Uint8Array, p: number, payloadBytes: number): Entry {
  return {
    term: getU64(b, p + 1),
    index: getU64(b, p + 9),
    type: b[p + 17] as EntryType,
    data: Uint8Array.prototype.slice.call(b, p + 18, p + payloadBytes),
  };
}

export function decodeHardState(b: Uint8Array, p: number): HardState {
  return { term: getU64(b, p + 1), vote: getU64(b, p + 9), commit: getU64(b, p + 17) };
}

/** Minimum payload size per kind: a shorter one is corrupt even if its CRC matches. */
export const MIN_PAYLOAD: Record<RecordKind, number> = { 1: 30, 2: 18, 3: 25, 4: 9 };

/**
 * Checks the record at `b[off..]`. Returns the payload length if it is a
 * complete, valid record; 0 for a zero header (clean end); -1 if it is
 * incomplete or corrupt.
 */
export function checkRecord(b: Uint8Array, off: number, end: number): number {
  if (off + HEADER_BYTES > end) return -1;
  const len = getU32(b, off);
  const crc = getU32(b, off + 4);
  if (len === 0 && crc === 0) return 0;
  if (len < 1 || off + HEADER_BYTES + len > end) return -1;
  const kind = b[off + HEADER_BYTES]!;
  if (!isRecordKind(kind) || len < MIN_PAYLOAD[kind]) return -1;
  const c = crc32c(b, crc32c(b, 0, off, off + 4), off + HEADER_BYTES, off + HEADER_BYTES + len);
  return c === crc ? len : -1;
}
