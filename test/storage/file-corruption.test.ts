// Damaged files: random byte flips and truncations. Opening must either
// recover (damage confined to the unsynced-looking tail) or fail with a
// CorruptionError naming the file; it must never throw anything else and
// never return an entry that differs from what was written.
import assert from "node:assert/strict";
import {
  closeSync,
  cpSync,
  openSync,
  readdirSync,
  readSync,
  statSync,
  truncateSync,
  writeSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CorruptionError } from "../../src/errors.ts";
import type { Entry } from "../../src/raft/types.ts";
import { FileStorageEngine } from "../../src/storage/file/engine.ts";
import { ENTRY_OVERHEAD_BYTES } from "../../src/storage/file/record.ts";
import { makeEntries } from "../../src/testing/storage-suite.ts";

const iterations = process.env.TSRAFT_LONG === "1" ? 600 : 120;
const SEG = 64 * 1024;
const N = 600;
const COMMIT = 450;

function xorshift(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

const quiet = { warn: () => {}, info: () => {} };

async function build(dir: string): Promise<Entry[]> {
  const s = new FileStorageEngine({ dir, segmentSizeBytes: SEG, logger: quiet });
  await s.open();
  const all: Entry[] = [];
  for (let i = 1; i <= N; i += 20) {
    const es = makeEntries(i, i + 20, 1 + (i >> 7), 100 + (i % 500));
    all.push(...es);
    await s.append(es);
  }
  await s.saveHardState({ term: 4, vote: 1, commit: COMMIT });
  await s.sync();
  await s.close();
  return all;
}

/** The written end of a segment: after it, the preallocated zeros. */
function dataEnd(path: string): number {
  const b = Buffer.alloc(statSync(path).size);
  const fd = openSync(path, "r");
  readSync(fd, b, 0, b.length, 0);
  closeSync(fd);
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return end;
}

describe("file engine corruption", () => {
  // Once in-thread, once with sealed segments scanned on worker threads.
  for (const [label, recoveryWorkers, runs] of [
    ["", 0, iterations],
    [" (scan workers)", 2, iterations / 2],
  ] as const)
    it(`recovers or fails clearly on ${runs} random corruptions, never returning wrong data${label}`, {
      timeout: 120_000,
    }, async () => {
      const root = await mkdtemp(join(tmpdir(), "tsraft-corrupt-"));
      try {
        const pristine = join(root, "pristine");
        const expected = await build(pristine);
        const segs = readdirSync(pristine)
          .filter((n) => n.startsWith("wal-"))
          .sort();
        assert.ok(segs.length >= 3, `want several segments, got ${segs.length}`);
        const outcomes = { recoveredFull: 0, recoveredShorter: 0, corruption: 0 };
        for (let iter = 0; iter < runs; iter++) {
          const rand = xorshift(iter * 7919 + 17);
          const dir = join(root, `case-${iter}`);
          cpSync(pristine, dir, { recursive: true });
          // A quarter of the cases aim at the tail of the last segment, where a
          // torn write would be: the only place recovery may drop records.
          const aimAtTail = rand(4) === 0;
          const target = aimAtTail
            ? segs[segs.length - 1]!
            : rand(10) === 0
              ? "MANIFEST"
              : segs[rand(segs.length)]!;
          const path = join(dir, target);
          const end = target === "MANIFEST" ? statSync(path).size : dataEnd(path);
          const offset = aimAtTail
            ? Math.max(0, end - 300 + rand(364))
            : rand(Math.max(1, end + (target === "MANIFEST" ? 0 : 64)));
          const inLastSegment = target === segs[segs.length - 1];
          if (!aimAtTail && rand(3) === 0 && target !== "MANIFEST") {
            truncateSync(path, offset);
          } else {
            const fd = openSync(path, "r+");
            const b = Buffer.alloc(1);
            readSync(fd, b, 0, 1, offset);
            b[0]! ^= 1 << rand(8);
            writeSync(fd, b, 0, 1, offset);
            closeSync(fd);
          }
          const s = new FileStorageEngine({ dir, segmentSizeBytes: SEG, logger: quiet, recoveryWorkers });
          try {
            await s.open();
          } catch (err) {
            assert.ok(err instanceof CorruptionError, `case ${iter} (${target}@${offset}): ${String(err)}`);
            assert.ok(err.file.includes(dir), `case ${iter}: error names ${err.file}`);
            outcomes.corruption++;
            await rm(dir, { recursive: true, force: true });
            continue;
          }
          try {
            const last = s.lastIndex();
            assert.ok(last >= COMMIT, `case ${iter}: committed entries lost (last ${last})`);
            if (last < N) assert.ok(inLastSegment, `case ${iter}: entries lost outside the last segment`);
            const got = s.entries(1, last + 1, 1e12);
            assert.equal(got.length, last);
            for (const e of got) {
              const want = expected[e.index - 1]!;
              assert.equal(e.term, want.term, `case ${iter}: term of ${e.index}`);
              assert.ok(Buffer.from(e.data).equals(want.data), `case ${iter}: data of entry ${e.index}`);
            }
            if (last === N) outcomes.recoveredFull++;
            else outcomes.recoveredShorter++;
          } finally {
            await s.close();
            await rm(dir, { recursive: true, force: true });
          }
        }
        // Every kind of outcome must actually occur, or the test is not probing what it claims.
        assert.ok(
          outcomes.corruption > 0 && outcomes.recoveredFull + outcomes.recoveredShorter > 0,
          JSON.stringify(outcomes),
        );
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
});

describe("file engine recovery edges", () => {
  it("repairs garbage in the preallocated zeros after the last record without losing data", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsraft-corrupt-"));
    try {
      const expected = await build(dir);
      const segs = readdirSync(dir)
        .filter((n) => n.startsWith("wal-"))
        .sort();
      const last = join(dir, segs[segs.length - 1]!);
      const fd = openSync(last, "r+");
      writeSync(fd, Buffer.from([0xde, 0xad]), 0, 2, dataEnd(last) + 100);
      closeSync(fd);
      const warnings: string[] = [];
      const s = new FileStorageEngine({
        dir,
        segmentSizeBytes: SEG,
        logger: { warn: (_o, m) => warnings.push(m), info: () => {} },
      });
      await s.open();
      assert.equal(s.lastIndex(), N);
      assert.deepEqual(warnings, ["truncating torn WAL tail"]);
      assert.ok(Buffer.from(s.entries(N, N + 1, 1e9)[0]!.data).equals(expected[N - 1]!.data));
      await s.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  // The last record of the log is an entry of 1000 bytes of 0xab (it spans three sectors).
  async function withLastRecord(damage: (fd: number, start: number, end: number) => void): Promise<{
    dir: string;
    last: string;
    open: () => Promise<{ s: FileStorageEngine; warnings: string[] }>;
  }> {
    const dir = await mkdtemp(join(tmpdir(), "tsraft-corrupt-"));
    const s = new FileStorageEngine({ dir, segmentSizeBytes: SEG, logger: quiet });
    await s.open();
    await s.append(
      Array.from({ length: 10 }, (_, k) => ({
        index: k + 1,
        term: 1,
        type: 0 as const,
        data: new Uint8Array(1000).fill(0xab),
      })),
    );
    await s.sync();
    await s.close();
    const segs = readdirSync(dir)
      .filter((n) => n.startsWith("wal-"))
      .sort();
    const last = join(dir, segs[segs.length - 1]!);
    const end = dataEnd(last);
    const fd = openSync(last, "r+");
    damage(fd, end - (ENTRY_OVERHEAD_BYTES + 1000), end);
    closeSync(fd);
    return {
      dir,
      last,
      open: async () => {
        const warnings: string[] = [];
        const e = new FileStorageEngine({
          dir,
          segmentSizeBytes: SEG,
          logger: { warn: (_o, m) => warnings.push(m), info: () => {} },
        });
        await e.open();
        return { s: e, warnings };
      },
    };
  }

  /** Damages the last record, then expects open() to refuse it with a CorruptionError at its start. */
  async function refusesLastRecord(damage: (fd: number, from: number) => void, message: RegExp) {
    let start = -1;
    const t = await withLastRecord((fd, from) => {
      start = from;
      damage(fd, from);
    });
    try {
      await assert.rejects(
        t.open(),
        (err: unknown) =>
          err instanceof CorruptionError &&
          err.file === t.last &&
          err.offset === start &&
          message.test(err.message),
      );
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  }

  it("refuses a last record written in full whose checksum fails: damage, not a torn write", async () => {
    // Synced in full, it may hold an acknowledged entry: dropping it as a torn tail would lose it.
    await refusesLastRecord((fd, from) => {
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, from + 500);
      assert.equal(b[0], 0xab, "the offset is inside the last entry's data");
      b[0]! ^= 0x10;
      writeSync(fd, b, 0, 1, from + 500);
    }, /not torn/);
  });

  it("refuses a last record whose length runs past the end of the segment: damage, not a torn write", async () => {
    // The length's high byte (little-endian): a torn write only ever leaves zeros there.
    await refusesLastRecord(
      (fd, from) => writeSync(fd, Buffer.from([0x40]), 0, 1, from + 3),
      /runs past the end .* not torn/,
    );
  });

  it("repairs a last record whose later sectors were never written (a torn write)", async () => {
    const t = await withLastRecord((fd, from, end) => {
      // The write reached the disk up to a sector boundary inside the record; the rest is still zeros.
      const cut = (Math.floor(from / 512) + 1) * 512;
      assert.ok(cut > from + 8 && cut < end);
      writeSync(fd, Buffer.alloc(end - cut), 0, end - cut, cut);
    });
    try {
      const { s, warnings } = await t.open();
      assert.equal(s.lastIndex(), 9);
      assert.deepEqual(warnings, ["truncating torn WAL tail"]);
      assert.ok(Buffer.from(s.entries(9, 10, 1e9)[0]!.data).equals(Buffer.alloc(1000, 0xab)));
      await s.close();
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it("refuses to open a truncated last segment instead of treating it as a torn tail", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsraft-corrupt-"));
    try {
      await build(dir);
      const segs = readdirSync(dir)
        .filter((n) => n.startsWith("wal-"))
        .sort();
      const last = join(dir, segs[segs.length - 1]!);
      // Segments are fixed-size (preallocated), so a short one lost synced data:
      // dropping its records as a torn tail would silently lose committed entries.
      truncateSync(last, dataEnd(last) - 10);
      const s = new FileStorageEngine({ dir, segmentSizeBytes: SEG, logger: quiet });
      await assert.rejects(s.open(), (err: unknown) => err instanceof CorruptionError && err.file === last);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
