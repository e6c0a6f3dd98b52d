/**
 * Elections: randomized timeouts, pre-vote, check-quorum, leader stickiness,
 * and the leader lease built on them.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReadDroppedError } from "../../src/errors.ts";
import { MemoryRaftLog } from "../../src/raft/memory-log.ts";
import { RawNode } from "../../src/raft/raw-node.ts";
import type { Message } from "../../src/raft/types.ts";
import { LocalCluster } from "../../src/testing/local-cluster.ts";
import {
  bootstrap,
  electedCluster,
  enc,
  ids,
  recordDeliveries,
  role,
  term,
  tickAndSettle,
} from "./helpers.ts";

describe("election timeout", () => {
  it("is drawn from the injected rng within [electionTick, 2*electionTick)", () => {
    const e = 10;
    // The extremes of the rng's range and points in between map to e .. 2e-1.
    for (const [x, want] of [
      [0, 10],
      [0.05, 10],
      [0.1, 11],
      [0.55, 15],
      [0.999999, 19],
    ] as const) {
      const storage = new MemoryRaftLog(bootstrap(3));
      const n = new RawNode({ id: 1, storage, rng: () => x, electionTick: e });
      assert.equal(n.internals.randomizedElectionTimeout, want, `rng ${x}`);
      // The node campaigns exactly when that many ticks pass without a leader.
      for (let i = 1; i < want; i++) n.tick();
      assert.equal(n.status().role, "follower");
      n.tick();
      assert.equal(n.status().role, "preCandidate", `campaigns after ${want} ticks`);
    }
  });

  it("draws a fresh timeout at each term change, always in range", () => {
    const c = new LocalCluster(ids(3), { electionTick: 7 }, 42);
    const seen = new Set<number>();
    for (let round = 0; round < 60; round++) {
      c.tickAll(1);
      c.stabilize();
      for (const n of c.nodes.values()) {
        const t = n.raw.internals.randomizedElectionTimeout;
        assert.ok(t >= 7 && t < 14, `timeout ${t} out of [7, 14)`);
        seen.add(t);
      }
      if (round % 20 === 19) c.isolate(c.leader() || 1);
      if (round % 20 === 0) c.heal();
    }
    assert.ok(seen.size >= 2, "timeouts are randomized");
  });

  it("a single voter elects itself at once", () => {
    const c = new LocalCluster([1]);
    c.elect(1);
    assert.equal(role(c, 1), "leader");
    c.node(1).raw.propose([enc("a")]);
    c.stabilize();
    assert.equal(c.node(1).raw.status().commit, 2);
  });
});

describe("pre-vote", () => {
  it("a partitioned node never inflates its term and does not disrupt the leader when it rejoins", () => {
    const c = electedCluster(3, { preVote: true, checkQuorum: true });
    const t0 = term(c, 1);
    c.isolate(3);
    for (let i = 0; i < 100; i++) {
      c.tickAll(1);
      c.stabilize();
      assert.equal(term(c, 3), t0, "the isolated node's term never moves");
      assert.notEqual(role(c, 3), "candidate");
    }
    assert.equal(role(c, 1), "leader");
    c.node(1).raw.propose([enc("while-partitioned")]);
    c.stabilize();
    c.heal();
    const seen = recordDeliveries(c);
    tickAndSettle(c, 30);
    assert.equal(c.leader(), 1, "the leader survives the rejoin");
    assert.equal(term(c, 1), t0, "no term change anywhere");
    assert.equal(term(c, 3), t0);
    assert.ok(!seen.some((m) => m.type === "vote"), "no real election happened");
    assert.equal(c.node(3).raw.status().commit, c.node(1).raw.status().commit, "node 3 caught up");
  });

  it("without pre-vote the same partition does inflate the term (the control case)", () => {
    const c = electedCluster(3, { preVote: false, checkQuorum: false });
    const t0 = term(c, 1);
    c.isolate(3);
    tickAndSettle(c, 100);
    assert.ok(term(c, 3) > t0 + 2, "a lone candidate keeps bumping its term");
  });
});

describe("check-quorum", () => {
  it("an isolated leader steps down within two election timeouts; a connected one never does", () => {
    const c = electedCluster(3, { checkQuorum: true, electionTick: 10 });
    tickAndSettle(c, 50);
    assert.equal(c.leader(), 1, "a leader that hears from a quorum keeps leading");
    c.isolate(1);
    let steppedDownAfter = -1;
    for (let i = 1; i <= 20; i++) {
      c.tick(1);
      c.stabilize();
      if (role(c, 1) !== "leader") {
        steppedDownAfter = i;
        break;
      }
    }
    assert.ok(steppedDownAfter > 0, "the isolated leader stepped down");
    assert.ok(steppedDownAfter >= 10, `not before one election timeout (${steppedDownAfter})`);
    assert.equal(c.node(1).raw.status().lead, 0);
  });

  it("without check-quorum an isolated leader keeps believing it leads (the control case)", () => {
    const c = electedCluster(3, { checkQuorum: false, preVote: false });
    c.isolate(1);
    for (let i = 0; i < 100; i++) c.tick(1);
    c.stabilize();
    assert.equal(role(c, 1), "leader");
  });
});

describe("leader stickiness", () => {
  it("followers ignore a higher-term vote request while the leader is live", () => {
    const c = electedCluster(3, { checkQuorum: true, preVote: false });
    tickAndSettle(c, 3);
    const t0 = term(c, 2);
    const vote: Message = {
      type: "vote",
      from: 3,
      to: 2,
      term: t0 + 1,
      lastIndex: 100,
      lastTerm: t0 + 1,
      transfer: false,
    };
    c.node(2).raw.step(vote);
    c.stabilize();
    assert.equal(term(c, 2), t0, "term unchanged");
    assert.equal(c.node(2).raw.status().vote, 1, "still voting for the leader");
    assert.equal(c.node(2).raw.status().lead, 1);

    // Once the leader has been silent for an election timeout, the same request is honoured.
    c.isolate(1);
    for (let i = 0; i < 10; i++) c.tick(2);
    c.node(2).raw.step(vote);
    assert.equal(term(c, 2), t0 + 1);
    assert.equal(c.node(2).raw.status().vote, 3);
  });

  it("a vote request carrying the leader's transfer flag bypasses stickiness", () => {
    const c = electedCluster(3, { checkQuorum: true, preVote: false });
    const t0 = term(c, 2);
    c.node(2).raw.step({
      type: "vote",
      from: 3,
      to: 2,
      term: t0 + 1,
      lastIndex: 100,
      lastTerm: t0,
      transfer: true,
    });
    assert.equal(term(c, 2), t0 + 1);
    assert.equal(c.node(2).raw.status().vote, 3);
  });
});

describe("leader lease", () => {
  const opts = { checkQuorum: true, preVote: true, electionTick: 10, leaseTicks: 8 };

  it("serves a lease read at once, without a heartbeat round", () => {
    const c = electedCluster(3, opts);
    tickAndSettle(c, 2); // a heartbeat round acknowledged by a quorum starts the lease
    const seen = recordDeliveries(c);
    c.node(1).raw.readIndex("r1", "lease");
    c.processReady(1);
    const commit = c.node(1).raw.status().commit;
    assert.deepEqual(c.node(1).readStates, [{ ctx: "r1", index: commit }]);
    c.stabilize();
    assert.ok(!seen.some((m) => m.type === "heartbeat"), "no heartbeat was needed");
  });

  it("a safe read needs a heartbeat round even with a lease", () => {
    const c = electedCluster(3, opts);
    tickAndSettle(c, 2);
    c.node(1).raw.readIndex("r1", "safe");
    c.processReady(1);
    assert.equal(c.node(1).readStates.length, 0);
    c.stabilize();
    assert.equal(c.node(1).readStates.length, 1);
  });

  it("a deposed leader cannot serve a lease read once a new leader exists", () => {
    const c = electedCluster(3, opts);
    tickAndSettle(c, 3);
    c.node(1).raw.propose([enc("old")]);
    c.stabilize();
    const staleCommit = c.node(1).raw.status().commit;
    c.partition([1], [2, 3]);
    // Everyone's clock runs at the same rate; wait until the majority elects a leader.
    const ticks = tickAndSettle(c, 40, () => role(c, 2) === "leader" || role(c, 3) === "leader");
    const newLeader = role(c, 2) === "leader" ? 2 : 3;
    assert.equal(role(c, newLeader), "leader", `a new leader after ${ticks} ticks`);
    // The scenario the lease must survive: the old leader has not noticed yet.
    assert.equal(role(c, 1), "leader", "precondition: node 1 still believes it leads");
    c.node(newLeader).raw.propose([enc("new")]);
    c.stabilize();
    assert.ok(c.node(newLeader).raw.status().commit > staleCommit);

    c.node(1).raw.readIndex("stale?", "lease");
    c.stabilize();
    assert.deepEqual(c.node(1).readStates, [], "no ReadState at the stale commit index");
    // The read is not lost either: once node 1 steps down it is reported dropped.
    tickAndSettle(c, 20, () => role(c, 1) !== "leader");
    assert.notEqual(role(c, 1), "leader");
    c.stabilize();
    assert.deepEqual(c.node(1).droppedReads, [{ ctx: "stale?", reason: "stepped-down" }]);
    assert.deepEqual(c.node(1).readStates, []);
  });

  it("a leader that sent TimeoutNow never serves lease reads again in its term (delayed TimeoutNow)", () => {
    const c = electedCluster(3, opts);
    tickAndSettle(c, 3);
    // Transfer to the up-to-date node 3: TimeoutNow goes out at once; the network holds it.
    c.node(1).raw.transferLeader(3);
    c.processReady(1);
    const timeoutNow = c.queue.filter((m) => m.type === "timeoutNow");
    assert.equal(timeoutNow.length, 1);
    c.queue = c.queue.filter((m) => m.type !== "timeoutNow");
    // The transfer is abandoned after an election timeout; heartbeats keep flowing.
    tickAndSettle(c, 12);
    assert.equal(c.node(1).raw.status().leadTransferee, 0, "transfer aborted");
    assert.equal(role(c, 1), "leader");
    c.node(1).raw.propose([enc("before")]);
    c.stabilize();
    // Now the delayed TimeoutNow arrives; node 3 campaigns (bypassing stickiness) and
    // wins with node 2, while everything addressed to node 1 is delayed.
    c.cutLink(3, 1);
    c.cutLink(2, 1);
    c.queue.push(...timeoutNow);
    c.stabilize();
    assert.equal(role(c, 3), "leader");
    c.node(3).raw.propose([enc("after")]);
    c.stabilize();
    const newCommit = c.node(3).raw.status().commit;
    assert.equal(role(c, 1), "leader", "precondition: node 1 has not heard of the new term");
    c.node(1).raw.readIndex("stale?", "lease");
    c.processReady(1);
    for (const rs of c.node(1).readStates) {
      assert.ok(
        rs.index >= newCommit,
        `stale lease read at ${rs.index} < ${newCommit} (write "after" missed)`,
      );
    }
  });

  it("lease reads need check-quorum (config validation)", () => {
    assert.throws(
      () =>
        new RawNode({
          id: 1,
          storage: new MemoryRaftLog(bootstrap(1)),
          rng: () => 0,
          leaseTicks: 3,
          checkQuorum: false,
        }),
      /checkQuorum/,
    );
  });

  it("a follower with no known leader refuses reads with no-leader", () => {
    const c = new LocalCluster(ids(3));
    assert.throws(
      () => c.node(2).raw.readIndex("x"),
      (e: unknown) => e instanceof ReadDroppedError && e.reason === "no-leader",
    );
  });
});

describe("votes while a leader is live (review findings)", () => {
  it("a follower that acknowledged a lease refuses a vote of its own term too (its term was raised by another message)", () => {
    const c = new LocalCluster([1, 2, 3], {
      preVote: false,
      checkQuorum: true,
      leaseTicks: 5,
      electionTick: 10,
    });
    c.tickAll(10); // with leases, a started node ignores votes for one election timeout
    c.elect(2);
    // Leader 2 (term 1) sends an append to 3 that the network holds back.
    c.node(2).raw.propose([enc("a")]);
    c.processReady(2);
    const held = c.queue.filter((m) => m.to === 3 && m.type === "append");
    c.queue = c.queue.filter((m) => !held.includes(m));
    c.stabilize();
    // Leadership moves to 1 (term 2), which renews its lease with 2 and 3.
    c.node(2).raw.transferLeader(1);
    c.stabilize();
    assert.equal(c.leader(), 1);
    c.node(1).raw.propose([enc("b")]);
    c.stabilize();
    for (let i = 0; i < 2; i++) {
      c.tickAll(1);
      c.stabilize();
    }
    // Node 3 campaigns for term 3; its vote request to 2 is delayed, the one to 1 is ignored.
    c.node(3).raw.campaign();
    c.processReady(3);
    const vote = c.queue.find((m) => m.type === "vote" && m.from === 3 && m.to === 2)!;
    c.queue = c.queue.filter((m) => m !== vote);
    c.deliverAll();
    // The held term-1 append reaches 3, whose answer (term 3) raises 2 to term 3, with no leader.
    c.node(3).raw.step(held[0]!);
    c.processReady(3);
    for (const m of c.queue.filter((x) => x.from === 3 && x.to === 2)) c.node(2).raw.step(m);
    c.queue = c.queue.filter((m) => !(m.from === 3 && m.to === 2));
    assert.equal(c.node(2).raw.status().term, 3);
    // Now the vote arrives, of 2's own term: 2 still heard from leader 1 within the election timeout.
    c.node(2).raw.step(vote);
    c.processReady(2);
    const answer = c.queue.find((m) => m.type === "voteResp" && m.from === 2 && m.to === 3);
    assert.ok(answer && answer.type === "voteResp" && answer.reject, "the vote is refused");
    c.isolate(1);
    c.stabilize();
    assert.notEqual(role(c, 3), "leader", "no second leader while 1's lease is valid");
  });

  it("a granted pre-vote of an earlier round does not count for a later one", () => {
    const c = new LocalCluster([1, 2, 3], { preVote: true, checkQuorum: true, electionTick: 10 });
    c.elect(1);
    c.isolate(1);
    c.tick(2, 10);
    c.tick(3, 10);
    c.processReady(2);
    c.processReady(3);
    c.queue = [];
    // 3 pre-campaigns for term 2; 2 grants, but the grant is held back.
    c.node(3).raw.campaign();
    c.processReady(3);
    c.deliverAll();
    c.processReady(2);
    const held = c.queue.filter((m) => m.type === "preVoteResp" && m.to === 3);
    assert.ok(held.length > 0 && held.every((m) => m.type === "preVoteResp" && !m.reject));
    c.queue = c.queue.filter((m) => !held.includes(m));
    c.stabilize();
    // 2 wins term 2; 3 follows it.
    c.node(2).raw.campaign();
    c.stabilize();
    c.heal();
    c.stabilize();
    const t = c.node(3).raw.status().term;
    assert.equal(t, c.node(2).raw.status().term);
    // 3, cut off, pre-campaigns for term t + 1: nobody can grant it. The stale grant arrives.
    c.isolate(3);
    c.node(3).raw.campaign();
    c.processReady(3);
    c.queue = c.queue.filter((m) => m.from !== 3);
    assert.equal(role(c, 3), "preCandidate");
    for (const m of held) c.node(3).raw.step(m);
    assert.equal(role(c, 3), "preCandidate", "still a pre-candidate");
    assert.equal(c.node(3).raw.status().term, t, "its term did not move");
  });
});
