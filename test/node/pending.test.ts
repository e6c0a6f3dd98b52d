/**
 * The proposal waiters of a node: answered in log order, bounded, expired by
 * deadline, and never left hanging when the index they wait on is taken by a
 * later proposal of the same node (it lost and regained leadership).
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ProposalDroppedError,
  ResourceExhaustedError,
  StoppedError,
  TimeoutError,
} from "../../src/errors.ts";
import { PendingProposals } from "../../src/node/pending.ts";

/** How a promise has settled so far ("pending" if not yet), without waiting for it. */
async function state<T>(p: Promise<T>): Promise<{ value: T } | { error: unknown } | "pending"> {
  const marker = Symbol("pending");
  try {
    const v = await Promise.race([p, new Promise<typeof marker>((r) => setImmediate(() => r(marker)))]);
    return v === marker ? "pending" : { value: v as T };
  } catch (error) {
    return { error };
  }
}

function dropped(s: Awaited<ReturnType<typeof state>>): boolean {
  return typeof s === "object" && "error" in s && s.error instanceof ProposalDroppedError;
}

describe("PendingProposals", () => {
  it("answers each waiter with its entry's result, in log order", async () => {
    const p = new PendingProposals<string>(10, 60_000);
    const a = p.wait(5, 2);
    const b = p.wait(6, 2);
    const c = p.wait(7, 2);
    assert.equal(p.size, 3);
    p.applied(4, 2, "not ours");
    p.applied(5, 2, "five");
    p.applied(6, 2, "six");
    assert.deepEqual(await state(a), { value: "five" });
    assert.deepEqual(await state(b), { value: "six" });
    assert.equal(await state(c), "pending");
    assert.equal(p.size, 1);
  });

  it("rejects a waiter whose index was committed in another term (another leader's entry)", async () => {
    const p = new PendingProposals<string>(10, 60_000);
    const a = p.wait(5, 2);
    p.applied(5, 3, "someone else's");
    assert.ok(dropped(await state(a)));
    assert.equal(p.size, 0);
  });

  it("a new proposal at an index still awaited rejects the waiters it replaces (no promise left hanging)", async () => {
    // Leader in term 2 proposes 98..100, loses leadership, its log is cut back
    // to 97, it wins term 4 and proposes at 98 again.
    const p = new PendingProposals<string>(10, 60_000);
    const old = [98, 99, 100].map((i) => p.wait(i, 2));
    const kept = p.wait(98, 4);
    for (const o of old) assert.ok(dropped(await state(o)), "an old waiter must fail, not hang");
    assert.equal(p.size, 1);
    p.applied(98, 4, "new");
    assert.deepEqual(await state(kept), { value: "new" });
    assert.equal(p.size, 0);
  });

  it("an applied index past a waiter fails it rather than leaving it behind", async () => {
    const p = new PendingProposals<string>(10, 60_000);
    const a = p.wait(5, 2);
    const b = p.wait(8, 2);
    p.applied(7, 2, "seven");
    assert.ok(dropped(await state(a)));
    assert.equal(await state(b), "pending");
  });

  it("a snapshot covering waiters fails exactly those", async () => {
    const p = new PendingProposals<string>(10, 60_000);
    const [a, b, c] = [3, 4, 9].map((i) => p.wait(i, 1)) as [
      Promise<string>,
      Promise<string>,
      Promise<string>,
    ];
    p.supersededUpTo(4);
    assert.ok(dropped(await state(a)));
    assert.ok(dropped(await state(b)));
    assert.equal(await state(c), "pending");
    assert.equal(p.size, 1);
  });

  it("expires waiters past their deadline, oldest first, and keeps the rest", async () => {
    const p = new PendingProposals<string>(10, 1000);
    const a = p.wait(1, 1);
    p.expire(performance.now() + 500);
    assert.equal(await state(a), "pending");
    p.expire(performance.now() + 1001);
    const s = await state(a);
    assert.ok(typeof s === "object" && "error" in s && s.error instanceof TimeoutError);
    assert.equal(p.size, 0);
  });

  it("is bounded, and failAll answers every waiter with the given error", async () => {
    const p = new PendingProposals<string>(2, 60_000);
    const ws = [p.wait(1, 1), p.wait(2, 1)];
    assert.throws(() => p.checkRoom(), ResourceExhaustedError);
    p.failAll(new StoppedError());
    for (const w of ws) {
      const s = await state(w);
      assert.ok(typeof s === "object" && "error" in s && s.error instanceof StoppedError);
    }
    assert.equal(p.size, 0);
    p.checkRoom(2);
  });

  it("stays correct across many proposals (the queue compacts as it drains)", async () => {
    const p = new PendingProposals<number>(10_000, 60_000);
    const ws: { w: Promise<number>; expect: number | "dropped" | "pending" }[] = [];
    let next = 1;
    for (let round = 0; round < 5; round++) {
      // 3,000 proposed, 2,500 applied; the last 500 are proposed again (same indexes) next round.
      for (let k = 0; k < 3000; k++)
        ws.push({ w: p.wait(next + k, 1), expect: k < 2500 ? next + k : round < 4 ? "dropped" : "pending" });
      for (let k = 0; k < 2500; k++) p.applied(next + k, 1, next + k);
      next += 2500;
    }
    for (const { w, expect } of ws) {
      const s = await state(w);
      if (expect === "dropped") assert.ok(dropped(s));
      else if (expect === "pending") assert.equal(s, "pending");
      else assert.deepEqual(s, { value: expect });
    }
    assert.equal(p.size, 500);
  });
});
