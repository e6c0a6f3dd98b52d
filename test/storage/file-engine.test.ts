import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileStorageEngine, type StorageLogger } from "../../src/storage/file/engine.ts";
import { runLogStoreSuite } from "../../src/testing/storage-suite.ts";

export const quietLogger: StorageLogger = { warn: () => {}, info: () => {} };

runLogStoreSuite("file", async (options) => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-file-"));
  const open = async () => {
    // Small segments so the suite crosses segment boundaries and compaction deletes files.
    const s = new FileStorageEngine({
      ...options,
      dir,
      segmentSizeBytes: 256 * 1024,
      indexStrideEntries: 4,
      logger: quietLogger,
    });
    await s.open();
    return s;
  };
  return { store: await open(), reopen: open, destroy: () => rm(dir, { recursive: true, force: true }) };
});
