// The size the simulator produces: 10,000 operations, 10 keys, 10 clients.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkKvHistory, generateKvHistory } from "../../../src/testing/linearizability/index.ts";
import { Prng } from "../../../src/testing/prng.ts";

describe("large histories", () => {
  // A step budget (not a wall-clock one) keeps this deterministic: the check
  // must finish well inside it instead of answering "unknown".
  const options = { maxSteps: 5_000_000 };

  it("decides a 10,000-operation, 10-key, 10-client history as linearizable", () => {
    const h = generateKvHistory(new Prng(10), { operations: 10_000, keys: 10, clients: 10 });
    assert.equal(h.length, 10_000);
    assert.deepEqual(checkKvHistory(h, options), { ok: true });
  });

  it("does so with timeouts and rejections mixed in", () => {
    const h = generateKvHistory(new Prng(11), {
      operations: 10_000,
      keys: 10,
      clients: 10,
      unknownRate: 0.02,
      failRate: 0.02,
    });
    assert.deepEqual(checkKvHistory(h, options), { ok: true });
  });

  it("finds one stale read among 10,000 operations", () => {
    const h = generateKvHistory(new Prng(12), { operations: 10_000, keys: 10, clients: 10 });
    // Read k3's first value after everything finished: a later put overwrote it.
    const first = h.find((r) => r.key === "k3" && r.op === "put")!;
    assert.ok(h.some((r) => r.key === "k3" && r.op === "put" && r.call > first.return!));
    const stale = {
      ...first,
      client: 99,
      op: "get",
      input: null,
      output: first.input,
      call: 1e9,
      return: 1e9 + 1,
    };
    const r = checkKvHistory([...h, stale], options);
    assert.equal(r.ok, false);
    assert.ok(r.ok === false && r.partition === "k3");
    assert.equal(r.counterexample.culprit, r.counterexample.operations.at(-1)?.operation);
    assert.ok(r.counterexample.operations.length < 20, r.counterexample.rendering);
  });
});
