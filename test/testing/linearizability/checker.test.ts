// The generic checker: partitioning, budgets, custom models, validation, and
// agreement with a brute-force oracle on small random histories.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { InvalidArgumentError } from "../../../src/errors.ts";
import type { HistoryRecord } from "../../../src/testing/history.ts";
import {
  check,
  checkKvHistory,
  generateKvHistory,
  type KvInput,
  type KvOutput,
  kvModel,
  type Model,
  type Operation,
} from "../../../src/testing/linearizability/index.ts";
import { Prng } from "../../../src/testing/prng.ts";
import { assertGenuineCounterexample, cas, del, get, put } from "./_helpers.ts";

describe("partitioning", () => {
  it("reports the key that fails and keeps the counterexample inside it", () => {
    const h = [
      put(1, "a", 0, 1, "x"),
      put(2, "b", 0, 1, "y"),
      get(3, "a", 2, 3, "x"),
      put(1, "c", 4, 5, "y"),
    ];
    h.push(get(2, "b", 6, 7, "y"));
    const r = checkKvHistory(h);
    assertGenuineCounterexample(r);
    assert.ok(r.ok === false);
    assert.equal(r.partition, "y");
    assert.equal(r.counterexample.culprit.input.key, "y");
  });

  it("never lets a write to one key explain a read of another", () => {
    const r = checkKvHistory([put(1, "a", 0, 1, "x"), get(2, "a", 2, 3, "y")]);
    assert.ok(r.ok === false);
    assert.equal(r.partition, "y");
  });

  it("checks keys independently, so per-key orders need not agree with each other", () => {
    // Each key alone is linearizable; partitioning is exact for independent registers.
    const h = [
      put(1, "a", 0, 10, "x"),
      put(2, "b", 0, 10, "y"),
      get(3, "a", 11, 12, "x"),
      get(3, "b", 11, 12, "y"),
    ];
    assert.deepEqual(checkKvHistory(h), { ok: true });
  });

  it("checks a model without partition as one partition named all", () => {
    const r = check(counter, [inc(1, 0, 1), read(2, 2, 2, 3)]);
    assert.ok(r.ok === false);
    assert.equal(r.partition, "all");
  });
});

// A counter with default equality and hashing: no partition, no describe.
type CounterIn = { readonly kind: "inc" } | { readonly kind: "read" };
const counter: Model<number, CounterIn, number | null> = {
  init: () => 0,
  step: (s, input, out) =>
    input.kind === "inc" ? { ok: true, state: s + 1 } : out === s ? { ok: true, state: s } : { ok: false },
  stepUnknown: (s, input) => ({ ok: true, state: input.kind === "inc" ? s + 1 : s }),
};
const inc = (client: number, call: number, ret: number): Operation<CounterIn, number | null> => ({
  client,
  input: { kind: "inc" },
  output: null,
  call,
  return: ret,
  status: "ok",
});
const read = (
  client: number,
  value: number,
  call: number,
  ret: number,
): Operation<CounterIn, number | null> => ({
  client,
  input: { kind: "read" },
  output: value,
  call,
  return: ret,
  status: "ok",
});

describe("values", () => {
  it("a string with a lone surrogate is the text a client can send for it, never tagged bytes", () => {
    // Bytes that are not UTF-8 are tagged with a lone surrogate; a string starting with one
    // must not be read as those bytes.
    const ops: Operation<KvInput, KvOutput>[] = [
      {
        client: 1,
        input: { op: "put", key: "x", value: new Uint8Array([0xff]) },
        output: null,
        call: 0,
        return: 1,
        status: "ok",
      },
      { client: 2, input: { op: "get", key: "x" }, output: "\uDFFF/w==", call: 2, return: 3, status: "ok" },
    ];
    assert.equal(check(kvModel, ops).ok, false);
  });
});

describe("custom models", () => {
  it("checks a counter with default state hashing", () => {
    assert.deepEqual(check(counter, [inc(1, 0, 5), inc(2, 0, 5), read(3, 1, 1, 2), read(3, 2, 6, 7)]), {
      ok: true,
    });
    const r = check(counter, [inc(1, 0, 5), inc(2, 0, 5), read(3, 1, 6, 7)]);
    assert.equal(r.ok, false);
    assert.ok(r.ok === false && /cannot be linearized/.test(r.counterexample.rendering));
  });

  it("refuses unknown operations when the model has no stepUnknown", () => {
    const { stepUnknown: _, ...noUnknown } = counter;
    const pending: Operation<CounterIn, number | null> = { ...inc(1, 0, 1), return: null, status: "unknown" };
    assert.throws(() => check(noUnknown, [pending]), InvalidArgumentError);
  });

  it("validates operation times", () => {
    assert.throws(() => check(counter, [inc(1, 5, 4)]), InvalidArgumentError);
    assert.throws(() => check(counter, [{ ...inc(1, 0, 1), return: null }]), InvalidArgumentError);
    assert.throws(() => check(counter, [inc(1, Number.NaN, 1)]), InvalidArgumentError);
  });
});

describe("budget", () => {
  const big = generateKvHistory(new Prng(7), { operations: 3000, keys: 3, clients: 8 });

  it("returns unknown when the step budget runs out, naming the undecided partitions", () => {
    const r = checkKvHistory(big, { maxSteps: 100 });
    assert.equal(r.ok, "unknown");
    assert.ok(r.ok === "unknown" && r.undecided.length === 3);
    assert.deepEqual(checkKvHistory(big), { ok: true });
  });

  it("returns unknown rather than a verdict on a failing history it cannot finish", () => {
    const h = [...big, get(99, "never-written", 1e9, 1e9 + 1, "k0")];
    assert.equal(checkKvHistory(h).ok, false);
    assert.equal(checkKvHistory(h, { maxSteps: 10 }).ok, "unknown");
  });

  it("an expensive key does not use up the budget of a plainly broken key after it", () => {
    const h = [...big, get(99, "never-written", 1e9, 1e9 + 1, "zz")];
    const r = checkKvHistory(h, { maxSteps: 100 });
    assert.equal(r.ok, false);
    assert.ok(r.ok === false && r.partition === "zz");
  });

  it("returns unknown when an injected clock passes the time budget", () => {
    // A fake clock that advances 10 ms per reading: the deadline passes at the
    // checker's first clock check, long before 3,000 operations are decided.
    let t = 0;
    const r = checkKvHistory(big, { timeoutMs: 50, now: () => (t += 10) });
    assert.equal(r.ok, "unknown");
    assert.throws(() => checkKvHistory(big, { timeoutMs: 50 }), InvalidArgumentError);
  });
});

/**
 * An oracle sharing nothing with the checker: run every order of the
 * operations that respects real time (unknown ones optional) through a plain
 * sequential map and compare outputs.
 */
function bruteForceLinearizable(history: readonly HistoryRecord[]): boolean {
  const ops = history.filter((r) => r.status !== "fail");
  const used = new Array<boolean>(ops.length).fill(false);
  const run = (value: string | null, placed: number): boolean => {
    if (ops.every((o, i) => used[i] || o.status === "unknown")) return true;
    if (placed === ops.length) return false;
    for (let i = 0; i < ops.length; i++) {
      const o = ops[i]!;
      if (used[i]) continue;
      // Some definite operation finished before o began, but is not placed yet.
      if (ops.some((p, j) => !used[j] && p.status === "ok" && p.return! < o.call)) continue;
      const definite = o.status === "ok";
      let next = value;
      let out: unknown = null;
      if (o.op === "get") out = value;
      else if (o.op === "put") next = o.input as string;
      else if (o.op === "delete") next = null;
      else {
        const { expected, new: nv } = o.input as { expected: string | null; new: string };
        out = expected === value;
        if (out) next = nv;
      }
      if (definite && out !== o.output) continue;
      used[i] = true;
      const found = run(next, placed + 1);
      used[i] = false;
      if (found) return true;
    }
    return false;
  };
  return run(null, 0);
}

const values = ["a", "b", "c"];
const arbRecord: fc.Arbitrary<HistoryRecord> = fc
  .record({
    kind: fc.constantFrom("get", "put", "delete", "cas"),
    value: fc.constantFrom(...values),
    expected: fc.constantFrom(null, "a", "b"),
    readOut: fc.constantFrom(null, "a", "b", "c"),
    casOut: fc.boolean(),
    client: fc.integer({ min: 1, max: 4 }),
    call: fc.integer({ min: 0, max: 20 }),
    length: fc.integer({ min: 0, max: 10 }),
    status: fc.constantFrom("ok", "ok", "ok", "ok", "ok", "unknown", "fail"),
  })
  .map((g) => {
    const base =
      g.kind === "get"
        ? get(g.client, g.readOut, g.call, g.call + g.length)
        : g.kind === "put"
          ? put(g.client, g.value, g.call, g.call + g.length)
          : g.kind === "delete"
            ? del(g.client, g.call, g.call + g.length)
            : cas(g.client, g.expected, g.value, g.casOut, g.call, g.call + g.length);
    if (g.status === "ok") return base;
    if (g.status === "fail") return { ...base, output: null, status: "fail" as const };
    return { ...base, output: null, return: null, status: "unknown" as const };
  });

describe("agreement with a brute-force oracle", () => {
  it("gives the oracle's verdict on small random histories, with genuine counterexamples", () => {
    let linearizable = 0;
    fc.assert(
      fc.property(fc.array(arbRecord, { minLength: 1, maxLength: 7 }), (h) => {
        const expected = bruteForceLinearizable(h);
        const r = checkKvHistory(h);
        assert.equal(r.ok, expected);
        if (expected) linearizable++;
        else assertGenuineCounterexample(r);
      }),
      { numRuns: 1500, seed: 20240601 },
    );
    // Both verdicts must be well represented for the comparison to mean anything.
    assert.ok(linearizable > 200, `only ${linearizable} linearizable samples`);
    assert.ok(linearizable < 1300, `only ${1500 - linearizable} non-linearizable samples`);
  });
});
