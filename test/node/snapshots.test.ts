/**
 * Snapshots on the runtime (in-memory transport, file storage): a transfer
 * repeated while its first copy waits to be installed, files of failed or
 * refused transfers, compaction when snapshots come closer together than the
 * kept tail, pruning of installed snapshots, and the interval policy on a
 * node that has applied nothing.
 */

import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { NodeConfigInput } from "../../src/node/config.ts";
import { encodeSnapshotMeta, encodeWithBody, RPC_SNAPSHOT } from "../../src/node/wire.ts";
import { crc32c } from "../../src/storage/crc32c.ts";
import { MemoryNetwork } from "../../src/transport/memory.ts";
import {
  cutOff,
  dec,
  enc,
  type KvNode,
  leaderOf,
  memAddress,
  memNode,
  put,
  startMemCluster,
  tempDir,
  waitFor,
} from "./helpers.ts";

const tmp = tempDir("tsraft-snapshots-");
after(() => tmp.cleanup());
let seq = 0;

/** `n` founding members over one MemoryNetwork, ready, stopped when `t` ends. */
async function cluster(t: TestContext, n: number, config: NodeConfigInput) {
  const m = await startMemCluster(t, `${tmp.dir}/c${++seq}`, n, config);
  await Promise.all(m.nodes.map((x) => x.ready()));
  const leader = await waitFor("a leader", () => leaderOf(m.nodes));
  return { ...m, leader };
}

const key = (i: number) => `k${String(i).padStart(3, "0")}`;
/** Internals the scenarios reach into (the snapshot machinery of a node). */
const snapshotsOf = (n: KvNode) =>
  (n as unknown as { snapshots: { taking: Promise<unknown> | null; assembled: Map<number, unknown> } })
    .snapshots;

describe("snapshot transfer and install", () => {
  it("the same snapshot sent again while its first copy waits to be installed: the install uses the whole first copy", async (t) => {
    const { net, nodes, leader } = await cluster(t, 3, {
      snapshot: { policy: "disabled", keepTailEntries: 0, chunkBytes: 1024 },
    });
    const f = nodes.find((n) => n !== leader)!;
    cutOff(net, f, nodes);
    // 128-byte records: a 1 KiB chunk ends on a record boundary, so a partial image would
    // load without complaint.
    for (let i = 0; i < 60; i++) await leader.propose(put(key(i), "x".repeat(122)));
    const info = await leader.snapshot();
    // The follower is busy writing a snapshot of its own: the install waits for it.
    let release = (): void => {};
    snapshotsOf(f).taking = new Promise<void>((r) => {
      release = r;
    });
    let firstChunk: Uint8Array | undefined;
    const transport = leader.transport as unknown as {
      request(to: number, method: string, payload: Uint8Array, opts: object): Promise<Uint8Array>;
    };
    const request = transport.request.bind(transport);
    transport.request = (to, method, payload, opts) => {
      if (method === RPC_SNAPSHOT && to === f.id && !firstChunk) firstChunk = payload.slice();
      return request(to, method, payload, opts);
    };
    const fatal: unknown[] = [];
    f.on("fatal", (e) => fatal.push(e));
    net.heal();
    await waitFor("the follower assembled the snapshot", () => snapshotsOf(f).assembled.size > 0, 5000);
    // The leader starts the same transfer again (its answer to the last chunk was lost).
    await request(f.id, RPC_SNAPSHOT, firstChunk!, { timeoutMs: 2000 });
    release();
    snapshotsOf(f).taking = null;
    await waitFor("the install", () => f.status().snapshotIndex >= info.index, 5000);
    assert.deepEqual(fatal, []);
    for (let i = 0; i < 60; i++) {
      assert.equal(dec(await f.read(enc(key(i)), { consistency: "eventual" })), "x".repeat(122), key(i));
    }
    assert.equal(f.snapshotStore.latest()?.sizeBytes, info.sizeBytes);
  });

  it("a transfer with a bad checksum, or one the core refuses, leaves no file behind", async (t) => {
    const { dir, nodes, leader } = await cluster(t, 3, { snapshot: { policy: "disabled" } });
    for (let i = 0; i < 20; i++) await leader.propose(put(key(i), "v"));
    const f = nodes.find((n) => n !== leader)!;
    await waitFor("the follower caught up", () => f.status().applied >= 20);
    const term = f.status().term;
    const incoming = join(dir, `m${f.id}`, "incoming");
    const body = new Uint8Array(100_000).fill(7);
    const send = (h: object, b: Uint8Array) =>
      leader.transport.request(f.id, RPC_SNAPSHOT, encodeWithBody(h, b), { timeoutMs: 2000 });
    for (const index of [1001, 1002]) {
      await send({ index, term, leaderTerm: term, offset: 0, done: false }, body);
      await assert.rejects(
        send(
          { index, term, leaderTerm: term, offset: body.length, done: true, crc: 12345 },
          new Uint8Array(0),
        ),
        /checksum mismatch/,
      );
    }
    // Whole and valid, but not newer than what the follower has committed: refused by the core.
    const meta = encodeSnapshotMeta({
      confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      members: {},
    });
    for (const index of [5, 6]) {
      await send({ index, term: 1, leaderTerm: term, offset: 0, done: false }, body);
      await send(
        { index, term: 1, leaderTerm: term, offset: body.length, done: true, crc: crc32c(body, 0) },
        meta,
      );
    }
    assert.deepEqual(readdirSync(incoming), []);
    assert.equal(snapshotsOf(f).assembled.size, 0);
    assert.ok(f.running);
  });

  it("a follower prunes the snapshots it installs to snapshot.keep", async (t) => {
    const { dir, net, nodes, leader } = await cluster(t, 3, {
      snapshot: { policy: "disabled", keepTailEntries: 0, keep: 2 },
    });
    const f = nodes.find((n) => n !== leader)!;
    let installs = 0;
    f.on("snapshotInstalled", () => installs++);
    for (let round = 1; round <= 4; round++) {
      cutOff(net, f, nodes);
      for (let i = 0; i < 20; i++) await leader.propose(put(`r${round}-${i}`, "x".repeat(200)));
      await leader.snapshot();
      net.heal();
      await waitFor("the install", () => installs >= round, 10_000);
    }
    assert.equal(readdirSync(join(dir, `m${f.id}`, "snapshots")).length, 2);
  });
});

describe("taking snapshots", () => {
  it("a snapshot of entries applied before the local log store took them in (asynchronous writes)", async (t) => {
    const { nodes, leader } = await cluster(t, 3, { snapshot: { policy: "disabled" } });
    await leader.propose(put("first", "1"));
    // The leader's log store holds its appends back for a while (as behind a segment being
    // preallocated: its write gate); the followers commit, and the leader applies, meanwhile.
    const store = leader.logStore as unknown as {
      _writeGate(bytes: number, kind: string, largest: number): Promise<void> | null;
    };
    const gate = store._writeGate.bind(store);
    let release = (): void => {};
    let held: Promise<void> | null = new Promise<void>((r) => {
      release = () => {
        held = null;
        r();
      };
    });
    store._writeGate = (bytes, kind, largest) =>
      held && kind === "append" ? held : gate(bytes, kind, largest);
    for (let i = 0; i < 5; i++) await leader.propose(put(key(i), "v"));
    assert.ok(
      leader.logStore.lastIndex() < leader.status().applied,
      "the state machine is ahead of the log store",
    );
    const fatal: unknown[] = [];
    leader.on("fatal", (e) => fatal.push(e));
    // The term of the applied index came from the log store, which did not have it yet.
    const info = await leader.snapshot();
    assert.equal(info.index, leader.status().applied);
    release();
    await leader.propose(put("after", "1"));
    assert.deepEqual(fatal, []);
    assert.ok(nodes.every((n) => n.running));
  });
});

describe("snapshot policies", () => {
  it("snapshots closer together than keepTailEntries still compact the log (and few stay on disk)", async (t) => {
    const { leader } = await cluster(t, 1, { snapshot: { policy: "entries", entries: 200, keep: 2 } });
    for (let i = 0; i < 3000; i++) await leader.propose(put(`k${i}`, "v"));
    await waitFor("no snapshot in progress", () => snapshotsOf(leader).taking === null);
    const st = leader.status();
    // keepTailEntries is 1000: the log keeps about that, plus up to a snapshot's spacing.
    assert.ok(st.firstIndex > 1000, `first index ${st.firstIndex} of ${st.lastIndex}`);
    assert.ok(st.lastIndex - st.firstIndex < 2500, `${st.lastIndex - st.firstIndex + 1} entries kept`);
    assert.ok(leader.snapshotStore.list().length <= 4, `${leader.snapshotStore.list().length} snapshots`);
  });

  it("the interval policy on a node that has applied nothing waits, it does not stop the node", async (t) => {
    const net = new MemoryNetwork({ clusterId: "snap-test" });
    // Joins through node 1, which is not up: nothing is applied meanwhile.
    const n = memNode(net, 2, `${tmp.dir}/c${++seq}`, {
      join: { "1": memAddress(1) },
      snapshot: { policy: "interval", intervalMs: 50 },
      limits: { readyTimeoutMs: 1500 },
    });
    t.after(() => n.stop().catch(() => {}));
    const fatal: unknown[] = [];
    n.on("fatal", (e) => fatal.push(e));
    const started = n.startRpcServer().catch(() => {});
    await sleep(600);
    assert.deepEqual(fatal, []);
    assert.ok(n.running);
    await n.stop();
    await started;
  });
});
