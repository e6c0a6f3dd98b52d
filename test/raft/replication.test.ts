/**
 * Log replication: repairing divergent followers with (term, index) hints,
 * snapshots for followers behind the compaction point, flow control, the
 * uncommitted-size limit, leader transfer, asynchronous persistence
 * (Raft thesis §10.2.1), restarts and the Ready contract.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvariantError, NotLeaderError, ProposalDroppedError } from "../../src/errors.ts";
import { MemoryRaftLog } from "../../src/raft/memory-log.ts";
import { RawNode } from "../../src/raft/raw-node.ts";
import type { AppendMessage, Entry, Message } from "../../src/raft/types.ts";
import { LocalCluster } from "../../src/testing/local-cluster.ts";
import { messageSize } from "../../src/transport/codec.ts";
import {
  appliedData,
  bootstrap,
  electedCluster,
  enc,
  ids,
  recordDeliveries,
  role,
  tickAndSettle,
} from "./helpers.ts";

function entriesWithTerms(terms: readonly number[]): Entry[] {
  return terms.map((t, i) => ({ term: t, index: i + 1, type: 0, data: enc(`${i + 1}@${t}`) }));
}

describe("divergent follower logs (Raft Figure 7)", () => {
  it("the leader repairs every follower with a few round trips, not one per entry", () => {
    // Figure 7 of the Raft paper: the leader's log and six followers' logs.
    const logs: Record<number, number[]> = {
      1: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], // leader
      2: [1, 1, 1, 4, 4, 5, 5, 6, 6], // (a) missing one
      3: [1, 1, 1, 4], // (b) missing many
      4: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c) one extra uncommitted
      5: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d) two extra from a later term
      6: [1, 1, 1, 4, 4, 4, 4], // (e) a conflicting term-4 suffix
      7: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f) long suffixes of terms 2 and 3
    };
    const c = new LocalCluster(ids(7), { preVote: false, checkQuorum: false });
    for (const [id, terms] of Object.entries(logs)) {
      const n = c.node(Number(id));
      n.storage.append(entriesWithTerms(terms));
      n.storage.setHardState({ term: 7, vote: 0, commit: 3 });
      c.restart(Number(id));
    }
    const seen = recordDeliveries(c);
    c.elect(1); // term 8: 2, 3, 6, 7 grant; 4 and 5 have longer or newer logs
    assert.equal(role(c, 1), "leader");
    c.node(1).raw.propose([enc("term8")]);
    c.stabilize();
    const want = c.node(1).raw.internals.log.slice(1, 13, Number.MAX_SAFE_INTEGER);
    assert.equal(want.length, 12);
    for (let id = 2; id <= 7; id++) {
      const got = c.node(id).raw.internals.log.slice(1, 13, Number.MAX_SAFE_INTEGER);
      assert.deepEqual(
        got.map((e) => `${e.index}/${e.term}`),
        want.map((e) => `${e.index}/${e.term}`),
        `node ${id} repaired`,
      );
      const rejects = seen.filter((m) => m.type === "appendResp" && m.from === id && m.reject).length;
      // Follower (f) has 8 conflicting entries; one hint jumps over all of them.
      assert.ok(rejects <= 2, `node ${id}: ${rejects} rejected appends`);
    }
    const f = seen.filter((m) => m.type === "appendResp" && m.from === 7 && m.reject);
    assert.equal(f.length, 1, "follower (f) needs exactly one rejection");
    assert.deepEqual(appliedData(c, 7).slice(-1), ["term8"]);
  });
});

describe("snapshots", () => {
  function laggingCluster() {
    const c = electedCluster(3);
    c.isolate(3);
    for (let i = 0; i < 10; i++) c.node(1).raw.propose([enc(`e${i}`)]);
    c.stabilize();
    const leader = c.node(1);
    const applied = leader.raw.status().applied;
    assert.equal(applied, 11);
    leader.storage.createSnapshot(applied, leader.raw.confState(), enc("state@11"));
    leader.storage.compact(applied);
    assert.equal(leader.storage.firstIndex(), 12);
    return c;
  }

  it("a follower behind the compaction point gets a snapshot, installs it, then catches up by appends", () => {
    const c = laggingCluster();
    c.heal();
    c.node(1).raw.propose([enc("after-snap")]);
    const seen = recordDeliveries(c);
    c.stabilize();
    tickAndSettle(c, 2);
    const snaps = seen.filter((m) => m.type === "snapshot" && m.to === 3);
    assert.equal(snaps.length, 1, "exactly one snapshot sent");
    assert.equal(snaps[0]!.type === "snapshot" && snaps[0]!.snapshot.metadata.index, 11);
    const n3 = c.node(3);
    assert.equal(n3.storage.firstIndex(), 12, "node 3 installed the snapshot");
    assert.deepEqual(
      n3.applied.map((e) => e.index),
      [12],
      "then applied only what follows it",
    );
    assert.deepEqual(appliedData(c, 3), ["after-snap"]);
    const appendsAfter = seen.filter(
      (m): m is AppendMessage => m.type === "append" && m.to === 3 && m.entries.length > 0,
    );
    assert.ok(
      appendsAfter.some((m) => m.prevIndex >= 11),
      "caught up by appends after the snapshot",
    );
    const pr = c
      .node(1)
      .raw.status()
      .progress.find((p) => p.id === 3)!;
    assert.equal(pr.state, "replicate");
    assert.equal(pr.match, 12);
    // reportSnapshot after the fact is harmless.
    c.node(1).raw.reportSnapshot(3, true);
    assert.equal(
      c
        .node(1)
        .raw.status()
        .progress.find((p) => p.id === 3)!.state,
      "replicate",
    );
  });

  it("a failed snapshot (reportSnapshot false) is retried after the follower answers again", () => {
    const c = laggingCluster();
    c.heal();
    c.node(1).raw.propose([enc("x")]);
    // The probe to node 3 is paused until a heartbeat answer; step until the snapshot is sent.
    c.tick(1);
    for (let i = 0; i < 10 && !c.queue.some((m) => m.type === "snapshot"); i++) {
      for (const id of [1, 2, 3]) c.processReady(id);
      if (!c.queue.some((m) => m.type === "snapshot")) c.deliverAll();
    }
    // The snapshot is lost in transit.
    const snap = c.queue.filter((m) => m.type === "snapshot");
    assert.equal(snap.length, 1);
    c.queue = c.queue.filter((m) => m.type !== "snapshot");
    assert.equal(
      c
        .node(1)
        .raw.status()
        .progress.find((p) => p.id === 3)!.state,
      "snapshot",
    );
    c.stabilize();
    assert.equal(c.node(3).storage.firstIndex(), 1, "nothing reached node 3");
    c.node(1).raw.reportSnapshot(3, false);
    const pr = c
      .node(1)
      .raw.status()
      .progress.find((p) => p.id === 3)!;
    assert.equal(pr.state, "probe");
    assert.equal(pr.pendingSnapshot, 0);
    const seen = recordDeliveries(c);
    tickAndSettle(c, 3);
    assert.ok(
      seen.some((m) => m.type === "snapshot" && m.to === 3),
      "resent",
    );
    assert.equal(c.node(3).raw.status().commit, c.node(1).raw.status().commit);
  });
});

describe("flow control", () => {
  it("maxInflightMsgs caps appends in flight to an unresponsive follower", () => {
    const c = electedCluster(3, { maxInflightMsgs: 3 });
    c.cutLink(2, 1); // node 2 receives but its answers are lost
    const seen = recordDeliveries(c);
    for (let i = 0; i < 10; i++) {
      c.node(1).raw.propose([enc(`p${i}`)]);
      c.stabilize();
    }
    const to2 = seen.filter(
      (m): m is AppendMessage => m.type === "append" && m.to === 2 && m.entries.length > 0,
    );
    assert.equal(to2.length, 3, "three appends, then the window is full");
    const to3 = seen.filter(
      (m): m is AppendMessage => m.type === "append" && m.to === 3 && m.entries.length > 0,
    );
    assert.equal(to3.length, 10, "the healthy follower is not held back");
    c.heal();
    tickAndSettle(c, 3);
    assert.equal(appliedData(c, 2).length, 10);
  });

  it("maxSizePerMsg splits a batch, always sending at least one entry", () => {
    const c = electedCluster(2, { maxSizePerMsg: 25 });
    const seen = recordDeliveries(c);
    c.node(1).raw.propose(Array.from({ length: 10 }, () => enc("0123456789")));
    c.node(1).raw.propose([enc("x".repeat(100))]);
    c.stabilize();
    const appends = seen.filter((m): m is AppendMessage => m.type === "append" && m.entries.length > 0);
    for (const m of appends) {
      const bytes = m.entries.reduce((s, e) => s + e.data.length, 0);
      assert.ok(m.entries.length === 1 || bytes <= 25, `append of ${bytes} bytes`);
    }
    assert.ok(appends.length >= 6, `split into ${appends.length} appends`);
    assert.equal(appliedData(c, 2).length, 11);
  });

  it("maxSizePerMsg bounds the encoded append, empty entries included (they cost their index, term and type)", () => {
    const limit = 4096;
    const c = electedCluster(3, { maxSizePerMsg: limit });
    c.isolate(3);
    // 5,000 empty entries pile up while node 3 is away (committed by 1 and 2).
    for (let i = 0; i < 50; i++) {
      c.node(1).raw.propose(Array.from({ length: 100 }, () => new Uint8Array(0)));
      c.stabilize();
    }
    const seen = recordDeliveries(c);
    c.heal();
    tickAndSettle(c, 5);
    const appends = seen.filter(
      (m): m is AppendMessage => m.type === "append" && m.to === 3 && m.entries.length > 0,
    );
    const largest = Math.max(...appends.map((m) => messageSize(m)));
    // Within the limit, plus the message's own header (an entry alone may exceed it).
    assert.ok(largest <= limit + 64, `an append of ${largest} encoded bytes, limit ${limit}`);
    assert.equal(c.node(3).raw.status().commit, c.node(1).raw.status().commit);
  });
});

describe("proposal limits and errors", () => {
  it("rejects proposals beyond maxUncommittedEntriesSize, and accepts again once entries commit", () => {
    const c = electedCluster(3, { maxUncommittedEntriesSize: 10 });
    c.isolate(1);
    c.node(1).raw.propose([enc("12345")]);
    c.node(1).raw.propose([enc("67890")]); // exactly at the limit
    assert.throws(
      () => c.node(1).raw.propose([enc("x")]),
      (e: unknown) => e instanceof ProposalDroppedError && e.reason === "uncommitted-size-exceeded",
    );
    c.stabilize();
    c.heal();
    tickAndSettle(c, 2);
    assert.equal(appliedData(c, 1).length, 2);
    c.node(1).raw.propose([enc("x")]);
    c.stabilize();
    assert.deepEqual(appliedData(c, 2), ["12345", "67890", "x"]);
  });

  it("a follower refuses proposals with NotLeaderError carrying the leader id", () => {
    const c = electedCluster(3);
    assert.throws(
      () => c.node(2).raw.propose([enc("x")]),
      (e: unknown) => e instanceof NotLeaderError && e.leaderId === 1,
    );
    const fresh = new LocalCluster(ids(3));
    assert.throws(
      () => fresh.node(2).raw.propose([enc("x")]),
      (e: unknown) => e instanceof NotLeaderError && e.leaderId === 0,
    );
  });
});

describe("leader transfer", () => {
  it("catches a lagging target up first, then sends TimeoutNow; proposals are refused meanwhile", () => {
    const c = electedCluster(3);
    c.isolate(3);
    for (let i = 0; i < 5; i++) c.node(1).raw.propose([enc(`e${i}`)]);
    c.stabilize();
    c.heal();
    const seen = recordDeliveries(c);
    c.node(1).raw.transferLeader(3);
    assert.equal(c.node(1).raw.status().leadTransferee, 3);
    assert.throws(
      () => c.node(1).raw.propose([enc("no")]),
      (e: unknown) => e instanceof ProposalDroppedError && e.reason === "transferring-leadership",
    );
    c.stabilize();
    const tn = seen.findIndex((m) => m.type === "timeoutNow");
    assert.ok(tn >= 0, "TimeoutNow sent");
    const lastAppendTo3 = seen.findLastIndex(
      (m) => m.type === "append" && m.to === 3 && m.entries.length > 0,
    );
    const caughtUp = seen.findIndex((m) => m.type === "appendResp" && m.from === 3 && m.index === 6);
    assert.ok(lastAppendTo3 < tn && caughtUp >= 0 && caughtUp < tn, "the log first, then TimeoutNow");
    assert.equal(c.leader(), 3);
    assert.equal(appliedData(c, 3).length, 5);
    c.node(3).raw.propose([enc("yes")]);
    c.stabilize();
    assert.deepEqual(appliedData(c, 1).slice(-1), ["yes"]);
  });

  it("is abandoned after an election timeout when the target is unreachable", () => {
    const c = electedCluster(3, { electionTick: 10 });
    c.isolate(3);
    c.node(1).raw.propose([enc("e")]);
    c.stabilize();
    c.node(1).raw.transferLeader(3);
    for (let i = 0; i < 9; i++) c.tick(1);
    assert.equal(c.node(1).raw.status().leadTransferee, 3, "still trying before the timeout");
    c.tick(1);
    assert.equal(c.node(1).raw.status().leadTransferee, 0, "abandoned after electionTick ticks");
    c.node(1).raw.propose([enc("accepted-again")]);
    c.stabilize();
    assert.equal(c.leader(), 1);
    assert.deepEqual(appliedData(c, 2), ["e", "accepted-again"]);
  });

  it("a follower forwards a transfer request to the leader", () => {
    const c = electedCluster(3);
    c.node(2).raw.transferLeader(2);
    c.stabilize();
    assert.equal(c.leader(), 2);
  });
});

describe("asynchronous persistence (Raft thesis §10.2.1)", () => {
  it("the leader replicates before its own write, and counts itself only after advance()", () => {
    const c = electedCluster(3);
    const leader = c.node(1);
    const { lastIndex } = leader.raw.propose([enc("x")]);
    const rd = leader.raw.ready();
    assert.deepEqual(
      rd.entries.map((e) => e.index),
      [lastIndex],
    );
    const now = rd.messagesNow.filter((m) => m.type === "append");
    assert.equal(now.length, 2, "appends may go out before the leader's own write");
    assert.equal(rd.messages.filter((m) => m.type === "append").length, 0, "no append waits for the write");
    // Send them, but keep the leader's own write pending (no persist, no advance).
    c.queue.push(...rd.messagesNow);
    c.deliverAll();
    c.processReady(2);
    c.processReady(3);
    // Only node 2 answers first: 2 of 3 would be a quorum only with the leader's own copy.
    c.deliverAll((m) => m.from === 2);
    assert.equal(
      leader.raw.status().commit,
      lastIndex - 1,
      "not durable on the leader: 1 of 3 is not a quorum",
    );
    c.deliverAll((m) => m.from === 3);
    assert.equal(leader.raw.status().commit, lastIndex, "two followers made it durable on a majority");
    assert.equal(leader.storage.lastIndex(), lastIndex - 1, "while the leader's own write is still pending");
    // Now persist and advance; the committed entry is handed out exactly once.
    leader.storage.append(rd.entries);
    if (rd.hardState) leader.storage.setHardState(rd.hardState);
    c.queue.push(...rd.messages);
    leader.raw.advance();
    const rd2 = leader.raw.ready();
    assert.deepEqual(
      rd2.committedEntries.map((e) => e.index),
      [lastIndex],
    );
    leader.raw.advance();
  });
});

describe("applying before the local write is durable (applyUnpersisted)", () => {
  /** Leader 1 (async writes) proposes `x`; followers append and answer; the leader's own write stays in flight. */
  function committedByFollowers(applyUnpersisted: boolean) {
    const c = electedCluster(3, { asyncStorageWrites: true, applyUnpersisted });
    c.stabilize();
    const leader = c.node(1);
    const { lastIndex } = leader.raw.propose([enc("x")]);
    c.processReady(1); // the write is handed to "storage" (inflight), appends leave
    c.deliverAll();
    for (const id of [2, 3]) {
      c.processReady(id);
      while (c.persistOne(id)) {}
    }
    c.deliverAll(); // both followers' acks: a quorum without the leader
    assert.equal(leader.raw.status().commit, lastIndex);
    assert.equal(leader.storage.lastIndex(), lastIndex - 1, "the leader's own write is still in flight");
    return { c, leader, lastIndex };
  }

  it("on: the leader hands the entry out to apply while its own write is in flight", () => {
    const { c, leader, lastIndex } = committedByFollowers(true);
    assert.ok(leader.raw.hasReady());
    c.processReady(1);
    assert.deepEqual(
      leader.applied.filter((e) => e.index === lastIndex).map((e) => e.index),
      [lastIndex],
    );
    assert.equal(leader.storage.lastIndex(), lastIndex - 1, "applied, and still not durable locally");
    // Once durable, it is not handed out a second time.
    while (c.persistOne(1)) {}
    c.stabilize();
    assert.equal(leader.applied.filter((e) => e.index === lastIndex).length, 1);
  });

  it("off: the entry waits for the leader's own write", () => {
    const { c, leader, lastIndex } = committedByFollowers(false);
    if (leader.raw.hasReady()) {
      const rd = leader.raw.ready();
      assert.deepEqual(rd.committedEntries, []);
      leader.raw.advance();
    }
    while (c.persistOne(1)) {}
    c.stabilize();
    assert.deepEqual(
      leader.applied.filter((e) => e.index === lastIndex).map((e) => e.index),
      [lastIndex],
    );
  });

  it("a crash before the write: the application is ahead of the log, and nothing is applied twice", () => {
    const { c, leader, lastIndex } = committedByFollowers(true);
    c.processReady(1);
    assert.equal(leader.applied.at(-1)?.index, lastIndex, "applied before durable");
    c.restart(1); // the in-flight write is lost; the application's applied index is passed back
    assert.equal(leader.storage.lastIndex(), lastIndex - 1);
    const before = leader.applied.length;
    tickAndSettle(c, 30, () => c.node(1).storage.lastIndex() >= lastIndex && c.leader() !== 0);
    c.node(c.leader()).raw.propose([enc("y")]);
    c.stabilize();
    const again = leader.applied.slice(before).map((e) => e.index);
    assert.ok(!again.includes(lastIndex), `index ${lastIndex} handed out again: ${again}`);
    assert.equal(leader.storage.lastIndex() >= lastIndex, true, "the entry came back from the others");
    assert.equal(new TextDecoder().decode(leader.applied.at(-1)!.data), "y");
  });
});

describe("restart from durable state", () => {
  it("preserves term, vote and log", () => {
    const c = electedCluster(3);
    c.node(1).raw.propose([enc("a"), enc("b")]);
    c.stabilize();
    const before = c.node(2).raw.status();
    c.restart(2);
    const after = c.node(2).raw.status();
    assert.equal(after.term, before.term);
    assert.equal(after.vote, before.vote);
    assert.equal(after.lastIndex, before.lastIndex);
    assert.equal(after.commit, before.commit);
    assert.equal(after.applied, before.applied, "nothing is applied twice after a restart");
    assert.equal(after.role, "follower");
    tickAndSettle(c, 3);
    c.node(1).raw.propose([enc("c")]);
    c.stabilize();
    assert.deepEqual(appliedData(c, 2), ["a", "b", "c"]);
  });

  it("a snapshot that became durable before the hard state written after it: the commit index starts at the snapshot", () => {
    // A crash between installing a snapshot (durable) and writing the hard state that
    // carries its commit index (the commit index is written without fsync).
    const storage = new MemoryRaftLog(bootstrap(3));
    storage.applySnapshot({
      metadata: {
        index: 10,
        term: 2,
        confState: {
          voters: [1, 2, 3],
          learners: [],
          votersOutgoing: [],
          learnersNext: [],
          autoLeave: false,
        },
      },
      data: new Uint8Array(0),
    });
    storage.setHardState({ term: 2, vote: 1, commit: 3 });
    const n = new RawNode({ id: 2, storage, rng: () => 0 });
    assert.equal(n.status().commit, 10);
    assert.equal(n.status().term, 2);
    assert.equal(n.status().vote, 1);
    // Beyond the log is still refused: that hard state belongs to another log.
    const bad = new MemoryRaftLog(bootstrap(3));
    bad.setHardState({ term: 1, vote: 0, commit: 99 });
    assert.throws(() => new RawNode({ id: 2, storage: bad, rng: () => 0 }), InvariantError);
  });

  it("a node never votes twice in one term, even across a restart", () => {
    const c = new LocalCluster(ids(3), { preVote: false, checkQuorum: false });
    const vote = (from: number): Message => ({
      type: "vote",
      from,
      to: 2,
      term: 5,
      lastIndex: 0,
      lastTerm: 0,
      transfer: false,
    });
    c.node(2).raw.step(vote(1));
    c.processReady(2);
    const granted = c.queue.filter((m) => m.type === "voteResp" && m.to === 1);
    assert.equal(granted.length, 1);
    assert.equal(granted[0]!.type === "voteResp" && granted[0]!.reject, false);
    c.restart(2);
    assert.equal(c.node(2).raw.status().vote, 1);
    c.node(2).raw.step(vote(3));
    c.processReady(2);
    const answer = c.queue.filter((m) => m.type === "voteResp" && m.to === 3);
    assert.equal(answer.length, 1);
    assert.equal(
      answer[0]!.type === "voteResp" && answer[0]!.reject,
      true,
      "the second vote in term 5 is refused",
    );
  });
});

describe("the Ready contract", () => {
  it("ready() twice without advance() throws; advance() without ready() throws", () => {
    const n = new RawNode({ id: 1, storage: new MemoryRaftLog(bootstrap(1)), rng: () => 0 });
    n.campaign();
    assert.ok(n.hasReady());
    n.ready();
    assert.equal(n.hasReady(), false, "nothing more until advance()");
    assert.throws(() => n.ready(), InvariantError);
    n.advance();
    assert.throws(() => n.advance(), InvariantError);
  });

  it("hands out committed entries exactly once, in order, across many small Readys", () => {
    const c = electedCluster(3, { maxCommittedSizePerReady: 8 });
    for (let i = 0; i < 30; i++) c.node(1).raw.propose([enc(`v${i}`)]);
    c.stabilize();
    for (const id of [1, 2, 3]) {
      const idx = c.node(id).applied.map((e) => e.index);
      assert.deepEqual(
        idx,
        Array.from({ length: idx.length }, (_, i) => i + 1),
        `node ${id}`,
      );
      assert.equal(idx.length, 31);
    }
  });

  it("messages that depend on the hard state are never in messagesNow", () => {
    const c = new LocalCluster(ids(3), { preVote: false });
    c.node(1).raw.campaign();
    const rd = c.node(1).raw.ready();
    assert.equal(rd.messagesNow.length, 0, "vote requests wait for the vote to be durable");
    assert.ok(rd.messages.length > 0);
    assert.equal(rd.mustSync, true);
    c.node(1).raw.advance();
  });
});

describe("deferred commit broadcast (deferCommitBroadcast)", () => {
  /** Proposes `data` on the leader (1) and runs one replication round until its response is stepped. */
  function replicate(c: LocalCluster, data: string): void {
    c.node(1).raw.propose([enc(data)]);
    c.processReady(1);
    c.deliverAll(); // appends to 2 and 3
    c.processReady(2);
    c.processReady(3);
    c.deliverAll(); // their responses: the leader's commit index moves
  }
  /** A Ready's appends, in send order. */
  const appends = (rd: { messagesNow: readonly Message[]; messages: readonly Message[] }) =>
    [...rd.messagesNow, ...rd.messages].filter((m): m is AppendMessage => m.type === "append");
  /** (to, entry count, commit) of each append. */
  const summary = (sent: readonly AppendMessage[]) => sent.map((m) => [m.to, m.entries.length, m.commit]);

  it("the Ready that applies an entry holds the commit back; the next one carries it with new entries", () => {
    const c = electedCluster(3, { deferCommitBroadcast: true });
    c.stabilize();
    const lead = c.node(1).raw;
    replicate(c, "a");
    const rd = lead.ready();
    assert.deepEqual(
      rd.committedEntries.map((e) => new TextDecoder().decode(e.data)),
      ["a"],
    );
    const aIndex = rd.committedEntries[0]!.index;
    assert.deepEqual(appends(rd), [], "no commit-only appends yet");
    lead.advance();
    assert.ok(lead.hasReady(), "the held-back broadcast keeps a Ready due");
    // Applying "a" brought a new proposal: its appends tell the followers of the commit too.
    lead.propose([enc("b")]);
    const rd2 = lead.ready();
    const sent = appends(rd2);
    assert.deepEqual(summary(sent), [
      [2, 1, aIndex],
      [3, 1, aIndex],
    ]);
    lead.advance();
  });

  it("with nothing new to send, the next Ready sends the commit alone: never held back twice", () => {
    const c = electedCluster(3, { deferCommitBroadcast: true });
    c.stabilize();
    const lead = c.node(1).raw;
    replicate(c, "a");
    const rd = lead.ready();
    const aIndex = rd.committedEntries[0]!.index;
    assert.deepEqual(appends(rd), []);
    lead.advance();
    const rd2 = lead.ready();
    const sent = appends(rd2);
    assert.deepEqual(summary(sent), [
      [2, 0, aIndex],
      [3, 0, aIndex],
    ]);
    lead.advance();
    for (const m of sent) c.node(m.to).raw.step(m);
    c.stabilize();
    for (const id of [2, 3]) assert.equal(c.node(id).raw.status().commit, aIndex);
    assert.deepEqual(appliedData(c, 2).slice(-1), ["a"]);
  });

  it("off (the core's default): the Ready that applies an entry also tells the followers", () => {
    const c = electedCluster(3);
    c.stabilize();
    const lead = c.node(1).raw;
    replicate(c, "a");
    const rd = lead.ready();
    const aIndex = rd.committedEntries[0]!.index;
    assert.deepEqual(summary(appends(rd)), [
      [2, 0, aIndex],
      [3, 0, aIndex],
    ]);
    lead.advance();
  });
});
