/**
 * The WAL write queue's pieces: what can be queued (writes, segment rolls,
 * sync barriers, manifest updates; the engine's flush loop runs them in
 * order), and the positioned, vectored write of a run of queued buffers.
 */

import { writev, writevSync } from "node:fs";
import { promisify } from "node:util";
import { StorageError } from "../../errors.ts";
import { wrapIoError } from "./fsutil.ts";
import type { Manifest } from "./manifest.ts";
import type { Segment } from "./segment.ts";

const writevAsync = promisify(writev);

export const MAX_WRITEV_BYTES = 8 * 1024 * 1024;

/**
 * Runs up to this size are written synchronously: copying them into the page
 * cache takes microseconds, while a thread-pool round trip waits for the event
 * loop to come back to it, which under load (a batch being applied, messages
 * being decoded) delays the fdatasync behind it by milliseconds.
 */
export const SYNC_WRITE_MAX_BYTES = 1024 * 1024;

export type QueueItem =
  | { readonly kind: "write"; readonly seg: Segment; readonly pos: number; readonly buf: Buffer }
  | { readonly kind: "roll"; readonly from: Segment; readonly to: Segment; readonly tmpPath: string }
  | { readonly kind: "sync"; readonly seg: Segment; readonly done: Deferred }
  | {
      readonly kind: "manifest";
      readonly seg: Segment;
      readonly manifest: Manifest;
      readonly done: Deferred;
    };

export interface Deferred {
  resolve(): void;
  reject(err: unknown): void;
}

export function deferred(): { promise: Promise<void>; done: Deferred } {
  let done!: Deferred;
  const promise = new Promise<void>((resolve, reject) => {
    done = { resolve, reject };
  });
  return { promise, done };
}

/**
 * Writes `bufs` (`bytes` in all) at `pos` of `seg` with writev calls (at most
 * IOV_MAX buffers each). Up to SYNC_WRITE_MAX_BYTES the write is done when
 * this returns (undefined; a failure throws); a larger one returns a promise.
 */
export function writeAllAt(
  seg: Segment,
  bufs: Buffer[],
  bytes: number,
  pos: number,
): Promise<void> | undefined {
  if (bytes > SYNC_WRITE_MAX_BYTES) return writeAllAtAsync(seg, bufs, bytes, pos);
  let written = 0;
  try {
    while (written < bytes) {
      const bytesWritten = writevSync(seg.fd, chunkFrom(bufs, written), pos + written);
      if (bytesWritten === 0) throw new StorageError(`write to ${seg.path} made no progress`);
      written += bytesWritten;
    }
  } catch (err) {
    throw wrapIoError(`writing ${seg.path} at ${pos + written}`, err);
  }
  return undefined;
}

async function writeAllAtAsync(seg: Segment, bufs: Buffer[], bytes: number, pos: number): Promise<void> {
  let written = 0;
  try {
    while (written < bytes) {
      const { bytesWritten } = await writevAsync(seg.fd, chunkFrom(bufs, written), pos + written);
      if (bytesWritten === 0) throw new StorageError(`write to ${seg.path} made no progress`);
      written += bytesWritten;
    }
  } catch (err) {
    throw wrapIoError(`writing ${seg.path} at ${pos + written}`, err);
  }
}

/** The buffers after the first `skip` bytes, at most 1024 of them (IOV_MAX). */
function chunkFrom(bufs: Buffer[], skip: number): Buffer[] {
  return (skip === 0 ? bufs : sliceBuffers(bufs, skip)).slice(0, 1024);
}

function sliceBuffers(bufs: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  let s = skip;
  for (const b of bufs) {
    if (s >= b.length) {
      s -= b.length;
      continue;
    }
    out.push(s > 0 ? b.subarray(s) : b);
    s = 0;
  }
  return out;
}
