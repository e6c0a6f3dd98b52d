/**
 * Randomized cluster runs: seeded ticks, partitions, restarts and proposals on
 * a LocalCluster, checking Raft's safety properties after every step.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NotLeaderError, ProposalDroppedError } from "../../src/errors.ts";
import type { Entry, NodeId } from "../../src/raft/types.ts";
import { LocalCluster } from "../../src/testing/local-cluster.ts";
import { Prng } from "../../src/testing/prng.ts";
import { enc, ids } from "./helpers.ts";

function runSeed(
  seed: number,
  steps: number,
  n: number,
  asyncStorageWrites = false,
  deferCommitBroadcast = false,
  applyUnpersisted = false,
): void {
  const rng = new Prng(seed);
  const c = new LocalCluster(
    ids(n),
    {
      electionTick: 6,
      preVote: rng.chance(0.7),
      checkQuorum: rng.chance(0.7),
      asyncStorageWrites,
      deferCommitBroadcast,
      applyUnpersisted,
    },
    seed,
  );
  const leaderOfTerm = new Map<number, NodeId>();
  const lastCommit = new Map<NodeId, number>();
  /** The entry applied at each index by anyone: every node must apply the same one. */
  const appliedAt = new Map<number, string>();
  const appliedCount = new Map<NodeId, number>();
  let proposals = 0;

  const key = (e: Entry) => `${e.term}:${e.type}:${new TextDecoder().decode(e.data)}`;
  const check = (step: number) => {
    for (const node of c.nodes.values()) {
      const s = node.raw.status();
      if (s.role === "leader") {
        const prev = leaderOfTerm.get(s.term);
        assert.ok(
          prev === undefined || prev === s.id,
          `seed ${seed} step ${step}: two leaders in term ${s.term}`,
        );
        leaderOfTerm.set(s.term, s.id);
      }
      // Commit never moves backwards, even across restarts (it is persisted in the hard state).
      const lc = lastCommit.get(s.id) ?? 0;
      assert.ok(
        s.commit >= lc || s.commit >= node.storage.hardState.commit,
        `seed ${seed}: commit went back`,
      );
      lastCommit.set(s.id, Math.max(lc, s.commit));
      // Applied entries are identical across nodes at every index, and handed out in order.
      const from = appliedCount.get(s.id) ?? 0;
      for (let i = from; i < node.applied.length; i++) {
        const e = node.applied[i]!;
        if (i > 0)
          assert.equal(e.index, node.applied[i - 1]!.index + 1, `seed ${seed}: applied out of order`);
        const k = key(e);
        const other = appliedAt.get(e.index);
        assert.ok(
          other === undefined || other === k,
          `seed ${seed} step ${step}: index ${e.index} applied as ${k} and ${other}`,
        );
        appliedAt.set(e.index, k);
      }
      appliedCount.set(s.id, node.applied.length);
    }
    // Log matching on committed prefixes (costly: every 25 steps and at the end).
    if (step % 25 !== 0) return;
    const nodes = [...c.nodes.values()];
    for (const a of nodes) {
      const la = a.raw.internals.log;
      for (let i = la.firstIndex(); i <= a.raw.status().commit; i++) {
        for (const b of nodes) {
          const lb = b.raw.internals.log;
          if (i < lb.firstIndex() || i > lb.lastIndex() || i > b.raw.status().commit) continue;
          assert.equal(
            la.term(i),
            lb.term(i),
            `seed ${seed}: committed index ${i} differs between ${a.id} and ${b.id}`,
          );
        }
      }
    }
  };

  for (let step = 0; step < steps; step++) {
    const r = rng.next();
    if (r < 0.5) c.tickAll(1);
    else if (r < 0.7) {
      const lead = c.leader();
      const target = lead && rng.chance(0.8) ? lead : rng.pick(ids(n));
      try {
        c.node(target).raw.propose([enc(`p${proposals++}`)]);
      } catch (e) {
        if (!(e instanceof NotLeaderError || e instanceof ProposalDroppedError)) throw e;
      }
    } else if (r < 0.76) {
      c.heal();
      const cutSize = rng.int(n);
      const shuffled = ids(n).sort(() => rng.next() - 0.5);
      c.partition(shuffled.slice(0, cutSize), shuffled.slice(cutSize));
    } else if (r < 0.8) c.heal();
    else if (r < 0.82) {
      const id = rng.pick(ids(n));
      // A restart loses nothing durable; applied entries are re-handed out only after the applied index.
      c.restart(id);
    }
    // Deliver part of the traffic: the rest waits (reordering between rounds).
    for (const id of ids(n)) if (rng.chance(0.8)) c.processReady(id);
    // Asynchronous writes complete late and in bursts: several Readies stay in flight.
    if (asyncStorageWrites) for (const id of ids(n)) while (rng.chance(0.5) && c.persistOne(id)) {}
    c.deliverAll(() => rng.chance(0.85));
    check(step);
  }
  c.heal();
  for (let i = 0; i < 60; i++) {
    c.tickAll(1);
    c.stabilize();
  }
  check(steps);
  const lead = c.leader();
  assert.ok(lead !== 0, `seed ${seed}: no leader after healing`);
  // Everyone converges on the same committed log.
  const commit = c.node(lead).raw.status().commit;
  for (const node of c.nodes.values())
    assert.equal(node.raw.status().commit, commit, `seed ${seed}: node ${node.id}`);
}

describe("randomized cluster with asynchronous storage writes", () => {
  for (let seed = 101; seed <= 112; seed++) {
    it(`seed ${seed}: the same safety properties while writes are in flight and lost on restart`, () => {
      runSeed(seed, 600, seed % 2 === 0 ? 5 : 3, true);
    });
  }
});

describe("randomized cluster applying committed entries before they are durable locally", () => {
  for (let seed = 301; seed <= 316; seed++) {
    it(`seed ${seed}: the same safety properties; after a crash nothing applied is handed out again`, () => {
      runSeed(seed, 600, seed % 2 === 0 ? 5 : 3, true, seed % 4 < 2, true);
    });
  }
});

describe("randomized cluster with commit broadcasts deferred by a Ready", () => {
  for (let seed = 201; seed <= 212; seed++) {
    it(`seed ${seed}: the same safety properties, and every node still learns the final commit`, () => {
      runSeed(seed, 600, seed % 2 === 0 ? 5 : 3, seed % 4 < 2, true);
    });
  }
});

describe("randomized cluster", () => {
  for (let seed = 1; seed <= 12; seed++) {
    it(`seed ${seed}: one leader per term, identical applied entries, log matching, monotonic commit`, () => {
      runSeed(seed, 600, seed % 2 === 0 ? 5 : 3);
    });
  }
});
