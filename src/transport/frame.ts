/**
 * Framing: every unit on a connection is
 *
 *   u32 big-endian length | u8 kind | body (length - 1 bytes)
 *
 * The length is checked against `maxFrameBytes` as soon as its 4 bytes have
 * arrived, before any body is buffered, so a hostile or confused peer cannot
 * make us hold more than one maximal frame per connection.
 */

import { ProtocolError } from "../errors.ts";
import type { Message } from "../raft/types.ts";
import { messageSize, readMessage, writeMessage } from "./codec.ts";
import { Reader, stringSize, varintSize, Writer } from "./wire.ts";

/** Bumped on any incompatible change to frames or the message codec. */
export const PROTOCOL_VERSION = 1;
/** "TSRF": lets an acceptor tell a tsraft dialer from a stray client at once. */
export const HANDSHAKE_MAGIC = 0x54535246;
export const FRAME_HEADER_BYTES = 4;
/** Short identifiers stay short: this bounds what a handshake or RPC header may carry. */
export const MAX_NAME_BYTES = 256;
/** Error messages crossing the wire are truncated to this. */
export const MAX_ERROR_MESSAGE_BYTES = 4096;
/**
 * The largest frame a connection accepts before its handshake is done (a
 * refusal, the largest handshake frame, is ~4.4 KiB): a stranger that never
 * identified itself cannot make a node buffer a full maxFrameBytes.
 */
export const MAX_HANDSHAKE_FRAME_BYTES = 8192;

export const FrameKind = {
  Hello: 1,
  HelloOk: 2,
  Refuse: 3,
  Message: 4,
  Request: 5,
  Response: 6,
} as const;

export interface HelloFrame {
  readonly kind: "hello";
  readonly version: number;
  readonly clusterId: string;
  readonly from: number;
  /** The node the dialer believes it is talking to: catches mis-wired addresses. */
  readonly to: number;
}
export interface HelloOkFrame {
  readonly kind: "helloOk";
  readonly version: number;
  readonly nodeId: number;
}
export interface RefuseFrame {
  readonly kind: "refuse";
  /** A stable reason code, e.g. "cluster-id-mismatch". */
  readonly reason: string;
  readonly message: string;
}
export interface MessageFrame {
  readonly kind: "message";
  readonly message: Message;
}
export interface RequestFrame {
  readonly kind: "request";
  readonly id: number;
  readonly method: string;
  readonly payload: Uint8Array;
}
export type ResponseFrame =
  | { readonly kind: "response"; readonly id: number; readonly ok: true; readonly payload: Uint8Array }
  | {
      readonly kind: "response";
      readonly id: number;
      readonly ok: false;
      readonly code: string;
      readonly message: string;
    };
export type Frame = HelloFrame | HelloOkFrame | RefuseFrame | MessageFrame | RequestFrame | ResponseFrame;

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s, "utf8") <= maxBytes) return s;
  // Cut by code points so we never split a surrogate pair.
  let out = "";
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, "utf8");
    if (bytes + n > maxBytes - 3) break;
    out += ch;
    bytes += n;
  }
  return `${out}...`;
}

function bodySize(f: Frame): number {
  switch (f.kind) {
    case "hello":
      return 4 + 2 + stringSize(f.clusterId) + varintSize(f.from) + varintSize(f.to);
    case "helloOk":
      return 2 + varintSize(f.nodeId);
    case "refuse":
      return stringSize(f.reason) + stringSize(f.message);
    case "message":
      return messageSize(f.message);
    case "request":
      return varintSize(f.id) + stringSize(f.method) + f.payload.length;
    case "response":
      return varintSize(f.id) + 1 + (f.ok ? f.payload.length : stringSize(f.code) + stringSize(f.message));
  }
}

/**
 * Encodes a frame, header included, into one buffer. Returns a Buffer so the
 * socket can take it without another copy.
 */
export function encodeFrame(frame: Frame): Buffer {
  let f = frame;
  if (f.kind === "refuse" || (f.kind === "response" && !f.ok)) {
    f = { ...f, message: truncateUtf8(f.message, MAX_ERROR_MESSAGE_BYTES) };
  }
  const body = 1 + bodySize(f);
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body);
  const w = new Writer(buf);
  w.u32be(body);
  switch (f.kind) {
    case "hello":
      w.u8(FrameKind.Hello);
      w.u32be(HANDSHAKE_MAGIC);
      w.u8(f.version >>> 8);
      w.u8(f.version & 0xff);
      w.string(f.clusterId);
      w.varint(f.from, "from");
      w.varint(f.to, "to");
      break;
    case "helloOk":
      w.u8(FrameKind.HelloOk);
      w.u8(f.version >>> 8);
      w.u8(f.version & 0xff);
      w.varint(f.nodeId, "nodeId");
      break;
    case "refuse":
      w.u8(FrameKind.Refuse);
      w.string(f.reason);
      w.string(f.message);
      break;
    case "message":
      w.u8(FrameKind.Message);
      writeMessage(w, f.message);
      break;
    case "request":
      w.u8(FrameKind.Request);
      w.varint(f.id, "request id");
      w.string(f.method);
      w.raw(f.payload);
      break;
    case "response":
      w.u8(FrameKind.Response);
      w.varint(f.id, "request id");
      w.u8(f.ok ? 0 : 1);
      if (f.ok) w.raw(f.payload);
      else {
        w.string(f.code);
        w.string(f.message);
      }
      break;
  }
  w.finish();
  return buf;
}

/**
 * The hot path's encoder: one message frame, given the message's size from
 * {@link messageSize} (the caller already needed it to check the frame limit,
 * so it is not computed twice).
 */
export function encodeMessageFrame(m: Message, size: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 1 + size);
  const w = new Writer(buf);
  w.u32be(1 + size);
  w.u8(FrameKind.Message);
  writeMessage(w, m);
  w.finish();
  return buf;
}

/** Decodes one frame body (kind byte first, no length header). */
export function decodeFrame(body: Uint8Array): Frame {
  const r = new Reader(body);
  const kind = r.u8("frame kind");
  let f: Frame;
  switch (kind) {
    case FrameKind.Hello: {
      const magic = (r.u16be("magic") * 0x10000 + r.u16be("magic")) >>> 0;
      if (magic !== HANDSHAKE_MAGIC) throw new ProtocolError("bad handshake magic: not a tsraft peer");
      const version = r.u16be("version");
      const clusterId = r.string("cluster id", MAX_NAME_BYTES);
      f = { kind: "hello", version, clusterId, from: r.varint("from"), to: r.varint("to") };
      break;
    }
    case FrameKind.HelloOk:
      f = { kind: "helloOk", version: r.u16be("version"), nodeId: r.varint("nodeId") };
      break;
    case FrameKind.Refuse: {
      const reason = r.string("refuse reason", MAX_NAME_BYTES);
      f = { kind: "refuse", reason, message: r.string("refuse message", MAX_ERROR_MESSAGE_BYTES) };
      break;
    }
    case FrameKind.Message:
      f = { kind: "message", message: readMessage(r) };
      break;
    case FrameKind.Request: {
      const id = r.varint("request id");
      const method = r.string("method", MAX_NAME_BYTES);
      f = { kind: "request", id, method, payload: r.rest() };
      break;
    }
    case FrameKind.Response: {
      const id = r.varint("request id");
      const status = r.u8("response status");
      if (status === 0) f = { kind: "response", id, ok: true, payload: r.rest() };
      else if (status === 1) {
        const code = r.string("error code", MAX_NAME_BYTES);
        f = { kind: "response", id, ok: false, code, message: r.string("error", MAX_ERROR_MESSAGE_BYTES) };
      } else throw new ProtocolError(`unknown response status ${status}`);
      break;
    }
    default:
      throw new ProtocolError(`unknown frame kind ${kind}`);
  }
  r.done(`${f.kind} frame`);
  return f;
}

/**
 * Reassembles frames from a byte stream split at arbitrary points. Holds at
 * most one partial frame (bounded by `maxFrameBytes`) plus the tail of the
 * last chunk. After a ProtocolError the stream is unusable: the caller must
 * close the connection (there is no way to resynchronise a length-prefixed
 * stream).
 */
export class FrameDecoder {
  private maxFrameBytes: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: ProtocolError | null = null;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = 0;
    this.setMaxFrameBytes(maxFrameBytes);
  }

  /** Raises or lowers the limit for the frames still to come (e.g. once a handshake is done). */
  setMaxFrameBytes(maxFrameBytes: number): void {
    if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 2 || maxFrameBytes > 0xffffffff) {
      throw new RangeError(`maxFrameBytes must be an integer in [2, 2^32-1], got ${maxFrameBytes}`);
    }
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Feeds a chunk; calls `onFrame` with each complete frame body in order. */
  push(chunk: Buffer, onFrame: (body: Buffer) => void): void {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= FRAME_HEADER_BYTES) {
      const len = this.peekLength();
      if (len === 0 || len > this.maxFrameBytes) {
        this.failed = new ProtocolError(
          len === 0 ? "empty frame" : `frame of ${len} bytes exceeds maxFrameBytes (${this.maxFrameBytes})`,
        );
        this.chunks = [];
        this.buffered = 0;
        throw this.failed;
      }
      if (this.buffered < FRAME_HEADER_BYTES + len) return;
      this.take(FRAME_HEADER_BYTES);
      onFrame(this.take(len));
    }
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= FRAME_HEADER_BYTES) return first.readUInt32BE(0);
    // The header itself straddles chunks: gather its 4 bytes.
    let v = 0;
    let got = 0;
    for (const c of this.chunks) {
      for (let i = 0; i < c.length && got < FRAME_HEADER_BYTES; i++, got++) v = v * 256 + c[i]!;
      if (got === FRAME_HEADER_BYTES) break;
    }
    return v;
  }

  /** Removes `n` bytes (n <= buffered) from the front; a view when they lie in one chunk. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
