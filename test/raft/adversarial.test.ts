/**
 * Inputs at the edges of the Ready contract and from faulty peers: a snapshot
 * stepped in between ready() and advance(), and acknowledgments of entries the
 * leader does not have. Found by review; each test failed before its fix.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeConfChange } from "../../src/raft/confchange-codec.ts";
import { MemoryRaftLog } from "../../src/raft/memory-log.ts";
import { RawNode } from "../../src/raft/raw-node.ts";
import { ConfChangeType, type Entry, EntryType, type Message, type Ready } from "../../src/raft/types.ts";
import { LocalCluster } from "../../src/testing/local-cluster.ts";

const CS = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

describe("Raft core: adversarial orderings and peers", () => {
  it("a conf change handed out before a snapshot that covers it is not applied again on top of the snapshot", () => {
    const store = new MemoryRaftLog(CS);
    const n = new RawNode({ id: 2, storage: store, electionTick: 10, heartbeatTick: 1, rng: () => 0.5 });
    const persistAndAdvance = (rd: Ready) => {
      if (rd.snapshot) store.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) store.append(rd.entries);
      if (rd.hardState) store.setHardState(rd.hardState);
      n.advance();
    };
    const addLearner4 = encodeConfChange({
      changes: [{ type: ConfChangeType.AddLearner, nodeId: 4 }],
      transition: "auto",
      context: new Uint8Array(0),
    });
    const entry = (
      index: number,
      type: EntryType = EntryType.Normal,
      data: Uint8Array = new Uint8Array(0),
    ): Entry => ({
      term: 1,
      index,
      type,
      data,
    });
    n.step({
      type: "append",
      from: 1,
      to: 2,
      term: 1,
      prevIndex: 0,
      prevTerm: 0,
      entries: [entry(1), entry(2, EntryType.ConfChange, addLearner4)],
      commit: 2,
    } as Message);
    persistAndAdvance(n.ready());
    const rd = n.ready();
    assert.deepEqual(
      rd.committedEntries.map((e) => e.index),
      [1, 2],
    );
    // Meanwhile learner 4 was added and removed again; the leader's snapshot at 5 has no learner.
    n.step({
      type: "snapshot",
      from: 1,
      to: 2,
      term: 1,
      snapshot: { metadata: { index: 5, term: 1, confState: CS }, data: new Uint8Array(0) },
    } as Message);
    persistAndAdvance(rd);
    assert.deepEqual(n.confState().learners, [], "the old AddLearner was applied on top of the snapshot");
    persistAndAdvance(n.ready());
    assert.deepEqual(n.confState(), CS);
    assert.equal(n.status().applied, 5);
  });

  it("an append acknowledgment beyond the leader's log is ignored, and the leader carries on", () => {
    const c = new LocalCluster([1, 2, 3], {});
    c.elect(1);
    c.stabilize();
    const raw = c.node(1).raw;
    const { term, lastIndex } = raw.status();
    raw.step({
      type: "appendResp",
      from: 2,
      to: 1,
      term,
      index: 1e9,
      reject: false,
      hintIndex: 0,
      hintTerm: 0,
    });
    const p2 = raw.status().progress.find((p) => p.id === 2)!;
    assert.ok(p2.match <= lastIndex, `match ${p2.match} past the log (${lastIndex})`);
    // It still replicates and commits.
    raw.propose([new Uint8Array([1])]);
    c.stabilize();
    assert.equal(raw.status().commit, lastIndex + 1);
    assert.equal(c.node(2).raw.status().commit, lastIndex + 1);
  });
});
