/**
 * The types a linearizability check is written in: a sequential specification
 * (`Model`) and the concurrent operations observed by clients (`Operation`).
 */

/** How an operation ended, from the client's point of view. */
export type OperationStatus =
  /** Completed: it took effect exactly once, somewhere between `call` and `return`, with `output`. */
  | "ok"
  /** Definitely did not take effect (e.g. rejected before proposing). Excluded from checking. */
  | "fail"
  /** Outcome unknown (timeout, lost connection): it may or may not have taken effect, at any time after `call`. */
  | "unknown";

/** One client operation, as observed from outside the system. */
export interface Operation<Input, Output> {
  /** Who issued it; used only for rendering counterexamples. */
  readonly client: number | string;
  readonly input: Input;
  /** The observed output; meaningful only when `status` is "ok". */
  readonly output: Output | undefined;
  /** Invocation time. Any unit, as long as all operations of a history share the clock. */
  readonly call: number;
  /** Response time; `null` for "unknown" operations (treated as +infinity). */
  readonly return: number | null;
  readonly status: OperationStatus;
}

/** The result of applying one operation to a model state. */
export type StepResult<State> = { readonly ok: true; readonly state: State } | { readonly ok: false };

/** An independent slice of a history (e.g. one key), checked on its own. */
export interface Partition<Input, Output> {
  /** Names the slice in results and messages (e.g. the key). */
  readonly id: string;
  readonly operations: readonly Operation<Input, Output>[];
}

/**
 * A sequential specification. States must be treated as immutable values:
 * the checker keeps old states on its backtracking stack and in its memo.
 */
export interface Model<State, Input, Output> {
  /** The state before any operation. */
  init(): State;
  /**
   * Applies `input` to `state`; `ok` is false when the sequential object could
   * not have produced `output`. Must be deterministic.
   */
  step(state: State, input: Input, output: Output): StepResult<State>;
  /**
   * Applies an operation whose output was never seen (status "unknown"): the
   * state it leaves had it taken effect. Required when a history contains
   * unknown operations that are not read-only. Returning `{ ok: false }` means
   * "could only have been a no-op here", which the checker already covers by
   * leaving the operation out.
   */
  stepUnknown?(state: State, input: Input): StepResult<State>;
  /**
   * True when the operation, with this outcome (`undefined` = unknown), cannot
   * change any state. Lets the checker drop unknown reads outright and lets
   * counterexample shrinking remove reads without losing soundness.
   */
  isReadOnly?(input: Input, output: Output | undefined): boolean;
  /**
   * True when the operation succeeds from every state and leaves the same
   * state whatever the state was (a blind write: put, delete). Optional; it
   * lets the search skip orders of timed-out writes that nothing observed,
   * which otherwise make refuting a history exponential in the timeouts.
   */
  overwrites?(input: Input): boolean;
  /**
   * Splits a history into independent parts (P-compositionality: a history is
   * linearizable iff each part is). Without it the history is one partition.
   */
  partition?(operations: readonly Operation<Input, Output>[]): readonly Partition<Input, Output>[];
  /**
   * Every state the object could be in before `operations`, up to equivalence
   * for these operations. Lets the counterexample shrinker cut old operations
   * away while keeping the shown sub-history a genuine witness; optional.
   */
  possibleStates?(operations: readonly Operation<Input, Output>[]): readonly State[];
  /** State equality for the memo; defaults to `Object.is`. */
  equal?(a: State, b: State): boolean;
  /** A 32-bit hash consistent with `equal`; defaults to hashing `JSON.stringify(state)`. */
  hash?(state: State): number;
  /** Renders an operation for counterexamples, e.g. `put("a")` or `get() -> "a"`. */
  describeOperation?(input: Input, output: Output | undefined): string;
  describeState?(state: State): string;
}

/** An operation as shown in a counterexample. */
export interface CounterexampleOperation<Input, Output> {
  /** The original operation object from the checked history. */
  readonly operation: Operation<Input, Output>;
  /**
   * True when the shrinker treated this "ok" operation as unknown outcome
   * (it straddles a cut), which only ever makes the sub-history easier to linearize.
   */
  readonly weakened: boolean;
}

/** A small non-linearizable sub-history of one partition. */
export interface Counterexample<Input, Output> {
  /** Operations of the sub-history, by call time. */
  readonly operations: readonly CounterexampleOperation<Input, Output>[];
  /** The operation whose completion made the history non-linearizable. */
  readonly culprit: Operation<Input, Output>;
  /**
   * "init": the sub-history fails from the model's initial state; "any": it
   * fails from every possible state (older operations were cut away).
   */
  readonly from: "init" | "any";
  /** Human-readable rendering (a timeline, one line per operation). */
  readonly rendering: string;
}

export type CheckResult<Input, Output> =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** The id of the partition (for the KV model: the key) that is not linearizable. */
      readonly partition: string;
      readonly counterexample: Counterexample<Input, Output>;
    }
  | {
      readonly ok: "unknown";
      /** Partitions the budget ran out on (none of the others failed). */
      readonly undecided: readonly string[];
    };

export interface CheckOptions {
  /**
   * Upper bound on model steps for the whole check (all partitions, each
   * taking at most its share of what is left); past it the result is
   * "unknown" for the partitions it cut short. Default 50,000,000.
   */
  readonly maxSteps?: number;
  /** Wall-clock budget; needs `now`, since the checker reads no clock itself. */
  readonly timeoutMs?: number;
  /** A monotonic millisecond clock (e.g. `performance.now`), used only with `timeoutMs`. */
  readonly now?: () => number;
  /** Build a shrunk counterexample on failure (default true). */
  readonly counterexample?: boolean;
  /** Model-step budget for each phase of shrinking a counterexample. Default 5,000,000. */
  readonly shrinkMaxSteps?: number;
}
