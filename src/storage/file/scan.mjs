// @ts-check
/**
 * The recovery scan of one segment file: reads it in order, checks every
 * record's CRC32C and reduces what it found to a compact, transferable
 * summary (scan.d.mts describes it). Plain JavaScript with no imports but
 * node:fs, because it also runs as a worker thread: Node 20 cannot load
 * TypeScript in a worker without a loader, and booting one there costs
 * ~300 ms, a sixth of the whole restart budget. The same function serves the
 * in-thread path, so there is one scanner, not two.
 *
 * Record framing (record.ts): u32 LE length | u32 LE crc32c(length ‖ payload) | payload.
 * The CRC below must equal src/storage/crc32c.ts bit for bit
 * (test/storage/file-scan.test.ts checks it on random inputs).
 */

import { readSync } from "node:fs";
import { isMainThread, parentPort } from "node:worker_threads";

const POLY = 0x82f63b78;
const T = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n];
  for (let k = 1; k < 8; k++) {
    c = (c >>> 8) ^ T[c & 0xff];
    T[k * 256 + n] = c;
  }
}
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * CRC-32C over `buf[start, end)`, continuing `crc`; `words` is an Int32Array
 * over `buf`'s whole ArrayBuffer (the caller builds it once per read buffer).
 * @param {Uint8Array} buf @param {Int32Array} words @param {number} crc @param {number} start @param {number} end
 */
export function crc32cWords(buf, words, crc, start, end) {
  let c = ~crc;
  let i = start;
  const t = T;
  if (LITTLE_ENDIAN && end - i >= 16) {
    while (((buf.byteOffset + i) & 3) !== 0) c = (c >>> 8) ^ t[(c ^ buf[i++]) & 0xff];
    const pairs = (end - i) >> 3;
    const from = (buf.byteOffset + i) >> 2;
    const to = from + pairs * 2;
    for (let k = from; k < to; k += 2) {
      const a = c ^ words[k];
      const b = words[k + 1];
      c =
        t[1792 + (a & 0xff)] ^
        t[1536 + ((a >>> 8) & 0xff)] ^
        t[1280 + ((a >>> 16) & 0xff)] ^
        t[1024 + (a >>> 24)] ^
        t[768 + (b & 0xff)] ^
        t[512 + ((b >>> 8) & 0xff)] ^
        t[256 + ((b >>> 16) & 0xff)] ^
        t[b >>> 24];
    }
    i += pairs * 8;
  }
  while (i < end) c = (c >>> 8) ^ t[(c ^ buf[i++]) & 0xff];
  return ~c >>> 0;
}

/** @param {Uint8Array} b @param {number} o */
function u32(b, o) {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}
/** @param {Uint8Array} b @param {number} o */
function u64(b, o) {
  return u32(b, o + 4) * 0x1_0000_0000 + u32(b, o);
}

// Record kinds and their minimum payload sizes (record.ts).
const KIND_HEADER = 1;
const KIND_ENTRY = 2;
const KIND_HARD_STATE = 3;
const KIND_TRUNCATE = 4;
const MIN_PAYLOAD = [0, 30, 18, 25, 9];

// Event tags in `events` (see scan.d.mts).
export const EV_HEADER = 1;
export const EV_ENTRIES = 2;
export const EV_HARD_STATE = 3;
export const EV_TRUNCATE = 4;

class F64 {
  constructor(n = 1024) {
    this.a = new Float64Array(n);
    this.n = 0;
  }
  /** @param {number} v */
  push(v) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  done() {
    return this.a.slice(0, this.n);
  }
}

const CHUNK = 4 * 1024 * 1024;

/**
 * Scans `[0, fileSize)` of the open segment `fd`.
 * @param {number} fd @param {number} fileSize
 * @returns {import("./scan.d.mts").SegmentScan}
 */
export function scanSegmentFile(fd, fileSize) {
  let buf = new Uint8Array(CHUNK);
  let words = new Int32Array(buf.buffer);
  let winStart = 0;
  let winEnd = 0;
  /** @param {number} pos @param {number} n */
  const ensure = (pos, n) => {
    if (pos + n > fileSize) return false;
    if (pos >= winStart && pos + n <= winEnd) return true;
    if (n > buf.length) {
      buf = new Uint8Array(n + 8);
      words = new Int32Array(buf.buffer, 0, buf.length >> 2);
    }
    const len = Math.min(buf.length, fileSize - pos);
    let got = 0;
    while (got < len) {
      const r = readSync(fd, buf, got, len - got, pos + got);
      if (r === 0) break;
      got += r;
    }
    winStart = pos;
    winEnd = pos + got;
    return got >= n;
  };

  const events = new F64(64);
  const offsets = new F64(4096);
  const terms = new F64(16);
  // The open entries block: consecutive indexes with no other record between them.
  let blockEvent = -1;
  let nextIndex = -1;
  let lastTerm = -1;
  const closeBlock = () => {
    if (blockEvent >= 0) {
      events.a[blockEvent + 3] = offsets.n - events.a[blockEvent + 4]; // count
      events.a[blockEvent + 6] = terms.n / 2 - events.a[blockEvent + 5]; // term changes
    }
    blockEvent = -1;
  };

  /** @type {{kind: "clean", end: number} | {kind: "bad", end: number, reason: string, recordBytes?: number, damage?: boolean}} */
  let stop;
  let pos = 0;
  for (;;) {
    if (pos === fileSize) {
      stop = { kind: "clean", end: pos };
      break;
    }
    if (!ensure(pos, 8)) {
      stop = { kind: "bad", end: pos, reason: "partial record header" };
      break;
    }
    let off = pos - winStart;
    const len = u32(buf, off);
    if (len === 0 && u32(buf, off + 4) === 0) {
      stop = { kind: "clean", end: pos };
      break;
    }
    if (len > fileSize || !ensure(pos, 8 + len)) {
      // Never a torn write: a segment has room for every record written to it, and a write
      // cut short leaves zeros, which only make a length smaller.
      stop = {
        kind: "bad",
        end: pos,
        reason: `record of ${len} bytes runs past the end of the file`,
        damage: true,
      };
      break;
    }
    off = pos - winStart;
    const p = off + 8;
    const kind = buf[p];
    if (
      len < 1 ||
      kind < 1 ||
      kind > 4 ||
      len < MIN_PAYLOAD[kind] ||
      crc32cWords(buf, words, crc32cWords(buf, words, 0, off, off + 4), p, p + len) !== u32(buf, off + 4)
    ) {
      // The whole record is in the file (its length is believable): recovery tells a torn
      // write from damage by whether any sector of it was never written (see segment.ts).
      stop = { kind: "bad", end: pos, reason: "record checksum mismatch", recordBytes: 8 + len };
      break;
    }
    if (kind === KIND_ENTRY) {
      const index = u64(buf, p + 9);
      const term = u64(buf, p + 1);
      if (blockEvent < 0 || index !== nextIndex) {
        closeBlock();
        blockEvent = events.n;
        // tag, offset, firstIndex, count, offsetsStart, termsStart (pairs), termCount
        events.push(EV_ENTRIES);
        events.push(pos);
        events.push(index);
        events.push(0);
        events.push(offsets.n);
        events.push(terms.n / 2);
        events.push(0);
        lastTerm = -1;
      }
      if (term !== lastTerm) {
        terms.push(index);
        terms.push(term);
        lastTerm = term;
      }
      offsets.push(pos);
      nextIndex = index + 1;
    } else {
      closeBlock();
      if (kind === KIND_HEADER) {
        // tag, offset, magic, seq, startIndex, resetsLog, sizeBytes
        events.push(EV_HEADER);
        events.push(pos);
        events.push(u32(buf, p + 1));
        events.push(u64(buf, p + 5));
        events.push(u64(buf, p + 13));
        events.push(buf[p + 21]);
        events.push(u64(buf, p + 22));
      } else if (kind === KIND_HARD_STATE) {
        // tag, offset, term, vote, commit
        events.push(EV_HARD_STATE);
        events.push(pos);
        events.push(u64(buf, p + 1));
        events.push(u64(buf, p + 9));
        events.push(u64(buf, p + 17));
      } else if (kind === KIND_TRUNCATE) {
        // tag, offset, fromIndex
        events.push(EV_TRUNCATE);
        events.push(pos);
        events.push(u64(buf, p + 1));
      }
    }
    pos += 8 + len;
  }
  closeBlock();
  return { stop, events: events.done(), offsets: offsets.done(), terms: terms.done() };
}

// As a worker: scan the files it is sent, one at a time, and send back the
// summaries (their arrays transferred, not copied).
if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on("message", (/** @type {{ id: number, fd: number, fileSize: number }} */ m) => {
    try {
      const r = scanSegmentFile(m.fd, m.fileSize);
      port.postMessage({ id: m.id, scan: r }, [r.events.buffer, r.offsets.buffer, r.terms.buffer]);
    } catch (err) {
      port.postMessage({ id: m.id, error: String(err) });
    }
  });
}
