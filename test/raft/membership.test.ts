/**
 * Membership changes on a running cluster: joint consensus (auto and explicit
 * leave), replacing a voter, removing the leader, learners, and the rules
 * that reject a change (one pending at a time, invalid changes).
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfChangeError, ProposalDroppedError } from "../../src/errors.ts";
import { decodeConfChange } from "../../src/raft/confchange-codec.ts";
import { type ConfState, EntryType, type NodeId } from "../../src/raft/types.ts";
import { LocalCluster } from "../../src/testing/local-cluster.ts";
import {
  appliedData,
  bootstrap,
  cc,
  confChange,
  electedCluster,
  enc,
  recordDeliveries,
  role,
  tickAndSettle,
} from "./helpers.ts";

function confOf(c: LocalCluster, id: NodeId): ConfState {
  return c.node(id).raw.confState();
}

/** The conf changes applied on a node, in order, as short strings. */
function appliedChanges(c: LocalCluster, id: NodeId): string[] {
  return c
    .node(id)
    .applied.filter((e) => e.type === EntryType.ConfChange)
    .map((e) => {
      const x = decodeConfChange(e.data);
      return x.changes.length === 0 ? "leave" : x.changes.map((ch) => `${ch.type}:${ch.nodeId}`).join(",");
    });
}

const simpleConf = (voters: number[], learners: number[] = []): ConfState => ({
  voters,
  learners,
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

describe("joint consensus", () => {
  it("enters a joint configuration and leaves it automatically", () => {
    const c = electedCluster(3);
    c.addNode(4, bootstrap(3));
    c.addNode(5, bootstrap(3));
    c.node(1).raw.proposeConfChange(confChange([cc.add(4), cc.add(5)]));
    // Step by step: after the entering entry is applied the leader is joint.
    let sawJoint = false;
    for (let i = 0; i < 200 && !sawJoint; i++) {
      for (const id of [1, 2, 3, 4, 5]) c.processReady(id);
      const cs = confOf(c, 1);
      if (cs.votersOutgoing.length > 0) {
        sawJoint = true;
        assert.deepEqual(cs.voters, [1, 2, 3, 4, 5]);
        assert.deepEqual(cs.votersOutgoing, [1, 2, 3]);
        assert.equal(cs.autoLeave, true);
      }
      c.deliverAll();
    }
    assert.ok(sawJoint, "the leader passed through the joint configuration");
    c.stabilize();
    for (const id of [1, 2, 3, 4, 5]) {
      assert.deepEqual(confOf(c, id), simpleConf([1, 2, 3, 4, 5]), `node ${id}`);
      assert.deepEqual(appliedChanges(c, id), ["0:4,0:5", "leave"], `node ${id} applied enter, then leave`);
    }
    c.node(1).raw.propose([enc("after")]);
    c.stabilize();
    for (const id of [1, 2, 3, 4, 5]) assert.deepEqual(appliedData(c, id), ["after"]);
  });

  it("with the explicit transition stays joint until an empty ConfChange leaves it", () => {
    const c = electedCluster(3);
    c.addNode(4, bootstrap(3));
    c.node(1).raw.proposeConfChange(confChange([cc.add(4)], "explicit"));
    c.stabilize();
    tickAndSettle(c, 5);
    const joint = {
      voters: [1, 2, 3, 4],
      learners: [],
      votersOutgoing: [1, 2, 3],
      learnersNext: [],
      autoLeave: false,
    };
    for (const id of [1, 2, 3, 4]) assert.deepEqual(confOf(c, id), joint);
    // A new change while joint is refused; leaving is the only way forward.
    assert.throws(() => c.node(1).raw.proposeConfChange(confChange([cc.remove(2)])), ConfChangeError);
    c.node(1).raw.proposeConfChange(confChange([]));
    c.stabilize();
    for (const id of [1, 2, 3, 4]) assert.deepEqual(confOf(c, id), simpleConf([1, 2, 3, 4]));
  });

  it("replaces a voter (add 4, remove 3) through a joint configuration", () => {
    const c = electedCluster(3);
    c.addNode(4, bootstrap(3));
    c.node(1).raw.proposeConfChange(confChange([cc.add(4), cc.remove(3)]));
    c.stabilize();
    for (const id of [1, 2, 4]) assert.deepEqual(confOf(c, id), simpleConf([1, 2, 4]));
    // Node 3 is out: commits no longer need it, and it never campaigns.
    c.isolate(3);
    c.node(1).raw.propose([enc("without-3")]);
    c.stabilize();
    assert.deepEqual(appliedData(c, 4), ["without-3"]);
    const before = c.node(1).raw.status().term;
    tickAndSettle(c, 50);
    assert.equal(c.leader(), 1);
    assert.equal(c.node(1).raw.status().term, before);
  });

  for (const transition of ["auto", "implicit"] as const) {
    it(`removes the leader (${transition}): it leads until the change is applied, then the rest elect a new one`, () => {
      const c = electedCluster(3);
      const { index } = c.node(1).raw.proposeConfChange(confChange([cc.remove(1)], transition));
      // Until its removal is applied, node 1 is still the leader and still commits.
      while (c.node(1).raw.status().applied < index) {
        assert.equal(role(c, 1), "leader");
        c.processReady(1);
        c.processReady(2);
        c.processReady(3);
        c.deliverAll();
      }
      c.stabilize();
      assert.notEqual(role(c, 1), "leader", "node 1 stepped down once its removal was applied");
      for (const id of [2, 3]) assert.deepEqual(confOf(c, id), simpleConf([2, 3]));
      const ticks = tickAndSettle(c, 60, () => c.leader() === 2 || c.leader() === 3);
      const lead = c.leader();
      assert.ok(lead === 2 || lead === 3, `a new leader among 2, 3 after ${ticks} ticks`);
      c.node(lead).raw.propose([enc("new-era")]);
      c.stabilize();
      const other = lead === 2 ? 3 : 2;
      assert.deepEqual(appliedData(c, other), ["new-era"]);
      // The removed node never campaigns again.
      const seen = recordDeliveries(c);
      tickAndSettle(c, 50);
      assert.ok(!seen.some((m) => m.from === 1 && (m.type === "vote" || m.type === "preVote")));
      assert.notEqual(role(c, 1), "leader");
    });
  }

  it("in a joint configuration commits need a majority of both halves", () => {
    const c = electedCluster(3);
    c.addNode(4, bootstrap(3));
    c.addNode(5, bootstrap(3));
    c.node(1).raw.proposeConfChange(
      confChange([cc.add(4), cc.add(5), cc.remove(2), cc.remove(3)], "explicit"),
    );
    c.stabilize();
    assert.deepEqual(confOf(c, 1).votersOutgoing, [1, 2, 3]);
    assert.deepEqual(confOf(c, 1).voters, [1, 4, 5]);
    // 1, 4, 5 are a majority of the incoming config but only 1 of the outgoing one.
    c.isolate(2);
    c.isolate(3);
    const { lastIndex } = c.node(1).raw.propose([enc("needs-both")]);
    c.stabilize();
    assert.ok(c.node(1).raw.status().commit < lastIndex, "not committed without the outgoing majority");
    c.heal();
    c.isolate(4);
    c.isolate(5);
    const second = c.node(1).raw.propose([enc("still-needs-both")]).lastIndex;
    c.stabilize();
    // 1, 2, 3 now hold both entries: the first was already on 1, 4, 5, so it commits;
    // the second is on no incoming majority and does not.
    assert.equal(c.node(1).raw.status().commit, lastIndex, "first entry committed by both majorities");
    c.heal();
    tickAndSettle(c, 3);
    assert.equal(c.node(1).raw.status().commit, second);
  });
});

describe("conf change validation", () => {
  it("allows one pending change at a time (conf-change-pending)", () => {
    const c = electedCluster(3);
    c.addNode(4, bootstrap(3));
    c.node(1).raw.proposeConfChange(confChange([cc.learner(4)]));
    assert.throws(
      () => c.node(1).raw.proposeConfChange(confChange([cc.learner(5)])),
      (e: unknown) => e instanceof ProposalDroppedError && e.reason === "conf-change-pending",
    );
    c.stabilize();
    // Applied: the next one is accepted.
    c.node(1).raw.proposeConfChange(confChange([cc.add(4)]));
    c.stabilize();
    assert.deepEqual(confOf(c, 1), simpleConf([1, 2, 3, 4]));
  });

  it("rejects invalid changes with ConfChangeError and leaves the log untouched", () => {
    const c = electedCluster(3);
    const last = c.node(1).raw.status().lastIndex;
    const bad = [
      confChange([cc.remove(1), cc.remove(2), cc.remove(3)]), // no voters left
      confChange([]), // leave, while not joint
      confChange([cc.add(0)]), // invalid id
      confChange([cc.add(-2)]),
    ];
    for (const x of bad) assert.throws(() => c.node(1).raw.proposeConfChange(x), ConfChangeError);
    assert.equal(c.node(1).raw.status().lastIndex, last);
    // ...and a valid one is still accepted afterwards (nothing was left pending).
    c.node(1).raw.proposeConfChange(confChange([cc.learner(4)]));
  });

  it("followers refuse conf changes with NotLeaderError naming the leader", () => {
    const c = electedCluster(3);
    assert.throws(
      () => c.node(2).raw.proposeConfChange(confChange([cc.learner(4)])),
      (e: unknown) => (e as { leaderId?: number }).leaderId === 1,
    );
  });
});

describe("learners", () => {
  it("a learner receives the log, never votes or campaigns, does not count for commit, and is promoted by AddNode", () => {
    const c = electedCluster(3);
    c.addNode(4, bootstrap(3));
    c.node(1).raw.proposeConfChange(confChange([cc.learner(4)]));
    c.node(1).raw.propose([enc("a")]);
    c.stabilize();
    assert.deepEqual(confOf(c, 1), simpleConf([1, 2, 3], [4]));
    assert.deepEqual(appliedData(c, 4), ["a"], "the learner has the log");
    assert.equal(c.node(4).raw.status().commit, c.node(1).raw.status().commit);

    // Never campaigns, however long it goes without a leader.
    c.isolate(4);
    for (let i = 0; i < 100; i++) c.tick(4);
    assert.equal(role(c, 4), "follower");
    assert.equal(c.queue.filter((m) => m.from === 4).length, 0);
    assert.equal(c.node(4).raw.hasReady(), false);
    c.heal();

    // Does not count for commit: with 2 and 3 cut off, leader + learner are not a quorum.
    c.isolate(2);
    c.isolate(3);
    const { lastIndex } = c.node(1).raw.propose([enc("b")]);
    c.stabilize();
    assert.equal(c.node(4).raw.status().lastIndex, lastIndex, "the learner has the entry");
    assert.ok(c.node(1).raw.status().commit < lastIndex, "but it is not committed");
    c.heal();
    tickAndSettle(c, 2);
    assert.ok(c.node(1).raw.status().commit >= lastIndex);

    // Promotion.
    c.node(1).raw.proposeConfChange(confChange([cc.add(4)]));
    c.stabilize();
    for (const id of [1, 2, 3, 4]) assert.deepEqual(confOf(c, id), simpleConf([1, 2, 3, 4]));
    // Now 4 votes: with 1 and 2 down, 3 and 4 alone are not a majority of 4...
    c.isolate(1);
    c.isolate(2);
    tickAndSettle(c, 40);
    assert.notEqual(role(c, 3), "leader");
    assert.notEqual(role(c, 4), "leader");
    // ...but with 2 back, 2, 3, 4 elect a leader, 4 counting as a voter.
    c.heal();
    c.isolate(1);
    tickAndSettle(c, 60, () => [2, 3, 4].some((id) => role(c, id) === "leader"));
    assert.ok([2, 3, 4].some((id) => role(c, id) === "leader"));
  });

  it("an election does not count a learner's vote", () => {
    const c = electedCluster(3);
    c.addNode(4, bootstrap(3));
    c.node(1).raw.proposeConfChange(confChange([cc.learner(4)]));
    c.stabilize();
    // Node 3 can reach only the learner: 3 + learner is not a majority of {1, 2, 3}.
    c.isolate(1);
    c.isolate(2);
    const seen = recordDeliveries(c);
    tickAndSettle(c, 60);
    assert.ok(seen.some((m) => m.from === 3 && m.to === 4 && m.type === "preVote") === false);
    assert.notEqual(role(c, 3), "leader");
    assert.ok(!seen.some((m) => m.type === "vote" && m.from === 3), "not even past pre-vote");
  });
});

describe("proposing a change only tries it out (review finding)", () => {
  it("a leave-joint proposal that is refused leaves every voter a voter", () => {
    const c = new LocalCluster([1, 2, 3], { maxUncommittedEntriesSize: 100 });
    c.addNode(4, {
      voters: [1, 2, 3],
      learners: [4],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    });
    c.elect(1);
    const n1 = c.node(1).raw;
    n1.proposeConfChange(confChange([cc.learner(4)]));
    c.stabilize();
    // Joint: 4 becomes a voter, 3 a learner once the config is left (explicitly).
    n1.proposeConfChange(confChange([cc.add(4), cc.learner(3)], "explicit"));
    c.stabilize();
    assert.deepEqual(n1.confState().votersOutgoing, [1, 2, 3]);
    // With 100 bytes uncommitted, the leave proposal is refused after being tried out.
    n1.propose([new Uint8Array(100)]);
    assert.throws(() => n1.proposeConfChange(confChange([], "explicit")), ProposalDroppedError);
    assert.equal(n1.internals.tracker.progress.get(3)!.isLearner, false, "3 is still an outgoing voter");
    c.stabilize();
    // 2 goes down: 1, 3, 4 are a quorum of both halves, so check-quorum keeps 1 leading.
    c.isolate(2);
    for (let i = 0; i < 40; i++) {
      c.tickAll(1);
      c.stabilize();
      assert.equal(role(c, 1), "leader", `tick ${i + 1}`);
    }
  });
});
