/**
 * Membership changes that used to leave a cluster without a usable quorum or
 * a node running that should have stopped (in-process, in-memory transport,
 * file storage): joint changes that remove members, a learner gone silent,
 * and a new node that reuses a removed node's id.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { NodeBuilder } from "../../src/node/builder.ts";
import { mergeNodeConfig, type NodeConfigInput } from "../../src/node/config.ts";
import { ConfChangeType } from "../../src/raft/types.ts";
import { MemoryNetwork } from "../../src/transport/memory.ts";
import {
  cutOff,
  FAST,
  type KvNode,
  leaderOf,
  type MemCluster,
  memAddress,
  memCluster,
  memNode,
  put,
  startMemCluster,
  tempDir,
  voters,
  waitFor,
} from "./helpers.ts";

const tmp = tempDir("tsraft-membership-");
after(() => tmp.cleanup());
let seq = 0;

function track(t: TestContext, nodes: KvNode[]): void {
  t.after(async () => {
    for (const n of nodes) await n.stop().catch(() => {});
  });
}

/** Voters 1-3, then learners 4 and 5 joined and caught up. */
async function fiveNodes(t: TestContext): Promise<MemCluster> {
  const cfg: NodeConfigInput = { membership: { autoPromote: false } };
  const m = await startMemCluster(t, `${tmp.dir}/j${++seq}`, 3, cfg);
  const nodes = m.nodes;
  await Promise.all(nodes.map((n) => n.ready()));
  for (const id of [4, 5]) await m.add(id, { ...cfg, join: { "1": memAddress(1) } }).startRpcServer();
  await waitFor(
    "learners caught up",
    () => {
      const l = leaderOf(nodes.filter((n) => n.running));
      return l?.status().members.filter((m) => m.role === "learner" && m.state === "replicate").length === 2;
    },
    10_000,
  );
  return m;
}

const jointSwap = (add: number[], remove: number[]) => ({
  changes: [
    ...add.map((nodeId) => ({ type: ConfChangeType.AddNode, nodeId })),
    ...remove.map((nodeId) => ({ type: ConfChangeType.RemoveNode, nodeId })),
  ],
  transition: "auto" as const,
  context: new Uint8Array(0),
});

describe("joint changes that remove members", () => {
  it("members removed by a joint change stay until it is left (they are outgoing voters meanwhile)", async (t) => {
    const { net, nodes } = await fiveNodes(t);
    const leader = leaderOf(nodes)!;
    const victims = nodes.filter((n) => n.id <= 3 && n !== leader);
    const ids = new Set(victims.map((v) => v.id));
    // Appends to the nodes being removed are lost for 80 ms once the joint config is entered:
    // they were told they were removed and stopped then, and the joint config could never be left.
    let blipUntil = 0;
    leader.on("membershipChange", ({ confState }) => {
      if (confState.votersOutgoing.length > 0) blipUntil = Date.now() + 80;
    });
    net.setFaultHook((m) =>
      m.type === "append" && ids.has(m.to) && Date.now() < blipUntil ? "drop" : "deliver",
    );
    await leader.proposeConfChange(jointSwap([4, 5], [...ids]));
    const survivors = nodes.filter((n) => !ids.has(n.id));
    await waitFor(
      "the joint config left",
      () => leaderOf(survivors)?.status().members.length === 3 && voters(leaderOf(survivors)!).length === 3,
      8000,
    );
    assert.deepEqual(
      voters(leaderOf(survivors)!),
      [leader.id, 4, 5].sort((a, b) => a - b),
    );
    assert.equal((await leaderOf(survivors)!.propose(put("after", "1"))).op, "put");
    await waitFor("the removed nodes stopped", () => victims.every((v) => !v.running), 5000);
  });

  it("a joint change that removes the leader and a follower: both stop, the others go on", async (t) => {
    const { nodes } = await fiveNodes(t);
    const leader = leaderOf(nodes)!;
    const follower = nodes.find((n) => n.id <= 3 && n !== leader)!;
    await leader.proposeConfChange(jointSwap([4, 5], [leader.id, follower.id])).catch(() => {});
    const survivors = nodes.filter((n) => n !== leader && n !== follower);
    // The leave-joint entry names no removal: the removed leader never shut down, and its
    // clients' writes waited out proposalTimeoutMs.
    await waitFor("both removed nodes stopped", () => !leader.running && !follower.running, 8000);
    const next = await waitFor("a leader among the others", () => leaderOf(survivors), 8000);
    assert.deepEqual(voters(next).length, 3);
    assert.equal((await next.propose(put("after", "1"))).op, "put");
  });
});

describe("automatic promotion", () => {
  it("a learner that went silent is not promoted (a single voter would lose its quorum)", async (t) => {
    const net = new MemoryNetwork({ clusterId: "silent-learner" });
    const dir = `${tmp.dir}/s${++seq}`;
    const cfg: NodeConfigInput = { membership: { promoteAfterMs: 300 } };
    const n1 = memNode(net, 1, dir, { ...cfg, initialCluster: { "1": memAddress(1) } });
    const n2 = memNode(net, 2, dir, { ...cfg, join: { "1": memAddress(1) } });
    track(t, [n1, n2]);
    await n1.startRpcServer();
    await n1.ready();
    let dead = false;
    net.setFaultHook((m) => (dead && (m.to === 2 || m.from === 2) ? "drop" : "deliver"));
    await n2.startRpcServer();
    await waitFor(
      "2 replicating",
      () => n1.status().members.find((m) => m.id === 2 && m.state === "replicate"),
      10_000,
    );
    dead = true;
    // Light load keeps its stale match index within promoteWithinEntries.
    for (let i = 0; i < 20; i++) {
      await n1.propose(put("k", `v${i}`));
      await sleep(50);
    }
    assert.deepEqual(voters(n1), [1]);
    assert.equal(n1.status().role, "leader");
    // Heard from again, it is promoted as before.
    dead = false;
    await waitFor("2 promoted once it answers", () => voters(n1).includes(2), 10_000);
  });
});

describe("reusing a removed node's id", () => {
  /**
   * Nodes 1-3 with one entry per append (a joiner's commit index stops at the old removal
   * for a while); 20 writes, node 3 removed and stopped, 20 more writes. `build()` makes a
   * fresh node 3 at another address that joins through the leader (same directory each call).
   */
  async function removedThree(t: TestContext, clusterId: string) {
    const net = new MemoryNetwork({ clusterId });
    const dir = `${tmp.dir}/r${++seq}`;
    const raft = { maxSizePerMsgBytes: 1 };
    const nodes = [1, 2, 3].map((id) => memNode(net, id, dir, { raft, initialCluster: memCluster(3) }));
    track(t, nodes);
    await Promise.all(nodes.map((n) => n.startRpcServer()));
    await Promise.all(nodes.map((n) => n.ready()));
    let leader = await waitFor("a leader", () => leaderOf(nodes));
    if (leader.id === 3) {
      await leader.transferLeadership(1);
      leader = await waitFor("leader 1", () =>
        nodes[0]!.status().role === "leader" ? nodes[0]! : undefined,
      );
    }
    for (let i = 0; i < 20; i++) await leader.propose(put(`a${i}`, "x"));
    await leader.removeNode(3);
    await nodes[2]!.stop();
    for (let i = 0; i < 20; i++) await leader.propose(put(`b${i}`, "x"));
    const address = "n33:1";
    const config = {
      ...mergeNodeConfig(FAST, { raft, join: { [leader.id]: memAddress(leader.id) } }),
      nodeId: 3,
      listen: address,
      dataDir: join(dir, "m3new"),
    };
    const build = () => {
      const n = new NodeBuilder(config).transport(net.transport(3, { address })).build() as unknown as KvNode;
      track(t, [n]);
      return n;
    };
    return { net, leader, others: nodes.filter((n) => n.id !== 3), build };
  }

  /** Starts `n`, waits until it is a voter again and caught up, and says whether it was told it was removed. */
  async function readmitted(n: KvNode, leader: KvNode): Promise<boolean> {
    let removed = false;
    n.on("removed", () => {
      removed = true;
    });
    await n.startRpcServer();
    await waitFor("node 3 a voter again", () => voters(leader).includes(3), 10_000);
    await waitFor("node 3 caught up", () => n.status().applied >= leader.status().commit, 10_000);
    return removed;
  }

  it("a fresh node with a removed node's id, catching up in small appends, is not shut down by the old removal", async (t) => {
    const { leader, build } = await removedThree(t, "reuse-id");
    const fresh = build();
    assert.equal(await readmitted(fresh, leader), false, "the old removal shut the new node down");
    assert.ok(fresh.running);
  });

  it("nor when it restarts between the old removal and its re-admission", async (t) => {
    const { net, leader, others, build } = await removedThree(t, "reuse-id-restart");
    const fresh = build();
    // Cut off the moment it applies the old removal of id 3: its log then ends before its
    // re-admission, and it stops there.
    let cut = false;
    fresh.on("membershipChange", ({ confState }) => {
      if (!cut && ![...confState.voters, ...confState.learners].includes(3)) {
        cut = true;
        cutOff(net, fresh, others);
      }
    });
    await fresh.startRpcServer();
    await waitFor("node 3 applied the old removal", () => cut, 10_000);
    await fresh.stop();
    net.heal();
    const again = build();
    assert.equal(await readmitted(again, leader), false, "the old removal shut the restarted node down");
    assert.ok(again.running);
  });
});

describe("joining", () => {
  it("a join that cannot succeed: refused at once for an id that is a member elsewhere, and the node does not stay running", async (t) => {
    const net = new MemoryNetwork({ clusterId: "join-refused" });
    const dir = `${tmp.dir}/jr${++seq}`;
    const n1 = memNode(net, 1, dir, { initialCluster: { "1": memAddress(1) } });
    track(t, [n1]);
    await n1.startRpcServer();
    await n1.ready();
    // Node 2 is a member (a learner) at n2:1; another node 2 asks to join from elsewhere.
    await n1.addLearner(2, memAddress(2));
    const impostorAddress = "n92:1";
    const base = mergeNodeConfig(FAST, { join: { "1": memAddress(1) }, limits: { readyTimeoutMs: 5000 } });
    const impostor = new NodeBuilder({
      ...base,
      nodeId: 2,
      listen: impostorAddress,
      dataDir: join(dir, "impostor"),
    })
      .transport(net.transport(2, { address: impostorAddress }))
      .build() as unknown as KvNode;
    track(t, [impostor]);
    const t0 = Date.now();
    await assert.rejects(impostor.startRpcServer(), /is a member at n2:1, not n92:1/);
    assert.ok(Date.now() - t0 < 2500, `refused after ${Date.now() - t0} ms (it retried until the timeout)`);
    assert.equal(impostor.running, false, "a node that was not admitted does not stay running");
    assert.deepEqual(voters(n1), [1]);
    // A join through a member that never answers: a timeout, and again nothing left running.
    const lonely = memNode(net, 7, dir, { join: { "9": memAddress(9) }, limits: { readyTimeoutMs: 500 } });
    await assert.rejects(lonely.startRpcServer(), /joining the cluster/);
    assert.equal(lonely.running, false);
  });
});
