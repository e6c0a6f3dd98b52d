/**
 * The linearizability check: validate, partition, search each partition, and
 * on failure shrink the failing partition to a small sub-history.
 */

import { InvalidArgumentError } from "../../errors.ts";
import type { CheckOptions, CheckResult, Counterexample, Model, Operation } from "./model.ts";
import { renderCounterexample } from "./render.ts";
import { Budget, type Entry, searchLinearization, sortEvents } from "./search.ts";

const MAX_STEPS_DEFAULT = 50_000_000;
const SHRINK_MAX_STEPS_DEFAULT = 2_000_000;
/** Bounds the one-by-one read removal when shrinking: each attempt is a full search. */
const SHRINK_REMOVALS_MAX = 200;

function validate<Input, Output>(op: Operation<Input, Output>, index: number): void {
  const where = `operation ${index} (client ${String(op.client)})`;
  if (!Number.isFinite(op.call))
    throw new InvalidArgumentError(`${where}: call time must be a finite number`);
  if (op.status === "ok") {
    if (op.return === null || !Number.isFinite(op.return)) {
      throw new InvalidArgumentError(`${where}: an "ok" operation needs a finite return time`);
    }
    if (op.return < op.call)
      throw new InvalidArgumentError(`${where}: returns (${op.return}) before its call (${op.call})`);
  } else if (op.status !== "unknown" && op.status !== "fail") {
    throw new InvalidArgumentError(`${where}: unknown status ${JSON.stringify(op.status)}`);
  }
}

/**
 * Turns a partition's operations into search entries: "fail" operations never
 * happened, unknown reads could only ever be dropped, the rest keep or lose
 * their outcome.
 */
function prepare<State, Input, Output>(
  model: Model<State, Input, Output>,
  operations: readonly Operation<Input, Output>[],
): Entry<Input, Output>[] {
  const entries: Entry<Input, Output>[] = [];
  for (const op of operations) {
    if (op.status === "fail") continue;
    if (op.status === "unknown") {
      if (model.isReadOnly?.(op.input, undefined)) continue;
      if (!model.stepUnknown) {
        throw new InvalidArgumentError(
          "the model needs stepUnknown to check operations with unknown outcome",
        );
      }
      entries.push({ op, unknown: true, call: op.call, ret: Infinity });
    } else {
      entries.push({ op, unknown: false, call: op.call, ret: op.return! });
    }
  }
  return entries;
}

/** Checks a history for linearizability against `model`. */
export function check<State, Input, Output>(
  model: Model<State, Input, Output>,
  operations: readonly Operation<Input, Output>[],
  options: CheckOptions = {},
): CheckResult<Input, Output> {
  operations.forEach(validate);
  if (options.timeoutMs !== undefined && options.now === undefined) {
    throw new InvalidArgumentError("timeoutMs needs a clock: pass now (e.g. performance.now)");
  }
  const budget = new Budget(options.maxSteps ?? MAX_STEPS_DEFAULT, options.now, options.timeoutMs);
  const partitions = model.partition ? model.partition(operations) : [{ id: "all", operations }];
  const undecided: string[] = [];
  for (const part of partitions) {
    const entries = prepare(model, part.operations);
    const outcome = budget.exhausted
      ? "unknown"
      : searchLinearization(model, entries, [model.init()], budget);
    if (outcome === "illegal") {
      const counterexample =
        options.counterexample === false
          ? minimalCounterexample(model, part.id, entries)
          : shrink(model, part.id, entries, options);
      return { ok: false, partition: part.id, counterexample };
    }
    if (outcome === "unknown") undecided.push(part.id);
  }
  return undecided.length === 0 ? { ok: true } : { ok: "unknown", undecided };
}

/** The whole partition, unshrunk, when the caller opted out of shrinking. */
function minimalCounterexample<State, Input, Output>(
  model: Model<State, Input, Output>,
  partition: string,
  entries: readonly Entry<Input, Output>[],
): Counterexample<Input, Output> {
  const sorted = [...entries].sort((a, b) => a.call - b.call);
  const ops = sorted.map((e) => ({ operation: e.op, weakened: false }));
  const last = sorted.reduce((acc, e, i) => (e.ret !== Infinity && e.ret > sorted[acc]!.ret ? i : acc), 0);
  return {
    operations: ops,
    culprit: sorted[last]!.op,
    from: "init",
    rendering: renderCounterexample(model, partition, ops, -1, "init"),
  };
}

/**
 * Shrinks a failing partition to a sub-history that is still a genuine
 * witness, i.e. one that would be linearizable if the full history were:
 *
 * 1. Back cut: the shortest prefix of events that fails. Operations called
 *    before the cut that return after it are kept with unknown outcome. Adding
 *    events only adds constraints, so failure is monotone in the cut and a
 *    binary search finds the shortest one; its last event is the return of the
 *    operation that could not be linearized (the culprit).
 * 2. Front cut (if the model lists `possibleStates`): drop operations that
 *    returned before a point p and search from every possible state instead of
 *    the initial one; operations straddling p keep an unknown outcome. Every
 *    linearization of the full history yields one of the cut one (start from
 *    its state at p), so failure is again monotone and binary-searchable.
 * 3. Remove read-only operations one by one where the rest still fails
 *    (removing a read never makes a linearizable history non-linearizable).
 *
 * Every candidate is verified by a bounded search; a search that runs out of
 * budget counts as "does not fail", so the result is always a proven failure.
 */
function shrink<State, Input, Output>(
  model: Model<State, Input, Output>,
  partition: string,
  entries: readonly Entry<Input, Output>[],
  options: CheckOptions,
): Counterexample<Input, Output> {
  const budget = new Budget(
    options.shrinkMaxSteps ?? SHRINK_MAX_STEPS_DEFAULT,
    options.now,
    options.timeoutMs,
  );
  const n = entries.length;
  const order = sortEvents(entries);
  const callAt = new Int32Array(n);
  const retAt = new Int32Array(n);
  order.forEach((node, k) => {
    if ((node & 1) === 0) callAt[node >> 1] = k;
    else retAt[node >> 1] = k;
  });

  // The window [p, k) of event positions and the operations it keeps.
  const window = (p: number, k: number, drop: ReadonlySet<number>): Entry<Input, Output>[] => {
    const out: Entry<Input, Output>[] = [];
    for (let i = 0; i < n; i++) {
      if (drop.has(i) || callAt[i]! >= k || retAt[i]! < p) continue;
      const e = entries[i]!;
      const weaken = !e.unknown && (retAt[i]! >= k || callAt[i]! < p);
      if (!weaken) {
        out.push(e);
      } else if (!model.isReadOnly?.(e.op.input, undefined)) {
        out.push({ op: e.op, unknown: true, call: e.call, ret: Infinity });
      }
    }
    return out;
  };
  const fails = (sub: readonly Entry<Input, Output>[], any: boolean): boolean => {
    if (budget.exhausted) return false;
    const inits = any ? model.possibleStates!(sub.map((e) => e.op)) : [model.init()];
    return searchLinearization(model, sub, inits, budget) === "illegal";
  };
  const none = new Set<number>();

  // 1. Shortest failing prefix: fails(2n) is known; find the least k.
  let lo = 1;
  let hi = 2 * n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (fails(window(0, mid, none), false)) hi = mid;
    else lo = mid + 1;
  }
  const k = hi;
  const culpritIndex = order[k - 1]! >> 1;

  // 2. Latest front cut that still fails from any state.
  let p = 0;
  let any = false;
  if (model.possibleStates) {
    let a = 0;
    let b = callAt[culpritIndex]!; // cutting past the culprit's call would weaken it
    if (fails(window(0, k, none), true)) {
      any = true;
      while (a < b) {
        const mid = (a + b + 1) >>> 1;
        if (fails(window(mid, k, none), true)) a = mid;
        else b = mid - 1;
      }
      p = a;
    }
  }

  // 3. Drop reads that are not needed for the failure.
  const drop = new Set<number>();
  let attempts = 0;
  for (let i = 0; i < n && attempts < SHRINK_REMOVALS_MAX; i++) {
    if (i === culpritIndex || callAt[i]! >= k || retAt[i]! < p) continue;
    const e = entries[i]!;
    if (!model.isReadOnly?.(e.op.input, e.unknown ? undefined : e.op.output)) continue;
    attempts++;
    drop.add(i);
    if (!fails(window(p, k, drop), any)) drop.delete(i);
  }

  const kept = window(p, k, drop).sort((x, y) => x.call - y.call || x.ret - y.ret);
  const ops = kept.map((e) => ({ operation: e.op, weakened: e.unknown && e.op.status === "ok" }));
  const culprit = entries[culpritIndex]!.op;
  const from = any ? "any" : "init";
  return {
    operations: ops,
    culprit,
    from,
    rendering: renderCounterexample(
      model,
      partition,
      ops,
      ops.findIndex((o) => o.operation === culprit),
      from,
    ),
  };
}
