/**
 * The manifest: which segment the log starts at and the snapshot it starts
 * from. Replaced atomically (temp → fsync → rename → fsync dir), so a crash at
 * any instant leaves the old or the new one; a checksum catches anything else.
 *
 * Layout: "TSRM" | u32 LE crc32c(json) | u32 LE length | JSON.
 */

import { existsSync, readFileSync } from "node:fs";
import { CorruptionError } from "../../errors.ts";
import type { SnapshotMetadata } from "../../raft/types.ts";
import { crc32c } from "../crc32c.ts";
import { writeFileAtomic } from "./fsutil.ts";

export interface Manifest {
  readonly version: 1;
  readonly firstSegmentSeq: number;
  readonly snapshot: SnapshotMetadata;
}

const MAGIC = "TSRM";

export function encodeManifest(m: Manifest): Buffer {
  const json = Buffer.from(JSON.stringify(m));
  const b = Buffer.alloc(12 + json.length);
  b.write(MAGIC, 0, "latin1");
  b.writeUInt32LE(crc32c(json), 4);
  b.writeUInt32LE(json.length, 8);
  json.copy(b, 12);
  return b;
}

export function readManifest(path: string): Manifest | null {
  if (!existsSync(path)) return null;
  const b = readFileSync(path);
  if (b.length < 12 || b.toString("latin1", 0, 4) !== MAGIC) {
    throw new CorruptionError(path, 0, "not a tsraft manifest");
  }
  const len = b.readUInt32LE(8);
  if (12 + len !== b.length) throw new CorruptionError(path, 8, `manifest length ${len} != file size`);
  const json = b.subarray(12);
  if (crc32c(json) !== b.readUInt32LE(4)) throw new CorruptionError(path, 4, "manifest checksum mismatch");
  const m = JSON.parse(json.toString("utf8")) as Manifest;
  if (m.version !== 1 || !Number.isSafeInteger(m.firstSegmentSeq) || m.firstSegmentSeq < 1) {
    throw new CorruptionError(path, 12, "unsupported manifest version or bad segment number");
  }
  return m;
}

export function writeManifest(path: string, m: Manifest): Promise<void> {
  return writeFileAtomic(path, encodeManifest(m));
}
