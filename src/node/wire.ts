/**
 * Payloads of the node-level RPCs carried by the transport: snapshot chunks,
 * join requests, removal notices. Not on the hot path: a length-prefixed JSON
 * header followed by raw bytes, every length checked before use.
 */

import { ProtocolError } from "../errors.ts";
import type { ConfState } from "../raft/types.ts";
import { isConfState } from "../storage/log-store-contract.ts";

export const RPC_SNAPSHOT = "tsraft.snapshot";
export const RPC_JOIN = "tsraft.join";
export const RPC_REMOVED = "tsraft.removed";

const MAX_HEADER_BYTES = 1024 * 1024;

export function encodeWithBody(header: object, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + h.length + body.length);
  new DataView(out.buffer).setUint32(0, h.length);
  out.set(h, 4);
  out.set(body, 4 + h.length);
  return out;
}

export function decodeWithBody(buf: Uint8Array): { header: Record<string, unknown>; body: Uint8Array } {
  if (buf.length < 4) throw new ProtocolError("payload shorter than its header length");
  const len = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(0);
  if (len > MAX_HEADER_BYTES || 4 + len > buf.length)
    throw new ProtocolError(`bad payload header length ${len}`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(4, 4 + len)));
  } catch (e) {
    throw new ProtocolError(`malformed payload header: ${(e as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new ProtocolError("payload header is not an object");
  }
  return { header: header as Record<string, unknown>, body: buf.subarray(4 + len) };
}

export function num(h: Record<string, unknown>, key: string): number {
  const v = h[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
    throw new ProtocolError(`payload field ${key} is not a count`);
  return v;
}

export function str(h: Record<string, unknown>, key: string): string {
  const v = h[key];
  if (typeof v !== "string") throw new ProtocolError(`payload field ${key} is not a string`);
  return v;
}

/** What a snapshot carries besides the state machine's bytes: the membership and member addresses. */
export interface SnapshotMeta {
  readonly confState: ConfState;
  readonly members: Readonly<Record<string, string>>;
}

export function encodeSnapshotMeta(m: SnapshotMeta): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(m));
}

export function decodeSnapshotMeta(buf: Uint8Array): SnapshotMeta {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(buf));
  } catch (e) {
    throw new ProtocolError(`malformed snapshot metadata: ${(e as Error).message}`);
  }
  const o = v as Partial<SnapshotMeta> | null;
  const cs = o?.confState;
  if (!isConfState(cs) || typeof o?.members !== "object" || o.members === null) {
    throw new ProtocolError("snapshot metadata does not describe a membership");
  }
  return { confState: cs, members: o.members };
}
