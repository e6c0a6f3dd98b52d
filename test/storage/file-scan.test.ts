// The recovery scan (scan.mjs, also run on worker threads) against the
// reference CRC and against itself: in-thread and worker recovery must agree.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { crc32c } from "../../src/storage/crc32c.ts";
import { FileStorageEngine } from "../../src/storage/file/engine.ts";
import { crc32cWords } from "../../src/storage/file/scan.mjs";
import { makeEntries } from "../../src/testing/storage-suite.ts";

const quiet = { warn: () => {}, info: () => {} };

describe("recovery scan", () => {
  it("computes the same CRC32C as crc32c.ts at every alignment and length", () => {
    const buf = new Uint8Array(4096 + 16);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 2654435761) >>> 24;
    const words = new Int32Array(buf.buffer);
    for (let start = 0; start < 12; start++) {
      for (const len of [0, 1, 7, 8, 15, 16, 17, 31, 64, 127, 128, 129, 1000, 4096]) {
        const end = start + len;
        const seed = len * 31;
        assert.equal(
          crc32cWords(buf, words, seed, start, end),
          crc32c(buf, seed, start, end),
          `${start}+${len}`,
        );
      }
    }
  });

  it("recovers the same log with and without scan workers (truncations, term changes, many segments)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsraft-scan-"));
    try {
      const opts = { dir, segmentSizeBytes: 64 * 1024, indexStrideEntries: 5, logger: quiet };
      const s = new FileStorageEngine(opts);
      await s.open();
      let term = 1;
      for (let i = 1; i <= 3000; i += 37) {
        if (i % 5 === 0) term++;
        await s.append(makeEntries(i, i + 37, term, 50 + (i % 300)));
        if (i % 11 === 0) await s.saveHardState({ term, vote: 1, commit: 0 });
      }
      await s.truncateSuffix(2500);
      term++;
      await s.append(makeEntries(2500, 2800, term, 120));
      await s.sync();
      const want = s.entries(1, s.lastIndex() + 1, 1e12);
      await s.close();
      for (const recoveryWorkers of [0, 1, 3]) {
        const r = new FileStorageEngine({ ...opts, recoveryWorkers });
        await r.open();
        try {
          assert.ok(r.segmentCount() > 10);
          assert.equal(r.lastIndex(), 2799);
          const got = r.entries(1, r.lastIndex() + 1, 1e12);
          assert.equal(got.length, want.length);
          for (let k = 0; k < got.length; k++) {
            assert.equal(got[k]!.index, want[k]!.index);
            assert.equal(got[k]!.term, want[k]!.term);
            assert.equal(r.term(got[k]!.index), want[k]!.term);
            assert.ok(Buffer.from(got[k]!.data).equals(want[k]!.data), `entry ${got[k]!.index}`);
          }
        } finally {
          await r.close();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
