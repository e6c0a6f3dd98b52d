/**
 * The linearizability check: validate, partition, search each partition, and
 * on failure shrink the failing partition to a small sub-history.
 */

import { InvalidArgumentError, invariant } from "../../errors.ts";
import type { CheckOptions, CheckResult, Counterexample, Model, Operation } from "./model.ts";
import { renderCounterexample } from "./render.ts";
import { Budget, type Entry, searchLinearization, sortEvents } from "./search.ts";

const MAX_STEPS_DEFAULT = 50_000_000;
const SHRINK_MAX_STEPS_DEFAULT = 5_000_000;
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
  const partitions = model.partition ? model.partition(operations) : [{ id: "all", operations }];
  const undecided: string[] = [];
  // Each partition may take its share of the steps left (what one leaves goes to the rest), so
  // an expensive key checked first cannot leave a plainly broken one after it undecided.
  let stepsLeft = options.maxSteps ?? MAX_STEPS_DEFAULT;
  const deadline =
    options.now && options.timeoutMs !== undefined ? options.now() + options.timeoutMs : undefined;
  for (let i = 0; i < partitions.length; i++) {
    const part = partitions[i]!;
    const entries = prepare(model, part.operations);
    const share = Math.floor(stepsLeft / (partitions.length - i));
    const timeLeft = deadline === undefined ? undefined : Math.max(0, deadline - options.now!());
    const budget = new Budget(share, options.now, timeLeft);
    const { outcome, reach } =
      timeLeft === 0
        ? { outcome: "unknown", reach: 0 }
        : searchLinearization(model, entries, [model.init()], budget);
    stepsLeft -= budget.spent;
    if (outcome === "illegal") {
      const counterexample =
        options.counterexample === false
          ? unshrunkCounterexample(model, part.id, entries, reach)
          : shrink(model, part.id, entries, reach, options);
      return { ok: false, partition: part.id, counterexample };
    }
    if (outcome === "unknown") undecided.push(part.id);
  }
  return undecided.length === 0 ? { ok: true } : { ok: "unknown", undecided };
}

/** The whole partition, unshrunk, when the caller opted out of shrinking. */
function unshrunkCounterexample<State, Input, Output>(
  model: Model<State, Input, Output>,
  partition: string,
  entries: readonly Entry<Input, Output>[],
  reach: number,
): Counterexample<Input, Output> {
  const culprit = entries[sortEvents(entries)[reach]! >> 1]!.op;
  const ops = [...entries].sort((a, b) => a.call - b.call).map((e) => ({ operation: e.op, weakened: false }));
  return {
    operations: ops,
    culprit,
    from: "init",
    rendering: renderCounterexample(
      model,
      partition,
      ops,
      ops.findIndex((o) => o.operation === culprit),
      "init",
    ),
  };
}

/**
 * Shrinks a failing partition to a sub-history that is still a genuine
 * witness, i.e. one that would be linearizable if the full history were.
 * Sub-histories are windows [p, k) of the sorted call/return events:
 * operations called at or after k are dropped, operations that returned
 * before p are dropped, and operations straddling either edge keep an unknown
 * outcome (which only ever makes a history easier to linearize).
 *
 * - Back edge k: a prefix fails iff no linearization gets past its last
 *   return. The search already reports how far it got (`reach`), so k starts
 *   at reach + 1 and grows (gallop, then bisect) until the prefix fails from
 *   the initial state. Failure is monotone in k: adding events only adds
 *   constraints. The return at k - 1 belongs to the culprit.
 * - Front edge p (when the model lists `possibleStates`): search from every
 *   state the object could have been in instead of the initial one. Any
 *   linearization of the full history yields one of the window (start from
 *   its state at p), so a window that fails from every state is a witness,
 *   and failure is monotone in p. Windows grow backwards from the culprit's
 *   call, so only small windows are searched from many states.
 * - Reads are then removed one by one where the rest still fails (removing a
 *   read never turns a linearizable history into a non-linearizable one).
 *
 * Every candidate is verified by a bounded search; one that runs out of
 * budget counts as "does not fail", so whatever is returned is a proven failure.
 */
function shrink<State, Input, Output>(
  model: Model<State, Input, Output>,
  partition: string,
  entries: readonly Entry<Input, Output>[],
  reach: number,
  options: CheckOptions,
): Counterexample<Input, Output> {
  const stepsMax = options.shrinkMaxSteps ?? SHRINK_MAX_STEPS_DEFAULT;
  const n = entries.length;
  const order = sortEvents(entries);
  const callAt = new Int32Array(n);
  const retAt = new Int32Array(n);
  order.forEach((node, k) => {
    if ((node & 1) === 0) callAt[node >> 1] = k;
    else retAt[node >> 1] = k;
  });
  invariant((order[reach]! & 1) === 1, "a failed search gets stuck at a return event");

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
  const fails = (budget: Budget, sub: readonly Entry<Input, Output>[], any: boolean): boolean => {
    if (budget.exhausted) return false;
    const inits = any ? model.possibleStates!(sub.map((e) => e.op)) : [model.init()];
    return searchLinearization(model, sub, inits, budget).outcome === "illegal";
  };
  const none = new Set<number>();

  // Latest front edge p <= the culprit's call whose window [p, k) fails from
  // every state, or -1.
  const frontCut = (k: number, culprit: number): number => {
    if (!model.possibleStates) return -1;
    const budget = new Budget(stepsMax, options.now, options.timeoutMs);
    const c = callAt[culprit]!;
    let passed = c + 1; // smallest start known not to fail
    for (let d = 0; !budget.exhausted; d = d === 0 ? 1 : d * 2) {
      const start = Math.max(0, c - d);
      if (fails(budget, window(start, k, none), true)) {
        let lo = start;
        let hi = passed - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >>> 1;
          if (fails(budget, window(mid, k, none), true)) lo = mid;
          else hi = mid - 1;
        }
        return lo;
      }
      passed = start;
      if (start === 0) break;
    }
    return -1;
  };

  let k = reach + 1;
  let culpritIndex = order[reach]! >> 1;
  let p = frontCut(k, culpritIndex);
  if (p < 0) {
    // The window ending at the suspect does not fail on its own from every
    // state: find the shortest failing prefix from the initial state.
    const budget = new Budget(stepsMax, options.now, options.timeoutMs);
    let passed = reach; // prefixes up to `reach` events are linearizable (the search got that far)
    let failing = 2 * n; // the whole partition fails
    for (let step = 1, next = reach + 1; next < failing; step *= 2, next = reach + step) {
      if (fails(budget, window(0, next, none), false)) failing = next;
      else passed = next;
      if (failing === next || budget.exhausted) break;
    }
    while (passed + 1 < failing && !budget.exhausted) {
      const mid = (passed + failing) >>> 1;
      if (fails(budget, window(0, mid, none), false)) failing = mid;
      else passed = mid;
    }
    const moved = failing !== k;
    k = failing;
    culpritIndex = order[k - 1]! >> 1;
    if (moved) p = frontCut(k, culpritIndex);
  }
  const any = p >= 0;
  if (!any) p = 0;

  // Drop reads that are not needed for the failure.
  const budget = new Budget(stepsMax, options.now, options.timeoutMs);
  const drop = new Set<number>();
  let attempts = 0;
  for (let i = 0; i < n && attempts < SHRINK_REMOVALS_MAX && !budget.exhausted; i++) {
    if (i === culpritIndex || callAt[i]! >= k || retAt[i]! < p) continue;
    const e = entries[i]!;
    if (!model.isReadOnly?.(e.op.input, e.unknown ? undefined : e.op.output)) continue;
    attempts++;
    drop.add(i);
    if (!fails(budget, window(p, k, drop), any)) drop.delete(i);
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
