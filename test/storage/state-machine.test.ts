import assert from "node:assert/strict";
import { closeSync, openSync, readdirSync, statSync, writeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { CorruptionError } from "../../src/errors.ts";
import type { Entry } from "../../src/raft/types.ts";
import { FileStateMachine } from "../../src/storage/file-state-machine.ts";
import { decodeKvCommand, encodeKvCommand, type KvCommand } from "../../src/storage/kv-command.ts";
import { FileSnapshotStore } from "../../src/storage/snapshot-store.ts";

const CONF = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-sm-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function* chunks(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield enc(p);
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<string> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(Buffer.from(c));
  return Buffer.concat(out).toString();
}

describe("KV command encoding", () => {
  it("round-trips every command and rejects garbage without throwing", () => {
    const cmd = fc.oneof(
      fc.record({
        op: fc.constant("put" as const),
        key: fc.uint8Array({ maxLength: 300 }),
        value: fc.uint8Array({ maxLength: 300 }),
      }),
      fc.record({ op: fc.constant("delete" as const), key: fc.uint8Array({ maxLength: 300 }) }),
      fc.record({ op: fc.constant("get" as const), key: fc.uint8Array({ maxLength: 300 }) }),
    );
    fc.assert(
      fc.property(cmd, (c: KvCommand) => assert.deepEqual(decodeKvCommand(encodeKvCommand(c)), { ...c })),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 50 }), (b) => {
        const r = decodeKvCommand(b);
        if (typeof r !== "string") assert.deepEqual(new Uint8Array(encodeKvCommand(r)), b);
      }),
    );
    assert.deepEqual([...encodeKvCommand({ op: "put", key: enc("k"), value: enc("v") })], [1, 1, 107, 118]);
    // Decoding copies, whatever the input (a Buffer's slice would be a view).
    const src = Buffer.from(encodeKvCommand({ op: "put", key: enc("k"), value: enc("v") }));
    const d = decodeKvCommand(src) as { key: Uint8Array; value: Uint8Array };
    src.fill(0);
    assert.deepEqual([...d.key, ...d.value], [107, 118]);
  });
});

describe("FileSnapshotStore", () => {
  it("writes atomically, lists newest first, keeps K, streams chunks back", () =>
    withDir(async (dir) => {
      const store = new FileSnapshotStore({ dir, keep: 2, chunkBytes: 3 });
      for (const i of [5, 9, 7]) await store.write(i, 1, enc(`meta${i}`), chunks(`snap${i}`, "-tail"));
      assert.deepEqual(
        store.list().map((s) => s.index),
        [9, 7],
      );
      assert.equal(readdirSync(dir).length, 2);
      assert.equal(await collect(store.read(9)), "snap9-tail");
      assert.equal(await collect(store.read(9, 1)), "snap9-tail");
      const reopened = new FileSnapshotStore({ dir });
      assert.equal(reopened.latest()?.index, 9);
      assert.equal(dec(reopened.latest()!.meta), "meta9");
      assert.equal(reopened.latest()!.sizeBytes, 10);
      await reopened.prune(1);
      assert.deepEqual(readdirSync(dir).length, 1);
      assert.equal(
        Buffer.from(reopened.dataSource()({ index: 9, term: 1, confState: CONF })).toString(),
        "snap9-tail",
      );
    }));

  it("detects a flipped byte when reading", () =>
    withDir(async (dir) => {
      const store = new FileSnapshotStore({ dir });
      const info = await store.write(3, 1, enc("m"), chunks("hello snapshot data"));
      const fd = openSync(info.path, "r+");
      writeSync(fd, Buffer.from("X"), 0, 1, statSync(info.path).size - 16 - 5); // inside the data
      closeSync(fd);
      await assert.rejects(collect(new FileSnapshotStore({ dir }).read(3)), CorruptionError);
    }));

  it("leaves no snapshot behind when the data stream fails", () =>
    withDir(async (dir) => {
      const store = new FileSnapshotStore({ dir });
      async function* failing(): AsyncIterable<Uint8Array> {
        yield enc("partial");
        throw new Error("source broke");
      }
      await assert.rejects(store.write(4, 1, enc("m"), failing()), /source broke/);
      assert.deepEqual(readdirSync(dir), []);
      assert.equal(store.latest(), null);
    }));
});

describe("FileStateMachine", () => {
  it("applies commands, returns one result per entry, and survives restart through a checkpoint", () =>
    withDir(async (dir) => {
      const sm = new FileStateMachine({ dir, snapshotChunkBytes: 16 });
      await sm.open();
      const entries: Entry[] = [
        { index: 1, term: 1, type: 0, data: new Uint8Array(0) },
        { index: 2, term: 1, type: 0, data: encodeKvCommand({ op: "put", key: enc("a"), value: enc("1") }) },
        { index: 3, term: 1, type: 0, data: encodeKvCommand({ op: "put", key: enc("a"), value: enc("2") }) },
        { index: 4, term: 1, type: 0, data: encodeKvCommand({ op: "get", key: enc("a") }) },
        { index: 5, term: 2, type: 0, data: Uint8Array.of(99, 1) },
        {
          index: 6,
          term: 2,
          type: 0,
          data: encodeKvCommand({ op: "put", key: enc("b"), value: enc("x".repeat(40)) }),
        },
        { index: 7, term: 2, type: 0, data: encodeKvCommand({ op: "delete", key: enc("zz") }) },
      ];
      const results = await sm.apply(entries);
      assert.equal(results.length, entries.length);
      assert.deepEqual(results[0], { op: "noop" });
      assert.equal(dec((results[2] as { previous: Uint8Array }).previous), "1");
      assert.equal(dec((results[3] as { value: Uint8Array }).value), "2");
      assert.equal(results[4]!.op, "invalid");
      const r6 = results[6] as { op: string; previous: Uint8Array | null };
      assert.deepEqual({ op: r6.op, previous: r6.previous }, { op: "delete", previous: null });
      // Replays are skipped (exactly-once), gaps refused.
      assert.deepEqual(await sm.apply(entries.slice(1, 3)), [{ op: "noop" }, { op: "noop" }]);
      await assert.rejects(sm.apply([{ index: 9, term: 2, type: 0, data: new Uint8Array(0) }]));
      const info = await sm.checkpoint(CONF);
      assert.equal(info.index, 7);
      assert.deepEqual(JSON.parse(dec(info.meta)!), { confState: CONF });

      const again = new FileStateMachine({ dir });
      await again.open();
      assert.deepEqual(again.lastApplied(), { index: 7, term: 2 });
      assert.equal(dec(again.read(enc("a"))), "2");
      assert.equal(dec(again.read(enc("b"))), "x".repeat(40));
      assert.equal(again.size, 2);
    }));

  it("keeps arbitrary bytes exactly: through apply, read, results, and a snapshot's restore", () =>
    withDir(async (dir) =>
      fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              key: fc.uint8Array({ minLength: 0, maxLength: 24 }),
              value: fc.uint8Array({ minLength: 0, maxLength: 300 }),
            }),
            { minLength: 1, maxLength: 30 },
          ),
          async (puts) => {
            await rm(dir, { recursive: true, force: true });
            const sm = new FileStateMachine({ dir, snapshotChunkBytes: 64 });
            await sm.open();
            const model = new Map<string, Uint8Array>();
            const entries: Entry[] = puts.map((p, i) => ({
              index: i + 1,
              term: 1,
              type: 0,
              data: encodeKvCommand({ op: "put", ...p }),
            }));
            const results = await sm.apply(entries);
            puts.forEach((p, i) => {
              const k = Buffer.from(p.key).toString("hex");
              const prev = (results[i] as { previous: Uint8Array | null }).previous;
              assert.deepEqual(prev, model.get(k) ?? null, "the previous value, byte for byte");
              model.set(k, p.value);
            });
            for (const p of puts)
              assert.deepEqual(sm.read(p.key), model.get(Buffer.from(p.key).toString("hex")));
            await sm.checkpoint(CONF);
            const again = new FileStateMachine({ dir });
            await again.open();
            assert.equal(again.size, model.size);
            for (const p of puts)
              assert.deepEqual(again.read(p.key), model.get(Buffer.from(p.key).toString("hex")));
          },
        ),
        { numRuns: 40 },
      ),
    ));
});
