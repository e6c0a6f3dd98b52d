// Property tests: executions of a real sequential store are always accepted;
// a provably stale read injected into one is always rejected.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { HistoryRecord } from "../../../src/testing/history.ts";
import { checkKvHistory, generateKvHistory } from "../../../src/testing/linearizability/index.ts";
import { Prng } from "../../../src/testing/prng.ts";
import { assertGenuineCounterexample } from "./_helpers.ts";

const workload = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  operations: fc.integer({ min: 1, max: 300 }),
  keys: fc.integer({ min: 1, max: 4 }),
  clients: fc.integer({ min: 1, max: 8 }),
  latencyMax: fc.integer({ min: 1, max: 40 }),
  unknownRate: fc.constantFrom(0, 0.02, 0.1),
  failRate: fc.constantFrom(0, 0.05),
});

/** The value a write leaves behind, or undefined for writes that may not have happened. */
function written(r: HistoryRecord): string | null | undefined {
  if (r.status !== "ok") return undefined;
  if (r.op === "put") return r.input as string;
  if (r.op === "delete") return null;
  if (r.op === "cas" && r.output === true) return (r.input as { new: string }).new;
  return undefined;
}

/**
 * Makes one read return an overwritten value, only where that is provably
 * wrong: the old write finished before an overwriting write began, which
 * finished before the read began. Values are unique per write, so nothing can
 * restore the old value in between. Returns undefined when no such triple exists.
 */
function injectStaleRead(h: readonly HistoryRecord[], prng: Prng): HistoryRecord[] | undefined {
  const candidates: [number, string][] = [];
  h.forEach((g, gi) => {
    if (g.op !== "get" || g.status !== "ok") return;
    // The latest-starting overwrite that finished before the read began
    // admits the most old writes (old.return < newer.call).
    let newestCall = -Infinity;
    for (const newer of h) {
      if (newer.key === g.key && written(newer) !== undefined && newer.return! < g.call) {
        newestCall = Math.max(newestCall, newer.call);
      }
    }
    for (const old of h) {
      const v = written(old);
      if (old.key === g.key && typeof v === "string" && old.return! < newestCall && v !== g.output) {
        candidates.push([gi, v]);
      }
    }
  });
  if (candidates.length === 0) return undefined;
  const [gi, value] = prng.pick(candidates);
  const out = [...h];
  out[gi] = { ...h[gi]!, output: value };
  return out;
}

describe("property: generated executions", () => {
  it("accepts every history produced by a sequential execution with overlapping intervals", () => {
    fc.assert(
      fc.property(workload, (w) => {
        const h = generateKvHistory(new Prng(w.seed), w);
        assert.deepEqual(checkKvHistory(h), { ok: true });
      }),
      { numRuns: 300, seed: 4242 },
    );
  });

  it("rejects every history with a provably stale read, with a genuine counterexample on the right key", () => {
    let injected = 0;
    fc.assert(
      fc.property(workload, (w) => {
        const prng = new Prng(w.seed);
        // Refuting a history is exponential in the timed-out operations that
        // could still apply, so this property keeps timeouts rare.
        const h = generateKvHistory(prng, { ...w, unknownRate: Math.min(w.unknownRate, 0.02) });
        const bad = injectStaleRead(h, prng);
        if (bad === undefined) return;
        injected++;
        const r = checkKvHistory(bad);
        assertGenuineCounterexample(r);
        const changed = bad.find((x, i) => x !== h[i])!;
        assert.ok(r.ok === false && r.partition === changed.key);
      }),
      { numRuns: 300, seed: 4243 },
    );
    assert.ok(injected > 150, `only ${injected} histories had a provable stale read`);
  });
});
