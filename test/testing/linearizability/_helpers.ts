// Builders for hand-made KV histories, and an independent verifier for counterexamples.
import assert from "node:assert/strict";
import type { HistoryRecord, HistoryValue } from "../../../src/testing/history.ts";
import {
  type CheckResult,
  check,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
} from "../../../src/testing/linearizability/index.ts";

type Rec = HistoryRecord;
const rec = (
  client: number,
  op: string,
  input: HistoryValue,
  output: HistoryValue,
  call: number,
  ret: number,
  key: string,
): Rec => ({
  client,
  op,
  key,
  input,
  output,
  call,
  return: ret,
  status: "ok",
});

export const put = (c: number, v: string, call: number, ret: number, key = "x"): Rec =>
  rec(c, "put", v, null, call, ret, key);
export const get = (c: number, out: string | null, call: number, ret: number, key = "x"): Rec =>
  rec(c, "get", null, out, call, ret, key);
export const del = (c: number, call: number, ret: number, key = "x"): Rec =>
  rec(c, "delete", null, null, call, ret, key);
export const cas = (
  c: number,
  expected: string | null,
  next: string,
  out: boolean,
  call: number,
  ret: number,
  key = "x",
): Rec => rec(c, "cas", { expected, new: next }, out, call, ret, key);
export const unknown = (r: Rec): Rec => ({ ...r, output: null, return: null, status: "unknown" });
export const failed = (r: Rec): Rec => ({ ...r, output: null, status: "fail" });

/**
 * Independently confirms a counterexample: re-checks just its operations
 * (weakened ones as unknown) and expects failure from the initial state, or
 * from every possible starting state when the shrinker cut older operations.
 */
export function assertGenuineCounterexample(result: CheckResult<KvInput, KvOutput>): void {
  assert.equal(result.ok, false);
  if (result.ok !== false) return;
  const { counterexample: cx, partition } = result;
  assert.ok(cx.operations.length > 0);
  assert.ok(
    cx.operations.some((o) => o.operation === cx.culprit),
    "the culprit is part of the counterexample",
  );
  for (const o of cx.operations)
    assert.equal(o.operation.input.key, partition, "counterexample stays in its partition");
  const ops: Operation<KvInput, KvOutput>[] = cx.operations.map(({ operation, weakened }) =>
    weakened ? { ...operation, output: undefined, return: null, status: "unknown" } : operation,
  );
  const starts = cx.from === "init" ? [kvModel.init()] : kvModel.possibleStates!(ops);
  for (const s of starts) {
    const r = check({ ...kvModel, init: () => s }, ops, { counterexample: false });
    assert.equal(r.ok, false, `counterexample must fail from state ${String(s)}:\n${cx.rendering}`);
  }
  assert.match(cx.rendering, /cannot be linearized/);
}
