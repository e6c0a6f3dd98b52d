/**
 * Low-level byte writing and reading for the wire codec: unsigned LEB128
 * varints (for every integer the protocol carries: terms, indexes, node ids,
 * lengths), length-prefixed byte strings and UTF-8 strings.
 *
 * Encoding is two-pass: callers size a value exactly first, allocate once, then
 * write — no growth, no copies. Decoding validates every length against the
 * bytes actually present *before* allocating, so hostile input can never make
 * us allocate more than the frame it arrived in.
 */

import { InvariantError, ProtocolError } from "../errors.ts";

/** 8 varint bytes carry 56 bits: enough for any safe integer (2^53 - 1). */
const MAX_VARINT_BYTES = 8;

const textEncoder = new TextEncoder();
// `fatal` so malformed UTF-8 from a peer becomes a ProtocolError instead of a
// silently different string (a ReadIndex ctx must match byte for byte).
// ignoreBOM: a string that begins with U+FEFF keeps it (the default strips it: no round trip).
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Bytes a varint takes for `n` (a non-negative safe integer). */
export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  if (n < 0x800000000) return 5;
  if (n < 0x40000000000) return 6;
  if (n < 0x2000000000000) return 7;
  return 8;
}

/** Bytes a UTF-8 string takes on the wire (length prefix included). */
export function stringSize(s: string): number {
  const n = s.length === 0 ? 0 : Buffer.byteLength(s, "utf8");
  return varintSize(n) + n;
}

/** Bytes a byte string takes on the wire (length prefix included). */
export function bytesSize(b: Uint8Array): number {
  return varintSize(b.length) + b.length;
}

function assertUint(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InvariantError(`cannot encode ${what}=${n}: not a non-negative safe integer`);
  }
}

/** Writes into a buffer sized exactly by the caller; overrunning it is a sizing bug. */
export class Writer {
  readonly buf: Uint8Array;
  pos: number;

  constructor(buf: Uint8Array, pos = 0) {
    this.buf = buf;
    this.pos = pos;
  }

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  u32be(v: number): void {
    const b = this.buf;
    b[this.pos] = v >>> 24;
    b[this.pos + 1] = (v >>> 16) & 0xff;
    b[this.pos + 2] = (v >>> 8) & 0xff;
    b[this.pos + 3] = v & 0xff;
    this.pos += 4;
  }

  bool(v: boolean): void {
    this.buf[this.pos++] = v ? 1 : 0;
  }

  varint(n: number, what = "integer"): void {
    assertUint(n, what);
    const b = this.buf;
    // Bit operations only work on 32 bits: use them while they are exact.
    while (n >= 0x80000000) {
      b[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    while (n >= 0x80) {
      b[this.pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    b[this.pos++] = n;
  }

  bytes(v: Uint8Array): void {
    this.varint(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  /** Raw bytes with no length prefix (the rest of a frame). */
  raw(v: Uint8Array): void {
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  string(s: string): void {
    if (s.length === 0) {
      this.u8(0);
      return;
    }
    const n = Buffer.byteLength(s, "utf8");
    this.varint(n);
    const r = textEncoder.encodeInto(s, this.buf.subarray(this.pos, this.pos + n));
    if (r.written !== n) throw new InvariantError(`string encoded to ${r.written} bytes, sized ${n}`);
    this.pos += n;
  }

  /** Asserts the sizing pass and the writing pass agree. */
  finish(): Uint8Array {
    if (this.pos !== this.buf.length) {
      throw new InvariantError(`encoded ${this.pos} bytes into a buffer sized ${this.buf.length}`);
    }
    return this.buf;
  }
}

/** Reads from one complete frame; every failure is a ProtocolError. */
export class Reader {
  private readonly buf: Uint8Array;
  pos: number;
  private readonly end: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) {
      throw new ProtocolError(`truncated ${what}: need ${n} bytes, ${this.end - this.pos} left`);
    }
  }

  u8(what = "byte"): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u16be(what = "u16"): number {
    this.need(2, what);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  bool(what: string): boolean {
    const v = this.u8(what);
    if (v > 1) throw new ProtocolError(`invalid boolean ${v} for ${what}`);
    return v === 1;
  }

  varint(what = "varint"): number {
    const b = this.buf;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.end) throw new ProtocolError(`truncated ${what}`);
      const byte = b[this.pos++]!;
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        // Canonical form only: one value, one encoding (a trailing zero byte is padding).
        if (byte === 0 && i > 0) throw new ProtocolError(`non-canonical varint for ${what}`);
        if (result > Number.MAX_SAFE_INTEGER) throw new ProtocolError(`${what} exceeds 2^53-1`);
        return result;
      }
      scale *= 0x80;
    }
    throw new ProtocolError(`varint for ${what} longer than ${MAX_VARINT_BYTES} bytes`);
  }

  /** A varint that is also bounded (counts, enum values, lengths). */
  bounded(max: number, what: string): number {
    const v = this.varint(what);
    if (v > max) throw new ProtocolError(`${what} ${v} exceeds limit ${max}`);
    return v;
  }

  /** A length-prefixed byte string, copied so it never pins the frame buffer. */
  bytes(what: string): Uint8Array {
    return new Uint8Array(this.bytesView(what));
  }

  /**
   * A length-prefixed byte string as a view into the frame buffer: valid only
   * while that buffer is, so the caller copies what it keeps.
   */
  bytesView(what: string): Uint8Array {
    const n = this.varint(`${what} length`);
    this.need(n, what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** The rest of the frame, copied. */
  rest(): Uint8Array {
    const out = new Uint8Array(this.end - this.pos);
    out.set(this.buf.subarray(this.pos, this.end));
    this.pos = this.end;
    return out;
  }

  string(what: string, maxBytes = Number.MAX_SAFE_INTEGER): string {
    const n = this.varint(`${what} length`);
    if (n === 0) return "";
    if (n > maxBytes) throw new ProtocolError(`${what} is ${n} bytes, limit ${maxBytes}`);
    this.need(n, what);
    let s: string;
    try {
      s = textDecoder.decode(this.buf.subarray(this.pos, this.pos + n));
    } catch {
      throw new ProtocolError(`${what} is not valid UTF-8`);
    }
    this.pos += n;
    return s;
  }

  /** A count of items that each take at least `minItemBytes`: rejects counts the frame cannot hold. */
  count(minItemBytes: number, what: string): number {
    const n = this.varint(`${what} count`);
    if (n * minItemBytes > this.end - this.pos) {
      throw new ProtocolError(`${what} count ${n} cannot fit in ${this.end - this.pos} remaining bytes`);
    }
    return n;
  }

  /** Decoders call this last: trailing bytes mean the peer and we disagree on the format. */
  done(what: string): void {
    if (this.pos !== this.end) throw new ProtocolError(`${this.end - this.pos} trailing bytes after ${what}`);
  }
}
