/**
 * Runtime paths the other node tests do not reach: peer mTLS configured
 * through the node config, the snapshot bandwidth limit, the `bytes`,
 * `interval` and `disabled` snapshot policies, snapshot transfer integrity,
 * the second signal that forces a `tsraft node` process out, and fail-stop on
 * a storage error. In-process (fast timers) except the signal test.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { StoppedError, TimeoutError } from "../../src/errors.ts";
import { NodeBuilder } from "../../src/node/builder.ts";
import { mergeNodeConfig, type NodeConfigInput } from "../../src/node/config.ts";
import type { NodeEvents } from "../../src/node/raft-node.ts";
import { decodeWithBody, encodeWithBody, RPC_SNAPSHOT } from "../../src/node/wire.ts";
import { FileStorageEngine } from "../../src/storage/file/engine.ts";
import { FileStateMachine } from "../../src/storage/file-state-machine.ts";
import { MemoryNetwork } from "../../src/transport/memory.ts";
import type { Logger, RequestOptions } from "../../src/transport/transport.ts";
import {
  cutOff,
  dec,
  enc,
  FAST,
  freePorts,
  type KvNode,
  leaderOf,
  memAddress,
  memCluster,
  put,
  startMemCluster,
  tempDir,
  waitFor,
} from "./helpers.ts";
import { ProcCluster, poll } from "./procs.ts";

const tmp = tempDir("tsraft-coverage-");
const all: KvNode[] = [];
const clusters: ProcCluster[] = [];
let seq = 0;
after(async () => {
  await Promise.all(clusters.map((c) => c.killAll()));
  await Promise.all(all.map((n) => n.stop().catch(() => {})));
  tmp.cleanup();
});

/** A logger that keeps every line (message and fields) for assertions. */
interface Line {
  readonly level: string;
  readonly msg: string;
  readonly obj: Record<string, unknown>;
}
function capture(): Logger & { lines: Line[]; find(msg: string): Line[] } {
  const lines: Line[] = [];
  const at =
    (level: string) =>
    (obj: object, msg: string): void => {
      lines.push({ level, msg, obj: obj as Record<string, unknown> });
    };
  return {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    find: (msg) => lines.filter((l) => l.msg.includes(msg)),
  };
}

function record<K extends keyof NodeEvents>(node: KvNode, event: K): NodeEvents[K][0][] {
  const out: NodeEvents[K][0][] = [];
  (node.on as (e: K, l: (...a: NodeEvents[K]) => void) => void)(event, (...args) => out.push(args[0]));
  return out;
}

/** Stops every running node of `nodes` when `t` ends, leaders first (no transfer wait on a stopping peer). */
function stopAfter(t: TestContext, nodes: KvNode[]): void {
  t.after(async () => {
    for (let live = nodes.filter((x) => x.running); live.length > 0; live = nodes.filter((x) => x.running)) {
      await (leaderOf(live) ?? live[0]!).stop().catch(() => {});
    }
  });
}

interface MemNodes {
  readonly net: MemoryNetwork;
  readonly nodes: KvNode[];
  readonly logs: Map<number, ReturnType<typeof capture>>;
}

/** `n` founding members over a fresh MemoryNetwork, file storage, a captured log per node. */
async function memNodes(t: TestContext, n: number, config: NodeConfigInput): Promise<MemNodes> {
  const net = new MemoryNetwork({ clusterId: "coverage" });
  const dir = join(tmp.dir, `c${++seq}`);
  const nodes: KvNode[] = [];
  const logs = new Map<number, ReturnType<typeof capture>>();
  stopAfter(t, nodes);
  const base = mergeNodeConfig(FAST, config);
  for (let id = 1; id <= n; id++) {
    const log = capture();
    logs.set(id, log);
    const node = new NodeBuilder({
      ...base,
      nodeId: id,
      listen: memAddress(id),
      dataDir: join(dir, `m${id}`),
      initialCluster: memCluster(n),
    })
      .transport(net.transport(id, { address: memAddress(id) }))
      .logger(log)
      .build() as unknown as KvNode;
    nodes.push(node);
    all.push(node);
  }
  await Promise.all(nodes.map((x) => x.startRpcServer()));
  await Promise.all(nodes.map((x) => x.ready()));
  return { net, nodes, logs };
}

/** Proposes `count` puts of `valueBytes` each, `parallel` at a time. */
async function fill(leader: KvNode, prefix: string, count: number, valueBytes: number, parallel = 32) {
  for (let i = 0; i < count; i += parallel) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + parallel); j++)
      batch.push(leader.propose(put(`${prefix}${j}`, `${j}:`.padEnd(valueBytes, "x"))));
    await Promise.all(batch);
  }
}

/**
 * A 3-node cluster (snapshots only on demand, compaction of the whole log)
 * where one follower was cut off while `count` writes of `valueBytes` went
 * in and the leader took a snapshot: healing makes the leader stream it.
 */
async function laggingFollower(t: TestContext, config: NodeConfigInput, count: number, valueBytes: number) {
  const m = await memNodes(
    t,
    3,
    mergeNodeConfig({ snapshot: { policy: "disabled", keepTailEntries: 0, chunkBytes: 16 * 1024 } }, config),
  );
  const leader = await waitFor("a leader", () => leaderOf(m.nodes));
  const lagging = m.nodes.find((x) => x !== leader)!;
  cutOff(m.net, lagging, m.nodes);
  await fill(leader, "big-", count, valueBytes);
  const snap = await leader.snapshot();
  // The snapshot is written in the background: heartbeats went on, no follower lost patience.
  assert.equal(leader.status().role, "leader");
  assert.equal(leader.status().firstIndex, snap.index + 1, "the log behind the snapshot is compacted");
  return { ...m, leader, lagging, snap, leaderLog: m.logs.get(leader.id)! };
}

describe("runtime coverage", () => {
  // ---------------------------------------------------------------------------
  // 1. Peer mTLS through the node config
  // ---------------------------------------------------------------------------
  it("tls.cert/key/ca in the node config: 3 nodes elect and replicate over mTLS; a node from another CA is refused", async (t) => {
    try {
      execFileSync("openssl", ["version"], { stdio: "ignore" });
    } catch {
      t.skip("openssl is not installed: cannot generate certificates");
      return;
    }
    const dir = join(tmp.dir, `tls${++seq}`);
    execFileSync("mkdir", ["-p", dir]);
    const ossl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    const ext = join(dir, "ext.cnf");
    writeFileSync(ext, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    const ca = (name: string) =>
      ossl(
        "req",
        "-x509",
        ...ec,
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.crt`,
        "-days",
        "1",
        "-subj",
        `/CN=${name}`,
      );
    const cert = (name: string, caName: string) => {
      ossl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
      ossl(
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        `${caName}.crt`,
        "-CAkey",
        `${caName}.key`,
        "-CAcreateserial",
        "-out",
        `${name}.crt`,
        "-days",
        "1",
        "-extfile",
        ext,
      );
      return {
        cert: join(dir, `${name}.crt`),
        key: join(dir, `${name}.key`),
        ca: join(dir, `${caName}.crt`),
      };
    };
    ca("ca");
    ca("other-ca");
    const ports = await freePorts(4);
    const addr = (id: number) => `127.0.0.1:${ports[id - 1]}`;
    const initialCluster = `1=${addr(1)},2=${addr(2)},3=${addr(3)}`;
    const nodes: KvNode[] = [];
    const logs = new Map<number, ReturnType<typeof capture>>();
    stopAfter(t, nodes);
    const make = (id: number, tls: object, extra: NodeConfigInput) => {
      const log = capture();
      logs.set(id, log);
      const cfg = mergeNodeConfig(FAST, {
        nodeId: id,
        listen: addr(id),
        dataDir: join(dir, `n${id}`),
        tls,
        ...extra,
      });
      const node = new NodeBuilder(cfg).logger(log).build() as unknown as KvNode;
      nodes.push(node);
      all.push(node);
      return node;
    };
    for (const id of [1, 2, 3]) make(id, cert(`node${id}`, "ca"), { initialCluster });
    await Promise.all(nodes.map((x) => x.startRpcServer()));
    await Promise.all(nodes.map((x) => x.ready()));
    for (const id of [1, 2, 3]) {
      const listening = logs.get(id)!.find("transport listening");
      assert.equal(listening[0]?.obj.tls, true, `node ${id}'s default transport uses TLS`);
    }
    const leader = await waitFor("a leader", () => leaderOf(nodes));
    for (let i = 0; i < 10; i++) await leader.propose(put(`tls-${i}`, `v${i}`));
    for (const x of nodes) assert.equal(dec(await x.read(enc("tls-9"))), "v9", `node ${x.id}`);

    // A node whose certificate another CA signed asks to join: the TLS handshake fails both ways.
    const rogue = make(4, cert("rogue", "other-ca"), {
      join: { "1": addr(1) },
      limits: { readyTimeoutMs: 1500 },
    });
    await assert.rejects(rogue.startRpcServer(), (e: unknown) => {
      assert.ok(e instanceof TimeoutError, String(e));
      assert.match(e.message, /joining the cluster/);
      return true;
    });
    assert.ok(logs.get(1)!.find("TLS handshake failed").length > 0, "node 1 refused the handshake");
    const lead = leaderOf(nodes)!;
    assert.deepEqual(
      lead.status().members.map((x) => x.id),
      [1, 2, 3],
      "never admitted",
    );
    assert.equal((await lead.propose(put("after-rogue", "ok"))).op, "put", "the cluster is unaffected");
    for (const x of nodes.filter((y) => y !== rogue))
      assert.equal(dec(await x.read(enc("after-rogue"))), "ok");
  });

  // ---------------------------------------------------------------------------
  // 2. Snapshot transfer bandwidth limit
  // ---------------------------------------------------------------------------
  it("snapshot.bandwidthBytesPerSec paces the transfer to a lagging follower; 0 is unlimited", async (t) => {
    const bw = 200 * 1024;
    const sent = async (bandwidthBytesPerSec: number) => {
      const c = await laggingFollower(t, { snapshot: { bandwidthBytesPerSec } }, 300, 1000);
      assert.ok(c.snap.sizeBytes >= 300 * 1000, `snapshot of ${c.snap.sizeBytes} B`);
      const installed = record(c.lagging, "snapshotInstalled");
      c.net.heal();
      await waitFor("snapshot installed", () => installed.length > 0, 10_000);
      assert.equal(installed[0]!.index, c.snap.index);
      const line = await waitFor("the leader's snapshot sent line", () =>
        c.leaderLog.find("snapshot sent").find((l) => l.obj.peer === c.lagging.id),
      );
      assert.equal(line.obj.sizeBytes, c.snap.sizeBytes);
      assert.equal(
        dec(await c.lagging.read(enc("big-299"), { consistency: "eventual" }))?.slice(0, 4),
        "299:",
      );
      return { ms: line.obj.ms as number, size: c.snap.sizeBytes };
    };
    const limited = await sent(bw);
    const floorMs = (limited.size / bw) * 1000;
    assert.ok(
      limited.ms >= floorMs - 5,
      `limited transfer of ${limited.size} B took ${limited.ms} ms, under size/bandwidth = ${floorMs.toFixed(0)} ms`,
    );
    const unlimited = await sent(0);
    t.diagnostic(
      `${limited.size} B: ${limited.ms} ms at ${bw} B/s (floor ${floorMs.toFixed(0)} ms), ${unlimited.ms} ms unlimited`,
    );
    assert.ok(
      unlimited.ms < floorMs / 3,
      `unlimited transfer of ${unlimited.size} B took ${unlimited.ms} ms (limited floor ${floorMs.toFixed(0)} ms)`,
    );
  });

  // ---------------------------------------------------------------------------
  // 3. Snapshot policies
  // ---------------------------------------------------------------------------
  it("policy bytes: a snapshot once the applied log bytes reach logBytes, not before", async (t) => {
    const m = await memNodes(t, 1, {
      snapshot: { policy: "bytes", logBytes: 8000, entries: 1, keepTailEntries: 0 },
    });
    const n = m.nodes[0]!;
    await waitFor("leader", () => n.status().role === "leader");
    const taken = record(n, "snapshotTaken");
    // Many entries, few bytes: an entries count would have fired long ago.
    for (let i = 0; i < 20; i++) await n.propose(put(`s${i}`, "y"));
    await sleep(50);
    assert.equal(taken.length, 0, "20 small entries stay under 8000 log bytes");
    await n.propose(put("big", "z".repeat(8000)));
    await waitFor("a snapshot by bytes", () => taken.length > 0, 3000);
    assert.equal(taken.length, 1);
    assert.equal(taken[0]!.index, n.status().applied, "taken at the entry that crossed the threshold");
    assert.equal(n.status().snapshotIndex, taken[0]!.index);
    // The counter restarted: small entries again do not trigger another one.
    for (let i = 0; i < 5; i++) await n.propose(put(`t${i}`, "y"));
    await sleep(50);
    assert.equal(taken.length, 1);
  });

  it("policy interval: snapshots by time, about intervalMs apart", async (t) => {
    const intervalMs = 300;
    const m = await memNodes(t, 1, { snapshot: { policy: "interval", intervalMs, keepTailEntries: 0 } });
    const n = m.nodes[0]!;
    await waitFor("leader", () => n.status().role === "leader");
    const taken: { at: number; index: number }[] = [];
    n.on("snapshotTaken", (s) => taken.push({ at: Date.now(), index: s.index }));
    // An idle single node: only time can trigger a snapshot that covers each write.
    await n.propose(put("a", "1"));
    const a = n.status().applied;
    await waitFor("a snapshot by time covering the first write", () => taken.some((s) => s.index >= a), 5000);
    await n.propose(put("b", "2"));
    const b = n.status().applied;
    await waitFor("a later one covering the second", () => taken.some((s) => s.index >= b), 5000);
    // Never closer than the interval (it counts from the end of the previous snapshot).
    for (let i = 1; i < taken.length; i++) {
      const gap = taken[i]!.at - taken[i - 1]!.at;
      assert.ok(gap >= intervalMs - 20, `snapshot ${i} only ${gap} ms after the one before`);
      assert.ok(taken[i]!.index > taken[i - 1]!.index, "an idle interval takes no snapshot it already has");
    }
  });

  it("policy disabled: never a snapshot by itself, only on demand", async (t) => {
    const m = await memNodes(t, 1, {
      snapshot: { policy: "disabled", entries: 1, logBytes: 1, intervalMs: 20, keepTailEntries: 0 },
    });
    const n = m.nodes[0]!;
    await waitFor("leader", () => n.status().role === "leader");
    const taken = record(n, "snapshotTaken");
    await fill(n, "d", 50, 200, 5);
    await sleep(200); // ten intervals
    assert.equal(taken.length, 0, "no snapshot by entries, bytes or time");
    assert.equal(n.status().snapshotIndex, 0);
    const info = await n.snapshot();
    assert.deepEqual(
      taken.map((s) => s.index),
      [info.index],
    );
    assert.equal(n.status().firstIndex, info.index + 1);
  });

  // ---------------------------------------------------------------------------
  // 4. Snapshot transfer integrity
  // ---------------------------------------------------------------------------
  it("a corrupted chunk: the follower rejects the transfer by checksum, installs nothing; a retry succeeds", async (t) => {
    const c = await laggingFollower(t, { snapshot: { chunkBytes: 4096 } }, 40, 500);
    const leader = c.leader;
    const transport = leader.transport as { request: typeof leader.transport.request };
    const request = transport.request.bind(leader.transport);
    let corrupt = true;
    let corrupted = 0;
    transport.request = (peer: number, method: string, payload: Uint8Array, opts: RequestOptions) => {
      if (corrupt && method === RPC_SNAPSHOT && peer === c.lagging.id) {
        const { header, body } = decodeWithBody(payload);
        if (!header.done && header.offset === 4096 && body.length > 10) {
          const bad = body.slice();
          bad[10]! ^= 0x40;
          corrupted++;
          return request(peer, method, encodeWithBody(header, bad), opts);
        }
      }
      return request(peer, method, payload, opts);
    };
    const reports: [number, boolean][] = [];
    const reportSnapshot = leader.raw.reportSnapshot.bind(leader.raw);
    leader.raw.reportSnapshot = (peer, ok) => {
      reports.push([peer, ok]);
      reportSnapshot(peer, ok);
    };
    const installed = record(c.lagging, "snapshotInstalled");
    c.net.heal();
    const failures = () =>
      c.leaderLog
        .find("snapshot transfer failed")
        .filter((l) => l.obj.peer === c.lagging.id && /checksum/.test(String(l.obj.err)));
    await waitFor("two transfers rejected by checksum", () => failures().length >= 2, 10_000);
    assert.ok(corrupted >= 2);
    assert.equal(installed.length, 0, "nothing installed from a corrupted transfer");
    assert.equal(c.lagging.status().snapshotIndex, 0);
    assert.equal(c.lagging.snapshotStore.latest(), null);
    assert.ok(c.lagging.status().applied < c.snap.index);
    assert.equal(await c.lagging.read(enc("big-39"), { consistency: "eventual" }), null);
    assert.ok(
      reports.some(([p, ok]) => p === c.lagging.id && !ok),
      `the leader reported the failure to the core: ${JSON.stringify(reports)}`,
    );
    assert.ok(!reports.some(([p, ok]) => p === c.lagging.id && ok));

    corrupt = false;
    await waitFor("a clean retry installs the snapshot", () => installed.length > 0, 10_000);
    assert.equal(installed[0]!.index, c.snap.index);
    assert.ok(reports.some(([p, ok]) => p === c.lagging.id && ok));
    assert.equal(dec(await c.lagging.read(enc("big-39"), { consistency: "eventual" }))?.slice(0, 3), "39:");
    await leader.propose(put("after", "1"));
    assert.equal(dec(await c.lagging.read(enc("after"))), "1");
  });

  // ---------------------------------------------------------------------------
  // 5. The second signal forces exit
  // ---------------------------------------------------------------------------
  it("tsraft node: SIGTERM while still waiting for a quorum stops it cleanly at once (it waited for readyTimeoutMs)", async (t) => {
    const c = new ProcCluster(join(tmp.dir, `procs${++seq}`));
    clusters.push(c);
    t.after(() => c.killAll());
    const [alone] = await c.create(3);
    // Its two peers never start: no leader, ever.
    const started = alone!.start(30_000).then(
      () => "ready",
      (e: unknown) => String(e),
    );
    await poll("node started", () => alone!.logged("node started").length > 0, 10_000);
    const t0 = Date.now();
    alone!.child!.kill("SIGTERM");
    const exit = await alone!.exited();
    const ms = Date.now() - t0;
    assert.equal(exit.code, 0, alone!.tail());
    assert.ok(ms < 5000, `exited ${ms} ms after SIGTERM`);
    assert.ok(alone!.logged("node stopped").length > 0, "storage was closed on the graceful path");
    assert.match(await started, /exited before ready/);
  });

  it("tsraft node: SIGTERM starts a graceful shutdown, a second signal exits at once with code 130", async (t) => {
    const c = new ProcCluster(join(tmp.dir, `procs${++seq}`));
    clusters.push(c);
    t.after(() => c.killAll());
    // A long shutdown budget: the leader's transfer to a frozen peer (connected, never
    // answering; a dead one is skipped at once) would wait 5 s.
    const procs = await c.create(3, { env: { TSRAFT_LIMITS_SHUTDOWN_TIMEOUT_MS: "10000" } });
    await Promise.all(procs.map((p) => p.start()));
    const leader = await c.waitLeader();
    assert.ok(await c.put("k", "v", Date.now() + 5000, leader));
    for (const p of procs) if (p !== leader) p.child!.kill("SIGSTOP");
    leader.child!.kill("SIGTERM");
    // The same signal delivered twice at once (a terminal and a wrapper relaying it) is one.
    leader.child!.kill("SIGTERM");
    await poll("graceful shutdown started", () => leader.logged("shutting down gracefully").length > 0, 5000);
    // A second signal counts after 500 ms.
    await sleep(700);
    assert.ok(leader.alive, "still in its graceful shutdown (waiting for the leader transfer)");
    const t0 = Date.now();
    leader.child!.kill("SIGINT");
    const exit = await leader.exited();
    const ms = Date.now() - t0;
    assert.equal(exit.code, 130, leader.tail());
    assert.ok(ms < 2000, `exited ${ms} ms after the second signal`);
    assert.ok(leader.logged("second signal: exiting now").length > 0);
    assert.equal(leader.logged("node stopped").length, 0, "the graceful path did not finish");
  });

  // ---------------------------------------------------------------------------
  // 6. Fatal storage error
  // ---------------------------------------------------------------------------
  /** A single-node cluster over the in-memory transport, with storage and state machine given. */
  async function soloNode(name: string, engine: FileStorageEngine, sm?: FileStateMachine) {
    const dir = join(tmp.dir, `${name}${++seq}`);
    const log = capture();
    let b = new NodeBuilder(
      mergeNodeConfig(FAST, {
        nodeId: 1,
        listen: memAddress(1),
        dataDir: dir,
        initialCluster: { "1": memAddress(1) },
      }),
    )
      .storageEngine(engine)
      .transport(new MemoryNetwork({ clusterId: name }).transport(1, { address: memAddress(1) }))
      .logger(log);
    if (sm) b = b.stateMachine(sm);
    const n = b.build() as unknown as KvNode;
    all.push(n);
    await n.startRpcServer();
    await n.ready();
    await waitFor("leader", () => n.status().role === "leader");
    return { n, log };
  }

  it("more Readies than the writes-in-flight bound while the disk stalls: the node waits, then carries on", async (t) => {
    const dir = join(tmp.dir, `stall${++seq}`);
    const engine = new FileStorageEngine({ dir: join(dir, "storage") });
    let release: () => void = () => {};
    let stalled: Promise<void> | null = null;
    const sync = engine.sync.bind(engine);
    engine.sync = () => (stalled ? stalled.then(sync) : sync());
    const { n } = await soloNode("stall", engine);
    t.after(() => n.stop().catch(() => {}));
    await n.propose(put("before", "1"));
    stalled = new Promise<void>((r) => {
      release = r;
    });
    // One proposal per event-loop turn: one Ready (and one write waiting on the disk) each,
    // well past the bound of 64 such writes.
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < 150; i++) {
      acks.push(n.propose(put(`k${i}`, `${i}`)));
      await new Promise((r) => setImmediate(r));
    }
    await sleep(50);
    stalled = null;
    release();
    // The loop used to wait on its own Ready's write here and never run again.
    await Promise.race([
      Promise.all(acks),
      sleep(5000).then(() => {
        throw new Error("writes still unacknowledged 5 s after the disk came back");
      }),
    ]);
    assert.equal(dec(await n.read(enc("k149"))), "149");
  });

  it("a failure reported after the node stopped leaves it stopped (no loop restarts)", async (t) => {
    const dir = join(tmp.dir, `late${++seq}`);
    const { n, log } = await soloNode("late", new FileStorageEngine({ dir: join(dir, "storage") }));
    t.after(() => n.stop().catch(() => {}));
    await n.stop();
    const fatal = record(n, "fatal");
    await (n as unknown as { fatal(e: Error): Promise<void> }).fatal(
      new Error("injected: late write failure"),
    );
    assert.equal((n as unknown as { state: string }).state, "stopped");
    assert.deepEqual(fatal, [], "no fatal event for a node already stopped");
    assert.ok(log.find("failure after stop; ignored").length > 0);
  });

  it("a state machine failure is fail-stop: fatal, and run() still shuts the node down", async (t) => {
    const dir = join(tmp.dir, `smfail${++seq}`);
    const sm = new FileStateMachine({ dir: join(dir, "state_machine") });
    const boom = new Error("injected: state machine apply failed");
    let failing = false;
    const apply = sm.apply.bind(sm);
    sm.apply = (entries) => (failing ? Promise.reject(boom) : apply(entries));
    const { n, log } = await soloNode("smfail", new FileStorageEngine({ dir: join(dir, "storage") }), sm);
    t.after(() => n.stop().catch(() => {}));
    await n.propose(put("ok", "1"));
    const fatal = record(n, "fatal");
    const running = n.run(new AbortController().signal);
    failing = true;
    const write = n.propose(put("bad", "1")).then(
      () => "acknowledged",
      (e: unknown) => e,
    );
    // run() resolves only once stop() completed: it used to wait forever on the abandoned Ready.
    await Promise.race([
      running,
      sleep(5000).then(() => {
        throw new Error("run() still pending 5 s after the failure");
      }),
    ]);
    assert.equal(fatal[0], boom);
    assert.equal(await write, boom);
    assert.equal(n.running, false);
    assert.ok(log.find("node stopped").length > 0);
  });

  it("fail-stop also fails an on-demand snapshot waiting behind the one being written", async (t) => {
    const dir = join(tmp.dir, `snapfatal${++seq}`);
    const sm = new FileStateMachine({ dir: join(dir, "state_machine") });
    let open: () => void = () => {};
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const image = sm.snapshot.bind(sm);
    sm.snapshot = () =>
      (async function* () {
        await gate; // the first snapshot is still being written
        yield* image();
      })();
    const { n } = await soloNode("snapfatal", new FileStorageEngine({ dir: join(dir, "storage") }), sm);
    t.after(() => n.stop().catch(() => {}));
    await n.propose(put("k", "v"));
    const first = n.snapshot().then(
      () => "taken",
      (e: unknown) => e,
    );
    await sleep(50);
    const second = n.snapshot().then(
      () => "taken",
      (e: unknown) => e,
    );
    const boom = new Error("injected: storage failed");
    await n.fatal(boom);
    const settled = await Promise.race([second, sleep(2000).then(() => "still pending")]);
    assert.equal(settled, boom);
    open();
    await first;
  });

  it("a LogStore sync() failure is fail-stop: fatal, pending proposals and membership changes fail with it, run() resolves, no ack after", async (t) => {
    const dir = join(tmp.dir, `fatal${++seq}`);
    const engine = new FileStorageEngine({ dir: join(dir, "storage") });
    const boom = new Error("injected: sync failed (EIO)");
    let failing = false;
    const sync = engine.sync.bind(engine);
    engine.sync = () => (failing ? Promise.reject(boom) : sync());
    const { n, log } = await soloNode("fatal", engine);
    t.after(() => n.stop().catch(() => {}));
    for (let i = 0; i < 5; i++) await n.propose(put(`ok${i}`, "1"));
    const fatal = record(n, "fatal");
    const running = n.run(new AbortController().signal);

    const acks: { key: string; at: number }[] = [];
    const errors: unknown[] = [];
    failing = true;
    const pending = Array.from({ length: 8 }, (_, i) =>
      n.propose(put(`bad${i}`, "1")).then(
        () => acks.push({ key: `bad${i}`, at: Date.now() }),
        (e: unknown) => errors.push(e),
      ),
    );
    const change = n.addLearner(2, memAddress(2)).then(
      () => "applied",
      (e: unknown) => e,
    );
    await running; // resolved by the fatal error, not by the signal
    await Promise.all(pending);
    assert.equal(await change, boom, "a pending membership change fails with the storage error too");
    assert.equal(fatal.length >= 1, true, "fatal emitted");
    assert.equal(fatal[0], boom);
    assert.deepEqual(acks, [], "nothing acknowledged once sync failed");
    assert.equal(errors.length, 8);
    for (const e of errors) assert.equal(e, boom, "pending proposals fail with the storage error");
    assert.equal(n.running, false);
    assert.ok(log.find("fatal: stopping node").length > 0);
    assert.ok(log.find("node stopped").length > 0, "shut down after the failure");
    await assert.rejects(n.propose(put("later", "1")), StoppedError);
  });

  it("a storage failure with several writes in flight leaves no unhandled rejection (it would end the process)", async (t) => {
    const dir = join(tmp.dir, `unhandled${++seq}`);
    const engine = new FileStorageEngine({ dir: join(dir, "storage") });
    const { n } = await soloNode("unhandled", engine);
    t.after(() => n.stop().catch(() => {}));
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      // Each sync fails a little later, so the next Ready's write is already queued behind it.
      engine.sync = () => sleep(30).then(() => Promise.reject(new Error("injected: sync failed (EIO)")));
      const writes = [];
      for (let i = 0; i < 3; i++) {
        writes.push(n.propose(put(`w${i}`, "1")).catch((e: unknown) => e));
        await sleep(5);
      }
      await Promise.all(writes);
      await n.stop();
      await sleep(100);
      assert.deepEqual(unhandled.map(String), []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("fail-stop stops the node by itself: a leader whose disk fails steps out and the others elect a new one", async (t) => {
    const { nodes } = await startMemCluster(t, join(tmp.dir, `failstop${++seq}`), 3);
    const leader = await waitFor("a leader", () => leaderOf(nodes));
    await leader.propose(put("before", "1"));
    const others = nodes.filter((x) => x !== leader);
    const stopped = new Promise<void>((resolve) => {
      const store = leader.logStore;
      store.sync = () => Promise.reject(new Error("injected: sync failed (EIO)"));
      const close = store.close.bind(store);
      store.close = () => close().finally(resolve);
    });
    const write = leader.propose(put("lost", "1")).then(
      () => "acknowledged",
      (e: unknown) => String(e),
    );
    assert.match(await write, /injected: sync failed/);
    // Nobody calls stop() or run(): the node must not stay half alive, heartbeating as leader.
    await Promise.race([
      stopped,
      sleep(5000).then(() => {
        throw new Error("the failed node did not close its storage by itself");
      }),
    ]);
    const next = await waitFor("a new leader among the others", () => leaderOf(others), 5000);
    await next.propose(put("after", "1"));
    for (const x of others) assert.equal(dec(await x.read(enc("before"))), "1", `node ${x.id}`);
    assert.equal(leader.running, false);
  });
});
