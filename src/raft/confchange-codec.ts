/**
 * The binary form of a {@link ConfChange} carried in a ConfChange log entry:
 *
 *   u8 version (1) | u8 transition (0 auto, 1 implicit, 2 explicit)
 *   varint count | count × (u8 type, varint nodeId) | varint ctxLen | ctx bytes
 *
 * Entries are replicated and persisted, so the format is versioned and decoding
 * validates every length before it allocates.
 */

import { InvalidArgumentError } from "../errors.ts";
import type { ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType } from "./types.ts";

const VERSION = 1;
const TRANSITIONS: readonly ConfChangeTransition[] = ["auto", "implicit", "explicit"];
/** A configuration change touching more members than this is surely malformed. */
const MAX_CHANGES = 1024;

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out: number[] = [VERSION, TRANSITIONS.indexOf(cc.transition)];
  if (out[1]! < 0) throw new InvalidArgumentError(`unknown transition ${cc.transition}`);
  if (cc.changes.length > MAX_CHANGES)
    throw new InvalidArgumentError(`too many changes (${cc.changes.length})`);
  writeVarint(out, cc.changes.length);
  for (const ch of cc.changes) {
    if (ch.nodeId === 0) throw new InvalidArgumentError("conf change names node id 0");
    out.push(ch.type);
    writeVarint(out, ch.nodeId);
  }
  writeVarint(out, cc.context.length);
  const head = Uint8Array.from(out);
  const buf = new Uint8Array(head.length + cc.context.length);
  buf.set(head, 0);
  buf.set(cc.context, head.length);
  return buf;
}

export function decodeConfChange(buf: Uint8Array): ConfChange {
  const r = { buf, pos: 0 };
  const version = readByte(r);
  if (version !== VERSION) throw new InvalidArgumentError(`unknown conf change version ${version}`);
  const transition = TRANSITIONS[readByte(r)];
  if (!transition) throw new InvalidArgumentError("unknown conf change transition");
  const count = readVarint(r);
  if (count > MAX_CHANGES) throw new InvalidArgumentError(`too many changes (${count})`);
  const changes: ConfChangeSingle[] = [];
  for (let i = 0; i < count; i++) {
    const type = readByte(r);
    if (type > 2) throw new InvalidArgumentError(`unknown conf change type ${type}`);
    const nodeId = readVarint(r);
    // Node id 0 means "none": a change naming it is corrupt, not a change.
    if (nodeId === 0) throw new InvalidArgumentError("conf change names node id 0");
    changes.push({ type: type as ConfChangeType, nodeId });
  }
  const ctxLen = readVarint(r);
  if (r.pos + ctxLen !== buf.length) throw new InvalidArgumentError("conf change context length mismatch");
  return { transition, changes, context: buf.slice(r.pos, r.pos + ctxLen) };
}

function writeVarint(out: number[], n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`not a varint: ${n}`);
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

function readByte(r: { buf: Uint8Array; pos: number }): number {
  if (r.pos >= r.buf.length) throw new InvalidArgumentError("truncated conf change");
  return r.buf[r.pos++]!;
}

function readVarint(r: { buf: Uint8Array; pos: number }): number {
  let n = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    const b = readByte(r);
    n += (b & 0x7f) * mul;
    if (b < 0x80) {
      if (!Number.isSafeInteger(n)) break;
      return n;
    }
    mul *= 0x80;
  }
  throw new InvalidArgumentError("malformed varint in conf change");
}
