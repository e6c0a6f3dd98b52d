// The file engine's flush loop under injected I/O failures, and the moment it
// issues its writes. `fs.fdatasync` and `fs.writevSync` are replaced (fault
// injection only) before the engine is loaded, so its promisified bindings
// capture the wrappers; each delegates to the real call unless told to fail.
import assert from "node:assert/strict";
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { StorageError } from "../../src/errors.ts";
import { type Entry, EntryType } from "../../src/raft/types.ts";

const realFdatasync = fs.fdatasync;
const realWritevSync = fs.writevSync;
/** Counts and fails only fdatasyncs of WAL segments. */
const io = { fdatasyncCalls: 0, failFdatasync: false, failWritev: false };

/** A WAL segment's fd (not the background preallocation's, which syncs on its own schedule). */
const isWal = (fd: number): boolean => {
  try {
    return /wal-\d+\.log$/.test(fs.readlinkSync(`/proc/self/fd/${fd}`));
  } catch {
    return false;
  }
};

fs.fdatasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
  if (!isWal(fd)) return realFdatasync(fd, cb);
  io.fdatasyncCalls++;
  if (io.failFdatasync) {
    const err: NodeJS.ErrnoException = new Error("EIO: i/o error, fdatasync (injected)");
    err.code = "EIO";
    setImmediate(() => cb(err));
    return;
  }
  realFdatasync(fd, cb);
}) as typeof fs.fdatasync;
fs.writevSync = ((fd: number, bufs: NodeJS.ArrayBufferView[], pos?: number | null) => {
  if (io.failWritev) {
    const err: NodeJS.ErrnoException = new Error("EIO: i/o error, writev (injected)");
    err.code = "EIO";
    throw err;
  }
  return realWritevSync(fd, bufs, pos ?? undefined);
}) as typeof fs.writevSync;
syncBuiltinESMExports();
const { FileStorageEngine } = await import("../../src/storage/file/engine.ts");

after(() => {
  fs.fdatasync = realFdatasync;
  fs.writevSync = realWritevSync;
  syncBuiltinESMExports();
});

const quiet = { warn: () => {}, info: () => {} };
const entries = (from: number, n: number): Entry[] =>
  Array.from({ length: n }, (_, i) => ({
    index: from + i,
    term: 1,
    type: EntryType.Normal,
    data: new Uint8Array(100).fill((from + i) & 0xff),
  }));

/** Settles within `ms` or reports that it hung. */
function settled<T>(p: Promise<T>, ms = 5000): Promise<{ ok: true; value: T } | { ok: false; err: unknown }> {
  return Promise.race([
    p.then(
      (value) => ({ ok: true as const, value }),
      (err: unknown) => ({ ok: false as const, err }),
    ),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms),
    ),
  ]);
}

type Store = InstanceType<typeof FileStorageEngine>;

async function openStore(dir: string): Promise<Store> {
  const store = new FileStorageEngine({ dir, segmentSizeBytes: 256 * 1024, logger: quiet });
  await store.open();
  return store;
}

/** Two synced entries, then a batch (append + sync) written while `fault` is injected. */
async function batchUnder(store: Store, fault: "failFdatasync" | "failWritev") {
  await store.append(entries(1, 2));
  await store.sync();
  io[fault] = true;
  const r = await settled(Promise.all([store.append(entries(3, 2)), store.sync()]));
  assert.equal(r.ok, false);
  return r;
}

async function withStore(fn: (dir: string, store: Store) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-io-"));
  const store = await openStore(dir);
  try {
    await fn(dir, store);
  } finally {
    io.failFdatasync = false;
    io.failWritev = false;
    await store.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

describe("file engine: I/O failures and write timing", () => {
  it("sync() has written the batch and started its fdatasync by the time it returns", async () => {
    await withStore(async (dir, store) => {
      await store.append(entries(1, 3));
      await store.sync();
      const before = io.fdatasyncCalls;
      const appended = store.append(entries(4, 5));
      const synced = store.sync();
      // Nothing awaited yet: the caller (the runtime) goes on to apply a batch
      // while the disk works, instead of the write waiting for it.
      assert.equal(io.fdatasyncCalls, before + 1, "fdatasync issued within sync()");
      await Promise.all([appended, synced]);
      await store.close();
      const again = await openStore(dir);
      assert.equal(again.lastIndex(), 8);
      assert.deepEqual(
        new Uint8Array(again.entries(4, 9, Number.MAX_SAFE_INTEGER)[4]!.data),
        entries(8, 1)[0]!.data,
      );
      await again.close();
    });
  });

  it("plain writes are coalesced until the end of the turn (no fdatasync without a sync)", async () => {
    await withStore(async (_dir, store) => {
      const before = io.fdatasyncCalls;
      const a = store.append(entries(1, 2));
      const b = store.saveHardState({ term: 1, vote: 0, commit: 0 });
      assert.equal(io.fdatasyncCalls, before);
      await Promise.all([a, b]);
      await new Promise((r) => setImmediate(r));
      assert.equal(io.fdatasyncCalls, before, "no sync was asked for");
      assert.equal(store.lastIndex(), 2);
    });
  });

  it("a failing fdatasync rejects the sync that waits on it (no hang) and every later write", async () => {
    await withStore(async (dir, store) => {
      const r = await batchUnder(store, "failFdatasync");
      assert.ok(!r.ok && r.err instanceof StorageError, `a StorageError, got ${!r.ok && String(r.err)}`);
      assert.match(String(!r.ok && r.err), /fdatasync/);
      io.failFdatasync = false;
      const later = await settled(store.append(entries(5, 1)));
      assert.equal(later.ok, false, "the store stays failed until reopened");
      await store.close().catch(() => {});
      // Reopened: what was synced is there; the rest may or may not be, never torn.
      const again = await openStore(dir);
      assert.ok(again.lastIndex() >= 2 && again.lastIndex() <= 4, `last index ${again.lastIndex()}`);
      await again.close();
    });
  });

  it("a failing write rejects the sync queued behind it and the store fails stop", async () => {
    await withStore(async (_dir, store) => {
      const r = await batchUnder(store, "failWritev");
      assert.match(String(!r.ok && r.err), /writing .*wal/);
      io.failWritev = false;
      assert.equal((await settled(store.sync())).ok, false);
    });
  });

  it("a failing fdatasync behind a compaction's manifest rejects the compaction", async () => {
    await withStore(async (_dir, store) => {
      await store.append(entries(1, 10));
      await store.saveHardState({ term: 1, vote: 0, commit: 10 });
      await store.sync();
      io.failFdatasync = true;
      const r = await settled(
        store.compact({
          index: 5,
          term: 1,
          confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
        }),
      );
      assert.equal(r.ok, false, "compaction rejected, not left pending");
      assert.ok(!r.ok && r.err instanceof StorageError, `a StorageError, got ${!r.ok && String(r.err)}`);
    });
  });
});
