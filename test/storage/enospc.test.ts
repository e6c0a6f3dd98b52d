// Disk full, for real: a 1 MiB tmpfs (mounting needs root; without it the test
// is skipped and says why). The write that needs a new segment must fail with
// a clear error, change nothing, and succeed once space is back.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, rmdirSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { StorageError } from "../../src/errors.ts";
import { FileStorageEngine } from "../../src/storage/file/engine.ts";
import { FileSnapshotStore } from "../../src/storage/snapshot-store.ts";
import { makeEntries } from "../../src/testing/storage-suite.ts";

const mountPoint = mkdtempSync(join(tmpdir(), "tsraft-enospc-"));
let mounted = false;
let why = "";
try {
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint], { stdio: "pipe" });
  mounted = true;
} catch (err) {
  why = `cannot mount a tmpfs here (${String(err).split("\n")[0]}); run as root to exercise ENOSPC`;
}

/** Fills the file system until ENOSPC; returns the filler's path. */
function fill(dir: string): string {
  const path = join(dir, "filler");
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, "ENOSPC");
  } finally {
    closeSync(fd);
  }
  return path;
}

describe("disk full (ENOSPC on a real tmpfs)", { skip: mounted ? false : why }, () => {
  after(() => {
    if (mounted) execFileSync("umount", [mountPoint]);
    rmdirSync(mountPoint);
  });

  it("refuses the write that needs space, keeps the log intact, recovers when space returns", async () => {
    const dir = join(mountPoint, "wal");
    const s = new FileStorageEngine({
      dir,
      segmentSizeBytes: 64 * 1024,
      logger: { warn: () => {}, info: () => {} },
    });
    await s.open();
    const filler = fill(mountPoint);
    let next = 1;
    let failure: unknown = null;
    // The open segment and the one preallocated beside it still have room;
    // the write after them needs a fresh segment, which cannot be made.
    for (let round = 0; round < 100 && failure === null; round++) {
      const before = s.lastIndex();
      try {
        await s.append(makeEntries(next, next + 10, 1, 1000));
        next += 10;
        await s.sync();
      } catch (err) {
        failure = err;
        assert.equal(s.lastIndex(), before, "a refused append must change nothing");
      }
    }
    assert.ok(failure instanceof StorageError, `expected StorageError, got ${String(failure)}`);
    assert.match((failure as Error).message, /ENOSPC|disk full/);
    // Still healthy: reads, hard state and syncs work; the log is what was acknowledged.
    const acked = next - 1;
    assert.equal(s.lastIndex(), acked);
    assert.equal(s.entries(1, acked + 1, 1e9).length, acked);
    await s.saveHardState({ term: 1, vote: 1, commit: acked });
    await s.sync();
    // Space comes back: the same write now succeeds.
    rmSync(filler);
    await s.append(makeEntries(next, next + 10, 1, 1000));
    next += 10;
    await s.sync();
    await s.close();
    const again = new FileStorageEngine({
      dir,
      segmentSizeBytes: 64 * 1024,
      logger: { warn: () => {}, info: () => {} },
    });
    await again.open();
    assert.equal(again.lastIndex(), next - 1);
    assert.equal(again.hardState().commit, acked);
    for (const e of again.entries(1, next, 1e9)) assert.equal(e.data.length, 1000);
    await again.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a snapshot that does not fit fails cleanly and leaves no partial file", async () => {
    const dir = join(mountPoint, "snaps");
    const store = new FileSnapshotStore({ dir });
    const filler = fill(mountPoint);
    async function* big(): AsyncIterable<Uint8Array> {
      for (let i = 0; i < 8; i++) yield new Uint8Array(64 * 1024);
    }
    await assert.rejects(
      store.write(5, 1, new Uint8Array(0), big()),
      (err: unknown) => err instanceof StorageError && /ENOSPC/.test((err as Error).message),
    );
    assert.equal(store.latest(), null);
    assert.deepEqual(readdirSync(dir), []);
    rmSync(filler);
    const info = await store.write(5, 1, new Uint8Array(0), big());
    assert.equal(info.sizeBytes, 8 * 64 * 1024);
    assert.deepEqual(readdirSync(dir), ["snap-0000000000000005-0000000000000001.snap"]);
    rmSync(dir, { recursive: true, force: true });
  });
});
