import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LockedError } from "../../src/errors.ts";
import { MemoryDisk, MemoryStorageEngine } from "../../src/storage/memory.ts";
import { makeEntries, runLogStoreSuite } from "../../src/testing/storage-suite.ts";

for (const volatileUntilSync of [false, true]) {
  runLogStoreSuite(`memory (volatileUntilSync=${volatileUntilSync})`, async (options) => {
    const disk = new MemoryDisk();
    const open = async () => {
      const s = new MemoryStorageEngine({ ...options, disk, volatileUntilSync });
      await s.open();
      return s;
    };
    return { store: await open(), reopen: open, destroy: async () => {} };
  });
}

describe("MemoryStorageEngine", () => {
  it("refuses a second engine on the same disk", async () => {
    const disk = new MemoryDisk();
    const a = new MemoryStorageEngine({ disk });
    await a.open();
    await assert.rejects(new MemoryStorageEngine({ disk }).open(), LockedError);
    await a.close();
    const b = new MemoryStorageEngine({ disk });
    await b.open();
    await b.close();
  });

  it("crash keeps only what reached the disk", async () => {
    const disk = new MemoryDisk();
    const a = new MemoryStorageEngine({ disk, volatileUntilSync: true });
    await a.open();
    await a.append(makeEntries(1, 4, 1));
    await a.sync();
    await a.append(makeEntries(4, 8, 1));
    await a.truncateSuffix(6); // durable operations flush what came before them
    await a.append(makeEntries(6, 9, 2));
    await a.crash();
    const b = new MemoryStorageEngine({ disk, volatileUntilSync: true });
    await b.open();
    assert.equal(b.lastIndex(), 5);
    assert.equal(disk.syncCount, 1);
    await b.close();
  });
});
