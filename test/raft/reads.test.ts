/** ReadIndex (Raft thesis §6.4): batching, forwarding, and leader changes. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { electedCluster, enc, recordDeliveries, role, tickAndSettle } from "./helpers.ts";

describe("ReadIndex", () => {
  it("many reads share heartbeat rounds: a burst costs at most two rounds, not one per read", () => {
    const c = electedCluster(3);
    const seen = recordDeliveries(c);
    for (let i = 0; i < 100; i++) c.node(1).raw.readIndex(`r${i}`);
    c.stabilize();
    const heartbeats = seen.filter((m) => m.type === "heartbeat").length;
    // The first read starts a round; the other 99 arrived after it was sent and share the next one.
    assert.ok(heartbeats <= 4, `${heartbeats} heartbeats for 100 reads`);
    const commit = c.node(1).raw.status().commit;
    assert.equal(c.node(1).readStates.length, 100);
    assert.deepEqual(
      c.node(1).readStates.map((r) => r.ctx),
      Array.from({ length: 100 }, (_, i) => `r${i}`),
    );
    for (const r of c.node(1).readStates) assert.equal(r.index, commit);
  });

  it("a read is confirmed only by a round sent after it arrived", () => {
    const c = electedCluster(3);
    c.node(1).raw.readIndex("a");
    c.processReady(1);
    // Node 1's round for "a" is in flight; no quorum has answered it yet.
    assert.equal(c.node(1).readStates.length, 0);
    c.stabilize();
    assert.equal(c.node(1).readStates.length, 1);
  });

  it("a follower forwards a read and gets the leader's commit index", () => {
    const c = electedCluster(3);
    c.node(1).raw.propose([enc("x")]);
    c.stabilize();
    const seen = recordDeliveries(c);
    c.node(2).raw.readIndex("f1");
    c.stabilize();
    assert.ok(seen.some((m) => m.type === "readIndex" && m.from === 2 && m.to === 1));
    assert.deepEqual(c.node(2).readStates, [{ ctx: "f1", index: c.node(1).raw.status().commit }]);
  });

  it("reads pending at a deposed leader are reported dropped, never lost", () => {
    const c = electedCluster(3);
    c.partition([1], [2, 3]);
    c.node(1).raw.readIndex("own"); // waits for a round no quorum will answer
    c.stabilize();
    // A read forwarded by node 2 that reached node 1 just before the partition.
    c.node(1).raw.step({ type: "readIndex", from: 2, to: 1, term: c.node(1).raw.status().term, ctx: "fwd" });
    c.stabilize();
    assert.equal(c.node(1).readStates.length, 0);
    tickAndSettle(c, 40, () => role(c, 2) === "leader" || role(c, 3) === "leader");
    c.heal();
    const seen = recordDeliveries(c);
    tickAndSettle(c, 3);
    assert.ok(
      seen.some(
        (m) => m.type === "readIndexResp" && m.from === 1 && m.to === 2 && m.ctx === "fwd" && m.reject,
      ),
      "the forwarded read is answered with a rejection",
    );
    assert.notEqual(role(c, 1), "leader");
    assert.deepEqual(c.node(1).droppedReads, [{ ctx: "own", reason: "stepped-down" }]);
    assert.deepEqual(c.node(1).readStates, []);
  });

  it("a follower's forwarded read is reported dropped when its leader changes", () => {
    const c = electedCluster(3);
    c.cutLink(1, 2); // the leader's answer will not arrive
    c.node(2).raw.readIndex("fwd");
    c.stabilize();
    c.heal();
    c.isolate(1);
    tickAndSettle(c, 40, () => role(c, 2) === "leader" || role(c, 3) === "leader");
    c.stabilize();
    assert.equal(c.node(2).readStates.length, 0);
    assert.equal(c.node(2).droppedReads.length, 1);
    assert.equal(c.node(2).droppedReads[0]!.ctx, "fwd");
  });

  it("a forwarded read whose request was lost can be cancelled, freeing its slot", () => {
    const c = electedCluster(3, { maxPendingReads: 2 });
    c.cutLink(1, 2); // node 2's readIndex requests never reach the leader
    c.node(2).raw.readIndex("lost1");
    c.node(2).raw.readIndex("lost2");
    c.stabilize();
    c.heal();
    // Both slots are held though no answer will ever come: the leader did not change.
    assert.throws(() => c.node(2).raw.readIndex("x"), /forwarded read queue is full/);
    // The runtime cancels reads it stopped waiting for (their timeout).
    c.node(2).raw.cancelRead("lost1");
    c.node(2).raw.cancelRead("lost2");
    c.node(2).raw.readIndex("again");
    c.stabilize();
    assert.deepEqual(c.node(2).readStates, [{ ctx: "again", index: c.node(1).raw.status().commit }]);
    // A late answer to a cancelled read is ignored.
    c.node(2).raw.step({
      type: "readIndexResp",
      from: 1,
      to: 2,
      term: c.node(2).raw.status().term,
      ctx: "lost1",
      index: 1,
      reject: false,
    });
    assert.equal(c.node(2).readStates.length, 1);
  });

  it("a leader no quorum answers keeps only the heartbeat rounds a lease could still use", () => {
    for (const leaseTicks of [0, 3]) {
      const c = electedCluster(3, { checkQuorum: leaseTicks > 0, preVote: false, leaseTicks });
      c.isolate(1);
      // Without check-quorum it stays leader for good; with it, only until the timeout.
      const ticks = leaseTicks > 0 ? 8 : 5000;
      for (let i = 0; i < ticks; i++) {
        c.tick(1);
        c.processReady(1);
      }
      const rounds = c.node(1).raw.internals.roundSentTick.size;
      assert.ok(
        rounds <= leaseTicks + 1,
        `leaseTicks ${leaseTicks}: ${rounds} rounds kept after ${ticks} ticks`,
      );
    }
  });

  it("a new leader serves reads only after committing an entry of its term", () => {
    const c = electedCluster(3, { preVote: false, checkQuorum: false });
    c.node(1).raw.propose([enc("x")]);
    c.stabilize();
    // Node 2 campaigns; step it to leadership without letting its empty entry commit.
    c.node(2).raw.campaign();
    c.processReady(2);
    c.deliverAll();
    c.processReady(1);
    c.processReady(3);
    c.deliverAll();
    assert.equal(role(c, 2), "leader");
    const t = c.node(2).raw.status().term;
    c.node(2).raw.readIndex("early");
    // Let heartbeats (but not appends) through: a confirmed round alone is not enough.
    for (let i = 0; i < 3; i++) {
      c.tick(2);
      c.processReady(2);
      c.queue = c.queue.filter((m) => m.type !== "append");
      c.deliverAll();
      c.processReady(1);
      c.processReady(3);
      c.deliverAll();
    }
    c.processReady(2);
    assert.deepEqual(c.node(2).readStates, [], "no read before the new leader commits in its term");
    c.stabilize();
    const s = c.node(2).raw.status();
    const termOfCommit = c.node(2).raw.internals.log.term(s.commit);
    assert.equal(termOfCommit, t);
    assert.equal(c.node(2).readStates.length, 1);
    assert.ok(c.node(2).readStates[0]!.index >= s.commit, "the read index includes the new term's entry");
  });
});
