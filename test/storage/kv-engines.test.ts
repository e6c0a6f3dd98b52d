import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { open as openLmdb } from "lmdb";
import { CorruptionError, StoppedError } from "../../src/errors.ts";
import { EntryType } from "../../src/raft/types.ts";
import {
  entryKey,
  type KvBackend,
  type KvLogStore,
  type KvLogStoreOptions,
} from "../../src/storage/kv-log-store.ts";
import { LmdbStorageEngine } from "../../src/storage/lmdb.ts";
import { RocksDbStorageEngine } from "../../src/storage/rocksdb.ts";
import { runLogStoreSuite } from "../../src/testing/storage-suite.ts";

runLogStoreSuite("lmdb", async (options) => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-lmdb-"));
  const open = async () => {
    const s = new LmdbStorageEngine({ ...options, dir, mapSizeBytes: 256 * 1024 * 1024 });
    await s.open();
    return s;
  };
  return { store: await open(), reopen: open, destroy: () => rm(dir, { recursive: true, force: true }) };
});

runLogStoreSuite("rocksdb", async (options) => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-rocks-"));
  const open = async () => {
    const s = new RocksDbStorageEngine({ ...options, dir });
    await s.open();
    return s;
  };
  return { store: await open(), reopen: open, destroy: () => rm(dir, { recursive: true, force: true }) };
});

/** The KV backends' own failure modes: damaged records, closing under load, bounded batches. */
type Kind = "lmdb" | "rocksdb";
const engines: Record<Kind, (dir: string, o?: KvLogStoreOptions) => KvLogStore> = {
  lmdb: (dir, o = {}) => new LmdbStorageEngine({ ...o, dir, mapSizeBytes: 256 * 1024 * 1024 }),
  rocksdb: (dir, o = {}) => new RocksDbStorageEngine({ ...o, dir }),
};

/** Writes raw keys (null deletes) straight into a closed store's database. */
async function rawWrite(kind: Kind, dir: string, kvs: [Buffer, Buffer | null][]): Promise<void> {
  if (kind === "lmdb") {
    const db = openLmdb<Buffer, Buffer>({ path: dir, keyEncoding: "binary", encoding: "binary" });
    await db.transaction(() => {
      for (const [k, v] of kvs) v === null ? db.remove(k) : db.put(k, v);
    });
    await db.close();
  } else {
    const { RocksLevel } = createRequire(import.meta.url)("@nxtedition/rocksdb");
    const db = new RocksLevel(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
    await db.open();
    await db.batch(
      kvs.map(([k, v]) => (v === null ? { type: "del", key: k } : { type: "put", key: k, value: v })),
      { sync: true },
    );
    await db.close();
  }
}

const entries = (lo: number, hi: number, term: number) =>
  Array.from({ length: hi - lo }, (_, i) => ({
    index: lo + i,
    term,
    type: EntryType.Normal,
    data: new Uint8Array(16).fill(lo + i),
  }));

for (const kind of ["lmdb", "rocksdb"] as const) {
  describe(`${kind} log store: damage, closing, batches`, () => {
    let dir = "";
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), `tsraft-${kind}-x-`));
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    async function written(): Promise<void> {
      const s = engines[kind](dir);
      await s.open();
      await s.append(entries(1, 6, 1));
      await s.saveHardState({ term: 1, vote: 1, commit: 5 });
      await s.close();
    }

    it("damaged metadata: CorruptionError at open, and the directory is released (not left locked)", async () => {
      const B = (s: string) => Buffer.from(s);
      const snap4 =
        '{"index":4,"term":1,"confState":{"voters":[1],"learners":[],"votersOutgoing":[],"learnersNext":[],"autoLeave":false}}';
      for (const kvs of [
        [[B("m:hs"), B('{"term":3,"vo')]],
        [[B("m:hs"), B('{"term":"x","vote":null}')]],
        [[B("m:hs"), B('{"term":1,"vote":1,"commit":99}')]],
        [[B("m:last"), B('"5"')]],
        [[B("m:last"), B("4.5")]],
        [
          [B("m:snap"), B(snap4)],
          [B("m:last"), B("2")],
        ],
      ] as [Buffer, Buffer][][]) {
        await rm(dir, { recursive: true, force: true });
        await written();
        await rawWrite(kind, dir, kvs);
        for (let attempt = 0; attempt < 2; attempt++) {
          // The second attempt in the same process must meet the damage again, not a lock.
          await assert.rejects(
            engines[kind](dir).open(),
            CorruptionError,
            `${kvs[0]![0]} attempt ${attempt}`,
          );
        }
      }
    });

    it("a damaged entry is a CorruptionError when read, never garbage", async () => {
      for (const value of [
        Buffer.from([0, 0, 0, 1]),
        Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]),
        Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 7, 1, 2]),
        Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
      ]) {
        await rm(dir, { recursive: true, force: true });
        await written();
        await rawWrite(kind, dir, [[entryKey(3), value]]);
        const s = engines[kind](dir, { cacheMaxEntries: 1, cacheMaxBytes: 1 });
        await s.open();
        assert.throws(() => s.entries(1, 6, 1e9), CorruptionError);
        await s.close();
      }
      // A term below the entry before it.
      await rm(dir, { recursive: true, force: true });
      const s0 = engines[kind](dir);
      await s0.open();
      await s0.append([...entries(1, 3, 1), ...entries(3, 6, 9)]);
      await s0.saveHardState({ term: 9, vote: 1, commit: 5 });
      await s0.close();
      await rawWrite(kind, dir, [[entryKey(4), Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 5])]]);
      const s = engines[kind](dir, { cacheMaxEntries: 1, cacheMaxBytes: 1 });
      await s.open();
      assert.throws(() => s.entries(1, 6, 1e9), /below the entry before it/);
      await s.close();
    });

    it("reads while closing get StoppedError once the database is closing (RocksDB crashed on them)", async () => {
      const s = engines[kind](dir, { cacheMaxEntries: 1, cacheMaxBytes: 1 });
      await s.open();
      await s.append(entries(1, 101, 1));
      await s.sync();
      const closing = s.close();
      await new Promise((r) => setImmediate(r));
      assert.throws(() => s.term(5), StoppedError);
      await closing;
    });

    it("close() flushes writes queued behind backpressure before it (maxPendingBytes)", async () => {
      const s = engines[kind](dir, { maxPendingBytes: 1024 });
      await s.open();
      const writes = [];
      for (let i = 0; i < 5; i++) writes.push(s.append(entries(1 + i * 20, 21 + i * 20, 1)));
      writes.push(s.saveHardState({ term: 1, vote: 1, commit: 100 }), s.sync());
      const closed = s.close();
      await Promise.all(writes);
      await closed;
      const r = engines[kind](dir);
      await r.open();
      assert.equal(r.lastIndex(), 100);
      assert.deepEqual(r.hardState(), { term: 1, vote: 1, commit: 100 });
      await r.close();
    });

    it("close() during open() closes what the open opened (the directory is not left locked)", async () => {
      const s = engines[kind](dir);
      const opening = s.open();
      await s.close();
      await opening;
      const r = engines[kind](dir);
      await r.open();
      await r.close();
    });

    it("a compaction deletes in batches within maxPendingBytes, and the deleted keys are gone", async () => {
      const batches: number[] = [];
      const s = engines[kind](dir, { maxPendingBytes: 64 * 1024 });
      // Count the ops of every batch the store writes (openBackend is the store's own hook).
      const hooked = s as unknown as { openBackend(): Promise<KvBackend> };
      const openBackend = hooked.openBackend.bind(s);
      let probe: KvBackend | null = null;
      hooked.openBackend = async () => {
        const kv = await openBackend();
        probe = kv;
        return {
          getSync: (k) => kv.getSync(k),
          write: (ops) => {
            batches.push(ops.length);
            return kv.write(ops);
          },
          close: () => kv.close(),
        };
      };
      await s.open();
      const n = 20_000;
      for (let i = 1; i <= n; i += 1000) await s.append(entries(i, i + 1000, 1));
      await s.saveHardState({ term: 1, vote: 1, commit: n });
      await s.sync();
      batches.length = 0;
      await s.compact({
        index: n - 10,
        term: 1,
        confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      });
      const bound = (64 * 1024) / 16 + 16;
      assert.ok(batches.length > 1, `${batches.length} batch(es)`);
      assert.ok(Math.max(...batches) <= bound, `largest batch ${Math.max(...batches)} ops, bound ${bound}`);
      assert.equal(probe!.getSync(entryKey(1)), undefined);
      assert.equal(probe!.getSync(entryKey(n - 10)), undefined);
      assert.notEqual(probe!.getSync(entryKey(n - 9)), undefined);
      await s.close();
      const r = engines[kind](dir);
      await r.open();
      assert.equal(r.firstIndex(), n - 9);
      assert.equal(r.entries(n - 9, n + 1, 1e9).length, 10);
      await r.close();
    });
  });
}
