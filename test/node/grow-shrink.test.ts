/**
 * A cluster can start as a single node, grow to three and shrink back to one
 * while a client keeps writing: no acknowledged write is lost and writes never
 * stall for long (in-process, in-memory transport, file storage).
 */

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { NotLeaderError, ProposalDroppedError, TimeoutError } from "../../src/errors.ts";
import { MemoryNetwork } from "../../src/transport/memory.ts";
import {
  dec,
  enc,
  type KvNode,
  leaderOf,
  memAddress,
  memNode,
  put,
  tempDir,
  voters,
  waitFor,
} from "./helpers.ts";

const tmp = tempDir("tsraft-grow-");
const nodes: KvNode[] = [];
after(async () => {
  for (const n of nodes) await n.stop().catch(() => {});
  tmp.cleanup();
});

describe("membership without downtime", () => {
  it("grows 1 → 3 voters and shrinks back to 1 while writes continue", async () => {
    const net = new MemoryNetwork({ clusterId: "grow" });
    const first = memNode(net, 1, tmp.dir, { initialCluster: { "1": memAddress(1) } });
    nodes.push(first);
    await first.startRpcServer();
    await first.ready();

    // A writer that always writes through whoever leads, recording what was acknowledged.
    const acked = new Map<string, string>();
    let stop = false;
    let lastAckMs = Date.now();
    let maxGapMs = 0;
    let seq = 0;
    const writer = (async () => {
      while (!stop) {
        const lead = leaderOf(nodes.filter((n) => n.running));
        if (!lead) {
          await sleep(5);
          continue;
        }
        const key = `k${seq % 50}`;
        const value = `v${seq++}`;
        try {
          await lead.propose(put(key, value));
          acked.set(key, value);
          const now = Date.now();
          maxGapMs = Math.max(maxGapMs, now - lastAckMs);
          lastAckMs = now;
        } catch (e) {
          // Transient while leadership or membership moves: retry with the next value.
          if (
            !(e instanceof NotLeaderError || e instanceof ProposalDroppedError || e instanceof TimeoutError)
          )
            throw e;
        }
      }
    })();

    for (const id of [2, 3]) {
      const n = memNode(net, id, tmp.dir, { join: { "1": memAddress(1) } });
      nodes.push(n);
      await n.startRpcServer();
      // Joined as a learner, then promoted automatically once caught up.
      await waitFor(`node ${id} promoted`, () => voters(first).includes(id), 15_000);
    }
    assert.deepEqual(voters(first), [1, 2, 3]);
    await waitFor("a few more writes with 3 voters", () => seq > 200 && acked.size > 0);

    for (const id of [3, 2]) {
      const removed = nodes.find((n) => n.id === id)!;
      const gone = new Promise<void>((resolve) => removed.once("removed", () => resolve()));
      await first.removeNode(id);
      await gone; // the removed node is told and shuts itself down
      await waitFor(`node ${id} stopped`, () => !removed.running, 10_000);
    }
    assert.deepEqual(voters(first), [1]);
    const before = seq;
    await waitFor("writes continue on the single node", () => seq > before + 50);
    stop = true;
    await writer;

    assert.ok(maxGapMs < 3000, `writes stalled for ${maxGapMs} ms`);
    assert.ok(acked.size === 50, `expected every key written, got ${acked.size}`);
    for (const [key, value] of acked) {
      const got = dec(await first.read(enc(key), { consistency: "linearizable" }));
      // The latest acknowledged value, or a later attempt that committed after an ambiguous error.
      assert.ok(got !== null && Number(got.slice(1)) >= Number(value.slice(1)), `${key}: ${got} < ${value}`);
    }
  });

  it("removing the leader of two voters: the other one leads alone (it learns the removal committed)", async () => {
    const net = new MemoryNetwork({ clusterId: "remove-leader-2" });
    const initialCluster = { "1": memAddress(1), "2": memAddress(2) };
    const two = [1, 2].map((id) => memNode(net, id, `${tmp.dir}/rl2`, { initialCluster }));
    nodes.push(...two);
    await Promise.all(two.map((n) => n.startRpcServer()));
    await Promise.all(two.map((n) => n.ready()));
    const leader = await waitFor("a leader", () => leaderOf(two));
    const other = two.find((n) => n !== leader)!;
    await leader.propose(put("before", "1"));
    await leader.removeNode(leader.id);
    // With the commit broadcast deferred, the survivor never heard that the removal
    // committed: it kept both voters, could not win an election, and stayed without a leader.
    await waitFor(
      "the other node leading alone",
      () => other.status().role === "leader" && voters(other).length === 1,
      8000,
    );
    assert.deepEqual(voters(other), [other.id]);
    assert.equal((await other.propose(put("after", "2"))).op, "put");
    assert.equal(dec(await other.read(enc("before"))), "1");
  });
});
