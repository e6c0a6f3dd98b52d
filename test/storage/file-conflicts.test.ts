/**
 * Raft conflicts (a new leader overwrites a follower's uncommitted suffix) in
 * the file WAL, then compaction and a reopen: the overwritten entries must
 * never come back, and the store must open. Also batches of entries too large
 * to share a segment.
 */

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type Entry, EntryType } from "../../src/raft/types.ts";
import { FileStorageEngine } from "../../src/storage/file/engine.ts";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const SEGMENT = 64 * 1024;
const CS = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
const entry = (index: number, term: number, bytes = 100): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: new Uint8Array(bytes).fill(term),
});

async function fresh(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-conflict-"));
  dirs.push(dir);
  return dir;
}

async function open(dir: string): Promise<FileStorageEngine> {
  const s = new FileStorageEngine({ dir, segmentSizeBytes: SEGMENT, recoveryWorkers: 0 });
  await s.open();
  return s;
}

/** Every entry the store holds, as [index, term]. */
function contents(s: FileStorageEngine): [number, number][] {
  const out: [number, number][] = [];
  for (let i = s.firstIndex(); i <= s.lastIndex(); i++) out.push([i, s.term(i)]);
  return out;
}

describe("file WAL: batches of large entries", () => {
  it("a batch whose entries need more segments than their total size suggests is written whole", async () => {
    const dir = await fresh();
    let s = await open(dir);
    await s.whenPreallocated();
    // Three 36,000 B entries in 64 KiB segments: one per segment (entries are never split),
    // though 108 KB would fit in two.
    const big = [entry(1, 1, 36_000), entry(2, 1, 36_000), entry(3, 1, 36_000)];
    await s.append(big);
    await s.sync();
    assert.equal(s.lastIndex(), 3);
    await s.append([entry(4, 1)]);
    await s.sync();
    await s.close();
    s = await open(dir);
    assert.deepEqual(contents(s), [
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1],
    ]);
    await s.close();
  });
});

describe("file WAL: backpressure", () => {
  it("writes issued in a row without awaiting them stay within maxPendingBytes (plus one write)", async () => {
    const dir = await fresh();
    const s = new FileStorageEngine({
      dir,
      segmentSizeBytes: 64 * 1024 * 1024,
      maxPendingBytes: 1024 * 1024,
      recoveryWorkers: 0,
    });
    await s.open();
    await s.whenPreallocated();
    const pending = () => (s as unknown as { pendingBytes: number }).pendingBytes;
    let most = 0;
    const writes: Promise<void>[] = [];
    for (let i = 1; i <= 40; i++) {
      writes.push(s.append([entry(i, 1, 256 * 1024)]));
      most = Math.max(most, pending());
    }
    await Promise.all(writes);
    await s.sync();
    assert.equal(s.lastIndex(), 40);
    assert.ok(most <= 1024 * 1024 + 256 * 1024 + 1024, `${most} bytes queued at once`);
    await s.close();
  });
});

describe("file WAL: conflicts, compaction and reopen", () => {
  for (const how of ["truncateSuffix, then append", "an overwriting append alone"] as const) {
    it(`a conflict at or below the snapshot index does not bring the old suffix back (${how})`, async () => {
      const dir = await fresh();
      let s = await open(dir);
      for (let i = 1; i <= 20; i++) await s.append([entry(i, 1)]);
      await s.saveHardState({ term: 1, vote: 1, commit: 10 });
      await s.sync();
      // A term-2 leader replaces 11..20 with 11..12, and a snapshot at 12 compacts them.
      if (how === "truncateSuffix, then append") await s.truncateSuffix(11);
      await s.append([entry(11, 2), entry(12, 2)]);
      await s.saveHardState({ term: 2, vote: 0, commit: 12 });
      await s.sync();
      await s.compact({ index: 12, term: 2, confState: CS });
      assert.equal(s.lastIndex(), 12);
      await s.close();
      s = await open(dir);
      assert.equal(s.lastIndex(), 12, `entries above the snapshot came back: ${JSON.stringify(contents(s))}`);
      assert.equal(s.snapshotMetadata().index, 12);
      await s.append([entry(13, 2)]);
      await s.sync();
      assert.deepEqual(contents(s), [[13, 2]]);
      await s.close();
    });
  }

  it("truncated entries at the start of the first live segment: the store opens, without them", async () => {
    const dir = await fresh();
    let s = await open(dir);
    let i = 1;
    // Term-1 entries fill segment 1 and spill into segment 2.
    while (s.segmentCount() < 2) {
      await s.append([entry(i++, 1, 2000)]);
      await s.whenPreallocated();
    }
    for (let k = 0; k < 5; k++) await s.append([entry(i++, 1, 2000)]);
    await s.sync();
    // A conflict at 10 (inside segment 1); segment 1 is then compacted away.
    await s.truncateSuffix(10);
    for (let k = 10; k < 15; k++) await s.append([entry(k, 2, 2000)]);
    await s.saveHardState({ term: 2, vote: 0, commit: 14 });
    await s.sync();
    await s.compact({ index: 12, term: 2, confState: CS });
    const before = contents(s);
    await s.close();
    s = await open(dir);
    assert.deepEqual(contents(s), before);
    assert.deepEqual(before, [
      [13, 2],
      [14, 2],
    ]);
    await s.close();
  });

  it("a conflicting append that rolls to a new segment: the store opens with the new entry", async () => {
    const dir = await fresh();
    let s = await open(dir);
    await s.whenPreallocated();
    // Fill segment 1 up to just under what one more 2000 B entry needs (no roll yet).
    const writePos = () => (s as unknown as { writeSeg: { writePos: number } }).writeSeg.writePos;
    let i = 1;
    while (writePos() + 2100 <= SEGMENT - 256) await s.append([entry(i++, 1, 2000)]);
    assert.equal(s.segmentCount(), 1);
    assert.ok(i - 1 > 20);
    // A term-2 leader overwrites from 20 with an entry too large for what is left of the segment.
    await s.append([entry(20, 2, 3000)]);
    await s.saveHardState({ term: 2, vote: 0, commit: 19 });
    await s.sync();
    assert.equal(s.segmentCount(), 2, "the overwriting entry went to a new segment");
    assert.equal(s.lastIndex(), 20);
    await s.close();
    s = await open(dir);
    assert.equal(s.lastIndex(), 20);
    assert.equal(s.term(20), 2);
    assert.equal(s.term(19), 1);
    await s.close();
  });
});
