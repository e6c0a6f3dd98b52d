/**
 * Runtime tests with real processes: `tsraft node` children on loopback,
 * file storage in temp dirs, killed with SIGKILL/SIGTERM and restarted on the
 * same data dir and ports. Every child is killed in `after`, even on failure.
 */

import assert from "node:assert/strict";
import { after, describe, it, type TestContext } from "node:test";
import { freePorts, tempDir } from "./helpers.ts";
import { type NodeProc, ProcCluster, poll, Workload } from "./procs.ts";

const tmp = tempDir("tsraft-procs-");
const clusters: ProcCluster[] = [];
let seq = 0;
/** A cluster whose processes are all killed when test `t` ends, pass or fail. */
function newCluster(t: TestContext): ProcCluster {
  const c = new ProcCluster(`${tmp.dir}/c${++seq}`);
  clusters.push(c);
  t.after(() => c.killAll());
  return c;
}
after(async () => {
  await Promise.all(clusters.map((c) => c.killAll()));
  tmp.cleanup();
});

async function startAll(procs: readonly NodeProc[]): Promise<void> {
  await Promise.all(procs.map((p) => p.start()));
}

/** Three founding members, started, with a leader elected. */
async function threeNodes(t: TestContext) {
  const c = newCluster(t);
  const procs = await c.create(3);
  await startAll(procs);
  const leader = await c.waitLeader();
  return { c, procs, leader };
}

describe("real processes on loopback with file storage", () => {
  it("elects a leader and replicates across 3 processes", async (t) => {
    const { c, procs, leader } = await threeNodes(t);
    const followers = procs.filter((p) => p !== leader);
    // A write sent to a follower is redirected (421) to the leader by the client.
    const first = await c.json(followers[0]!, "PUT", "/kv/probe");
    assert.equal(first.status, 421, "a follower refuses writes with 421");
    assert.equal(first.body.leaderId, leader.id);
    assert.equal(first.body.leaderPeerAddress, leader.peer);
    for (let i = 0; i < 20; i++) assert.ok(await c.put(`k${i}`, `v${i}`, Date.now() + 5000, followers[0]));
    for (const p of procs) {
      for (let i = 0; i < 20; i++) assert.equal(await c.get(p, `k${i}`), `v${i}`, `node ${p.id} k${i}`);
      // Eventual reads on followers converge too (applied locally).
      await poll(`node ${p.id} applied k19`, async () => (await c.get(p, "k19", "eventual")) === "v19");
    }
    const st = (await c.status(leader))!;
    assert.equal(st.role, "leader");
    assert.deepEqual(
      st.members.map((m) => [m.id, m.role]),
      [
        [1, "voter"],
        [2, "voter"],
        [3, "voter"],
      ],
    );
    // --exit-with-parent: when stdin closes (the parent died), the node shuts down cleanly.
    const orphan = followers[1]!;
    orphan.child!.stdin!.end();
    const exit = await poll("the orphaned node exits", () => (orphan.alive ? null : orphan.exited()));
    assert.equal(exit.code, 0, orphan.tail());
    assert.ok(orphan.logged("node stopped").length > 0);
  });

  it("SIGKILL of the leader under load: a new leader takes over and no acknowledged write is lost", async (t) => {
    const { c, procs, leader: oldLeader } = await threeNodes(t);
    const oldTerm = (await c.status(oldLeader))!.term;
    const load = new Workload(c);
    load.start(8);
    await load.waitMore(120);
    const killed = await oldLeader.kill("SIGKILL");
    assert.equal(killed.signal, "SIGKILL");
    const ackedAtKill = load.ackedCount;
    const survivors = procs.filter((p) => p !== oldLeader);
    const newLeader = await c.waitLeader(survivors);
    assert.notEqual(newLeader.id, oldLeader.id);
    assert.ok((await c.status(newLeader))!.term > oldTerm, "the new leader is in a later term");
    // The load keeps going through the new leader.
    await load.waitMore(120);
    await load.stop();
    assert.ok(load.ackedCount >= ackedAtKill + 120);
    for (const p of survivors) await load.verifyOn(p);
    await oldLeader.start();
    const checked = await load.verifyOn(oldLeader);
    assert.equal(checked, load.ackedCount);
    // It rejoined as a follower of the current leader.
    await poll("the restarted node follows", async () => (await c.agreedLeader(procs)) !== null);
  });

  it("SIGKILL of every node mid-load, then a restart of all: every acknowledged write is recovered", async (t) => {
    const { c, procs } = await threeNodes(t);
    const load = new Workload(c);
    load.start(8);
    await load.waitMore(150);
    // Kill all three at once, in the middle of writes; writers then stall and retry.
    await Promise.all(procs.map((p) => p.kill("SIGKILL")));
    const acked = new Map(load.acked);
    const latest = load.latest.map((l) => ({ ...l }));
    await startAll(procs);
    await c.waitLeader();
    await load.waitMore(30);
    await load.stop();
    // Everything acknowledged before the crash is there, on every node.
    for (const [k, v] of acked) assert.equal(load.acked.get(k), v);
    for (const p of procs) await load.verifyOn(p);
    for (let w = 0; w < latest.length; w++) assert.ok(load.latest[w]!.acked >= latest[w]!.acked);
  });

  it("a 4th node joins as a learner under load (through a follower) and is promoted to voter", async (t) => {
    const { c, procs, leader } = await threeNodes(t);
    const load = new Workload(c);
    load.start(4);
    await load.waitMore(100);
    const via = procs.find((p) => p !== leader)!;
    const [peerPort, httpPort] = await freePorts(2);
    const fourth = c.add({
      id: 4,
      peerPort: peerPort!,
      httpPort: httpPort!,
      dataDir: `${c.dir}/n4`,
      join: `${via.id}=${via.peer}`,
    });
    await fourth.start();
    // (stderr and stdout are separate pipes: the log line may arrive after the ready line)
    await poll(
      "node 4 logging its admission",
      () => fourth.logged("joined the cluster as a learner").length > 0,
    );
    // Admitted first as a learner (the leader logs the promotion of a learner later).
    const st = await poll(
      "4 voters",
      async () => {
        const s = await c.status(fourth);
        const voters = s?.members.filter((m) => m.role === "voter").map((m) => m.id);
        return voters?.length === 4 ? s : null;
      },
      15_000,
    );
    assert.deepEqual(
      st.members.map((m) => m.id),
      [1, 2, 3, 4],
    );
    const leaderNow = (await c.waitLeader())!;
    assert.ok(
      leaderNow.logged("promoting caught-up learner").some((l) => l.learner === 4),
      "the leader promoted learner 4 automatically",
    );
    await load.waitMore(50);
    await load.stop();
    await load.verifyOn(fourth);
    // The leader's view agrees: 4 voters.
    const ls = (await c.status(leaderNow))!;
    assert.equal(ls.members.filter((m) => m.role === "voter").length, 4);
  });

  it("a removed node shuts down cleanly (exit 0) and the cluster keeps serving", async (t) => {
    const { c, procs, leader } = await threeNodes(t);
    for (let i = 0; i < 20; i++) assert.ok(await c.put(`before${i}`, `${i}`));
    const victim = procs.find((p) => p !== leader)!;
    const r = await c.json(leader, "DELETE", `/members/${victim.id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(
      [...(r.body.confState?.voters ?? [])].sort((a, b) => a - b),
      procs.filter((p) => p !== victim).map((p) => p.id),
    );
    const exit = await poll("the removed node exits", () => (victim.alive ? null : victim.exited()), 10_000);
    assert.equal(exit.code, 0, `removed node exit: ${JSON.stringify(exit)}\n${victim.tail()}`);
    const rest = procs.filter((p) => p !== victim);
    await c.waitLeader(rest);
    for (let i = 0; i < 20; i++) assert.ok(await c.put(`after${i}`, `${i}`));
    for (const p of rest) {
      assert.equal(await c.get(p, "before7"), "7");
      assert.equal(await c.get(p, "after19"), "19");
      const st = (await c.status(p))!;
      assert.deepEqual(
        st.members.map((m) => m.id),
        rest.map((x) => x.id),
      );
    }
  });

  it("a node down through several compactions catches up by a streamed snapshot", async (t) => {
    const c = newCluster(t);
    const config = c.configFile("snap.json", {
      snapshot: { policy: "entries", entries: 50, keepTailEntries: 10, chunkBytes: 1024 },
    });
    const procs = await c.create(3, { config });
    await startAll(procs);
    const leader = await c.waitLeader();
    const lagger = procs.find((p) => p !== leader)!;
    for (let i = 0; i < 10; i++) assert.ok(await c.put(`early${i}`, `${i}`));
    const lagAtStop = (await c.status(lagger))!;
    await lagger.kill("SIGTERM");
    const live = procs.filter((p) => p !== lagger);
    const load = new Workload(c);
    load.start(8);
    await load.waitMore(250);
    await load.stop();
    // Several snapshots and compactions on the live nodes, beyond the lagger's log.
    const lagLast = lagger.logs.filter((l) => l.msg === "node stopped").length;
    assert.equal(lagLast, 1);
    for (const p of live) {
      const st = await poll(`node ${p.id} compacted`, async () => {
        const s = await c.status(p);
        return s && s.snapshotIndex > 200 && s.firstIndex > 100 ? s : null;
      });
      assert.ok(p.logged("snapshot taken").length >= 3, `node ${p.id} took several snapshots`);
      // The lagger's next entry is gone from this node's log: only a snapshot can bring it up.
      assert.ok(
        st.firstIndex > lagAtStop.lastIndex + 1,
        `firstIndex ${st.firstIndex} vs ${lagAtStop.lastIndex}`,
      );
    }
    await lagger.start();
    await poll(
      "the snapshot installed on the lagging node",
      () => lagger.logged("snapshot installed").length > 0,
    );
    const ls = (await c.status(lagger))!;
    assert.ok(ls.snapshotIndex > 200, `snapshotIndex ${ls.snapshotIndex}`);
    assert.ok(
      [...c.procs.values()].some((p) => p.logged("snapshot sent").length > 0),
      "the leader streamed it",
    );
    for (let i = 0; i < 10; i++) assert.equal(await c.get(lagger, `early${i}`), `${i}`);
    await load.verifyOn(lagger);
    // And it keeps replicating by log afterwards.
    assert.ok(await c.put("post-snapshot", "yes"));
    assert.equal(await c.get(lagger, "post-snapshot", "linearizable"), "yes");
  });

  it("graceful shutdown (SIGTERM) of the leader hands leadership over, exits 0, loses nothing", async (t) => {
    const { c, procs, leader } = await threeNodes(t);
    const load = new Workload(c);
    load.start(4);
    await load.waitMore(60);
    const t0 = Date.now();
    const exit = await leader.kill("SIGTERM");
    const exitMs = Date.now() - t0;
    assert.equal(exit.code, 0, `leader exit ${JSON.stringify(exit)}\n${leader.tail()}`);
    assert.equal(leader.logged("leader transfer before shutdown failed").length, 0, leader.tail());
    const survivors = procs.filter((p) => p !== leader);
    const next = await c.waitLeader(survivors);
    const handedOver = Date.now() - t0;
    // The new leader was elected by TimeoutNow, not by an election timeout: no pre-vote round was needed.
    assert.ok(
      next.logged("leader changed").some((l) => l.leader === next.id),
      "the new leader logged its leadership",
    );
    assert.ok(exitMs < 3000, `shutdown took ${exitMs} ms`);
    // The old leader saw the new one before it stopped (handed over, not abandoned), and the
    // hand-over took less than the 200 ms minimum election timeout (10 ticks of 20 ms) an
    // election after a crash would need: it was a TimeoutNow, not a timeout.
    const sigAt = leader.logged("shutting down gracefully")[0]!.time as number;
    const sawNew = leader.logged("leader changed").find((l) => l.leader === next.id);
    assert.ok(sawNew, `the old leader saw node ${next.id} lead:\n${leader.tail()}`);
    assert.ok((sawNew.time as number) <= (leader.logged("node stopped")[0]!.time as number));
    const tookOver = next
      .logged("leader changed")
      .find((l) => l.leader === next.id && (l.time as number) >= sigAt);
    assert.ok(tookOver);
    const handOverMs = (tookOver.time as number) - sigAt;
    assert.ok(handOverMs < 200, `hand-over took ${handOverMs} ms`);
    await load.waitMore(60);
    await load.stop();
    for (const p of survivors) await load.verifyOn(p);
    await leader.start();
    await load.verifyOn(leader);
    assert.ok(handedOver < 5000, `hand-over took ${handedOver} ms`);
  });

  it("a node of another cluster id is refused and the cluster is unaffected", async (t) => {
    const c = newCluster(t);
    // A longer election timeout (600 ms) so that a CPU-starved test machine does not cause an
    // election of its own: the term is asserted unchanged below.
    const procs = await c.create(3, { env: { TSRAFT_RAFT_ELECTION_TICKS: "30" } });
    await startAll(procs);
    const leader = await c.waitLeader();
    const term0 = (await c.status(leader))!.term;
    for (let i = 0; i < 10; i++) assert.ok(await c.put(`k${i}`, `${i}`));
    const [peerPort, httpPort] = await freePorts(2);
    const stranger = c.add({
      id: 4,
      peerPort: peerPort!,
      httpPort: httpPort!,
      dataDir: `${c.dir}/stranger`,
      join: procs.map((p) => `${p.id}=${p.peer}`).join(","),
      clusterId: "another-cluster",
      waitReady: false,
    });
    await stranger.start();
    await poll(
      "members logging the refusal",
      () => procs.some((p) => p.logged("refused connection").some((l) => l.reason === "cluster-id-mismatch")),
      10_000,
    );
    // Give it time to try (several join attempts), then check it was never admitted.
    await poll("several refused attempts", () =>
      procs.reduce((n, p) => n + p.logged("refused connection").length, 0) >= 3 ? true : null,
    );
    for (let i = 10; i < 20; i++) assert.ok(await c.put(`k${i}`, `${i}`));
    const now = await c.waitLeader(procs);
    assert.equal(now.id, leader.id, "leadership did not move");
    const st = (await c.status(now))!;
    assert.equal(st.term, term0, "no election was disturbed");
    assert.deepEqual(
      st.members.map((m) => m.id),
      [1, 2, 3],
    );
    assert.equal(stranger.logged("joined the cluster").length, 0);
    assert.ok(
      stranger.logs.some((l) => l.reason === "cluster-id-mismatch" && l.msg.includes("refused us")),
      "the stranger learns why it was refused",
    );
    const ss = await c.status(stranger);
    assert.ok(ss === null || (ss.role !== "leader" && ss.leader === 0), JSON.stringify(ss));
    for (const p of procs) assert.equal(await c.get(p, "k19"), "19");
  });
});
