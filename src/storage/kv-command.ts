/**
 * The commands of the default key-value state machine, and their encoding.
 *
 *   put:    0x01 | varint keyLength | key | value (the rest)
 *   delete: 0x02 | varint keyLength | key
 *   get:    0x03 | varint keyLength | key   (a linearizable read through the log)
 *
 * varint is unsigned LEB128. Keys are at most 64 KiB. Anything else decodes
 * to an error result on every replica alike, never a crash.
 */

import { InvalidArgumentError } from "../errors.ts";

export type KvCommand =
  | { readonly op: "put"; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly op: "delete"; readonly key: Uint8Array }
  | { readonly op: "get"; readonly key: Uint8Array };

export type KvResult =
  | { readonly op: "put"; readonly previous: Uint8Array | null }
  | { readonly op: "delete"; readonly previous: Uint8Array | null }
  | { readonly op: "get"; readonly value: Uint8Array | null }
  /** An empty entry (new leader) or a membership change. */
  | { readonly op: "noop" }
  | { readonly op: "invalid"; readonly reason: string };

export const MAX_KEY_BYTES = 64 * 1024;
const OPS = { put: 1, delete: 2, get: 3 } as const;

export function varintSize(n: number): number {
  let s = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

export function writeVarint(b: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    b[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  b[pos++] = n;
  return pos;
}

/** Returns [value, next position], or null if truncated or longer than 7 bytes. */
export function readVarint(b: Uint8Array, pos: number): [number, number] | null {
  let n = 0;
  let mul = 1;
  for (let i = 0; i < 7; i++) {
    if (pos >= b.length) return null;
    const byte = b[pos++]!;
    n += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return [n, pos];
    mul *= 128;
  }
  return null;
}

export function encodeKvCommand(cmd: KvCommand): Uint8Array {
  if (cmd.key.length > MAX_KEY_BYTES)
    throw new InvalidArgumentError(`key is ${cmd.key.length} bytes (max ${MAX_KEY_BYTES})`);
  const valueBytes = cmd.op === "put" ? cmd.value.length : 0;
  // From Node's shared buffer pool (every byte is written below): a command
  // lives as long as its log entry, and entries are dropped in order, so
  // pooled slabs are freed in order too; a buffer of its own would cost ~1 µs.
  const b = Buffer.allocUnsafe(1 + varintSize(cmd.key.length) + cmd.key.length + valueBytes);
  b[0] = OPS[cmd.op];
  let p = writeVarint(b, 1, cmd.key.length);
  b.set(cmd.key, p);
  p += cmd.key.length;
  if (cmd.op === "put") b.set(cmd.value, p);
  return b;
}

/**
 * Where a command's parts lie in its bytes (the value, for a put, is
 * `[keyEnd, length)`), without copying them; a reason string if the bytes are
 * not a valid command.
 */
export function parseKvCommand(
  b: Uint8Array,
): { op: KvCommand["op"]; keyStart: number; keyEnd: number } | string {
  if (b.length < 2) return "command too short";
  const kl = readVarint(b, 1);
  if (kl === null) return "bad key length";
  const [keyLen, keyStart] = kl;
  const keyEnd = keyStart + keyLen;
  if (keyLen > MAX_KEY_BYTES || keyEnd > b.length) return "key length out of range";
  switch (b[0]) {
    case OPS.put:
      return { op: "put", keyStart, keyEnd };
    case OPS.delete:
      return keyEnd === b.length ? { op: "delete", keyStart, keyEnd } : "trailing bytes after delete";
    case OPS.get:
      return keyEnd === b.length ? { op: "get", keyStart, keyEnd } : "trailing bytes after get";
    default:
      return `unknown op ${b[0]}`;
  }
}

/** Decodes a command (key and value copied); returns a reason string if the bytes are not a valid command. */
export function decodeKvCommand(b: Uint8Array): KvCommand | string {
  const c = parseKvCommand(b);
  if (typeof c === "string") return c;
  // Plain Uint8Array copies, whatever `b` is (a Buffer's own slice is a view).
  const key = new Uint8Array(b.subarray(c.keyStart, c.keyEnd));
  return c.op === "put" ? { op: "put", key, value: new Uint8Array(b.subarray(c.keyEnd)) } : { op: c.op, key };
}
