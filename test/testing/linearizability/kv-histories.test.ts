// Hand-made KV histories with a known verdict.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { HistoryRecord } from "../../../src/testing/history.ts";
import { checkKvHistory } from "../../../src/testing/linearizability/index.ts";
import { assertGenuineCounterexample, cas, del, failed, get, put, unknown } from "./_helpers.ts";

const ok = (h: readonly HistoryRecord[]) => assert.deepEqual(checkKvHistory(h), { ok: true });
const bad = (h: readonly HistoryRecord[]) => {
  const r = checkKvHistory(h);
  assertGenuineCounterexample(r);
  return r;
};

describe("linearizable histories", () => {
  it("accepts the empty history and a fresh read of an absent key", () => {
    ok([]);
    ok([get(1, null, 0, 1)]);
  });

  it("accepts a sequential put, get, delete, get", () => {
    ok([put(1, "a", 0, 1), get(2, "a", 2, 3), del(1, 4, 5), get(2, null, 6, 7)]);
  });

  it("accepts a read concurrent with a write seeing either the old or the new value", () => {
    ok([put(1, "a", 0, 10), get(2, null, 1, 5)]);
    ok([put(1, "a", 0, 10), get(2, "a", 1, 5)]);
  });

  it("treats operations that only touch at one instant as concurrent", () => {
    ok([put(1, "a", 0, 5), get(2, null, 5, 6)]);
  });

  it("finds the single order that works for concurrent writes", () => {
    // put b then get -> b then put a then get -> a: the only order that fits.
    ok([put(1, "a", 0, 10), put(2, "b", 0, 10), get(3, "b", 1, 2), get(3, "a", 11, 12)]);
  });

  it("accepts successful and failing cas where the value allows it", () => {
    ok([put(1, "a", 0, 1), cas(2, "a", "b", true, 2, 3), cas(3, "a", "c", false, 4, 5), get(1, "b", 6, 7)]);
    ok([cas(1, null, "a", true, 0, 1), cas(2, null, "b", false, 2, 3), get(3, "a", 4, 5)]);
    // Two concurrent cas from the same expected value: exactly one may win.
    ok([
      put(1, "a", 0, 1),
      cas(2, "a", "b", true, 2, 10),
      cas(3, "a", "c", false, 2, 10),
      get(1, "b", 11, 12),
    ]);
  });
});

describe("non-linearizable histories", () => {
  it("rejects a stale read and points at it", () => {
    const stale = get(3, "a", 4, 5);
    const r = bad([put(1, "a", 0, 1), put(2, "b", 2, 3), stale]);
    assert.ok(r.ok === false);
    assert.equal(r.partition, "x");
    assert.equal(r.counterexample.culprit.input.op, "get");
    assert.equal(r.counterexample.culprit.call, 4);
    assert.match(r.counterexample.rendering, /get\(\) -> "a"\s+<- cannot be linearized/);
  });

  it("rejects a lost acknowledged write", () => {
    bad([put(1, "a", 0, 1), get(2, null, 2, 3)]);
    bad([put(1, "a", 0, 1), put(1, "b", 2, 3), get(2, "a", 4, 5), get(2, "b", 6, 7)]);
  });

  it("rejects a read of a value never written", () => {
    const r = bad([put(1, "a", 0, 1), get(2, "zzz", 2, 3)]);
    assert.ok(r.ok === false && r.counterexample.operations.length === 2);
  });

  it("rejects two cas that both claim to have swapped from the same value", () => {
    bad([put(1, "a", 0, 1), cas(2, "a", "b", true, 2, 10), cas(3, "a", "c", true, 2, 10)]);
    bad([cas(1, null, "a", true, 0, 1), cas(2, null, "b", true, 2, 3)]);
  });

  it("rejects a cas that failed although the value matched, and one that succeeded although it did not", () => {
    bad([put(1, "a", 0, 1), cas(2, "a", "b", false, 2, 3)]);
    bad([put(1, "a", 0, 1), cas(2, "z", "b", true, 2, 3)]);
    bad([put(1, "a", 0, 1), cas(2, "a", "b", true, 2, 3), get(3, "a", 4, 5)]);
  });

  it("rejects a new-then-old read inversion that no single order explains", () => {
    const h = [put(1, "a", 0, 1), put(2, "b", 2, 20), get(3, "b", 3, 4), get(4, "a", 5, 6)];
    bad(h);
    // Without the first read, the old value is still legal.
    ok([h[0]!, h[1]!, h[3]!]);
  });

  it("rejects concurrent writes read back in an order that contradicts a finished read", () => {
    ok([put(1, "a", 0, 10), put(2, "b", 0, 10), get(3, "a", 11, 12)]);
    bad([put(1, "a", 0, 10), put(2, "b", 0, 10), get(3, "a", 11, 12), get(3, "b", 13, 14)]);
  });

  it("cuts a long linearizable prefix away from the counterexample", () => {
    const h: HistoryRecord[] = [];
    for (let i = 0; i < 200; i++)
      h.push(put(1, `v${i}`, 10 * i, 10 * i + 3), get(2, `v${i}`, 10 * i + 4, 10 * i + 6));
    h.push(get(2, "v150", 2000, 2001));
    const r = bad(h);
    assert.ok(r.ok === false);
    assert.equal(r.counterexample.from, "any");
    assert.ok(r.counterexample.operations.length <= 3, r.counterexample.rendering);
    assert.equal(r.counterexample.culprit.call, 2000);
  });
});

describe("operations with unknown or failed outcome", () => {
  it("assumes an unknown put took effect when a later read needs it", () => {
    ok([unknown(put(1, "a", 0, 1)), get(2, "a", 5, 6)]);
  });

  it("assumes an unknown put did not take effect when later reads need that", () => {
    ok([put(1, "a", 0, 1), unknown(put(2, "b", 2, 3)), get(3, "a", 4, 5), get(3, "a", 8, 9)]);
  });

  it("lets an unknown put take effect long after the client gave up", () => {
    ok([put(1, "a", 0, 1), unknown(put(2, "b", 2, 3)), get(3, "a", 10, 11), get(3, "b", 20, 21)]);
  });

  it("never applies an unknown put before its call", () => {
    bad([get(1, "b", 0, 1), unknown(put(2, "b", 5, 6))]);
  });

  it("applies an unknown put at most once", () => {
    bad([unknown(put(1, "a", 0, 1)), get(2, "a", 2, 3), put(3, "b", 4, 5), get(2, "a", 6, 7)]);
  });

  it("lets an unknown cas succeed only where it matches", () => {
    ok([unknown(cas(1, null, "a", true, 0, 1)), get(2, "a", 2, 3)]);
    bad([put(1, "b", 0, 1), unknown(cas(1, "zzz", "a", true, 2, 3)), get(2, "a", 4, 5)]);
  });

  it("drops unknown reads whatever they claim to have seen", () => {
    ok([put(1, "a", 0, 1), { ...get(2, "never", 2, 3), status: "unknown", return: null }]);
  });

  it("excludes failed operations: they never took effect", () => {
    ok([failed(put(1, "a", 0, 1)), get(2, null, 2, 3)]);
    bad([failed(put(1, "a", 0, 1)), get(2, "a", 2, 3)]);
  });
});
