import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
