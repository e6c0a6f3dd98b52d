/**
 * The core search (Wing & Gong, with Lowe's memoization, as popularized by
 * Porcupine): walk a doubly linked list of call/return events; at each step
 * try to linearize a pending call whose predecessors are all linearized; on a
 * return event whose call is not yet linearized, backtrack. A memo of
 * (set of linearized operations, model state) prunes states already explored.
 *
 * Unknown-outcome operations get their return event at +infinity, so they are
 * never forced in; reaching such a return means every definite operation is
 * linearized and the rest may simply not have happened.
 */

import { invariant } from "../../errors.ts";
import type { Model, Operation } from "./model.ts";

/** An operation prepared for the search. */
export interface Entry<Input, Output> {
  readonly op: Operation<Input, Output>;
  /** Treated as unknown outcome (either recorded so, or weakened by the shrinker). */
  readonly unknown: boolean;
  readonly call: number;
  /** +Infinity when `unknown`. */
  readonly ret: number;
}

export type SearchOutcome = "ok" | "illegal" | "unknown";

export interface SearchResult {
  readonly outcome: SearchOutcome;
  /**
   * The furthest event position (in `sortEvents` order) the search got stuck
   * at: some linearization covered every return before it. On "illegal", the
   * event there is the first return that no explored order could get past,
   * which makes it the natural suspect for the counterexample.
   */
  readonly reach: number;
}

/**
 * A step budget shared by every search of one check, so a pathological
 * partition cannot starve the report of the others forever.
 */
export class Budget {
  #left: number;
  #spent = 0;
  readonly #now: (() => number) | undefined;
  readonly #deadline: number;
  #exhausted = false;

  constructor(maxSteps: number, now?: () => number, timeoutMs?: number) {
    invariant(maxSteps >= 0, "budget steps must be non-negative");
    this.#left = maxSteps;
    this.#now = timeoutMs === undefined ? undefined : now;
    this.#deadline = this.#now && timeoutMs !== undefined ? this.#now() + timeoutMs : Infinity;
  }

  get exhausted(): boolean {
    return this.#exhausted;
  }

  get spent(): number {
    return this.#spent;
  }

  /** Takes one step; false once the budget is gone. */
  take(): boolean {
    if (this.#left <= 0) {
      this.#exhausted = true;
      return false;
    }
    this.#left--;
    this.#spent++;
    // Reading a clock per step would dominate the search; every 1024 steps is
    // well under a millisecond.
    if (this.#now !== undefined && (this.#spent & 1023) === 0 && this.#now() > this.#deadline) {
      this.#left = 0;
      this.#exhausted = true;
      return false;
    }
    return true;
  }
}

/** FNV-1a over a string: the default state hash when a model gives none. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Per-operation random-looking 32-bit key for the incremental (Zobrist) hash of the linearized set. */
function opKey(i: number): number {
  let z = Math.imul(i + 0x7f4a7c15, 0x9e3779b1);
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

interface MemoEntry<State> {
  readonly bits: Uint32Array;
  readonly state: State;
}

/**
 * Orders events by time; at equal times calls come first, so operations that
 * merely touch (one returns at t, the other is called at t) count as
 * concurrent. That is the lenient reading: it never reports a false violation.
 */
export function sortEvents(entries: readonly Entry<unknown, unknown>[]): Int32Array {
  const nodes = Array.from({ length: entries.length * 2 }, (_, k) => k);
  const time = (node: number): number => {
    const e = entries[node >> 1]!;
    return (node & 1) === 0 ? e.call : e.ret;
  };
  nodes.sort((a, b) => time(a) - time(b) || (a & 1) - (b & 1) || a - b);
  return Int32Array.from(nodes);
}

/**
 * Decides whether `entries` (one partition) can be linearized starting from
 * any of `inits`. Node `2i` is the call of entry `i`, node `2i + 1` its return.
 */
export function searchLinearization<State, Input, Output>(
  model: Model<State, Input, Output>,
  entries: readonly Entry<Input, Output>[],
  inits: readonly State[],
  budget: Budget,
): SearchResult {
  const n = entries.length;
  if (n === 0) return { outcome: "ok", reach: 0 };
  invariant(inits.length > 0, "at least one initial state is needed");
  const order = sortEvents(entries);
  const position = new Int32Array(2 * n);
  for (let k = 0; k < order.length; k++) position[order[k]!] = k;
  let reach = 0;
  const equal = model.equal ?? Object.is;
  const hash = model.hash ?? ((s: State) => hashString(JSON.stringify(s) ?? "undefined"));
  const stepUnknown = model.stepUnknown;
  const head = 2 * n;
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  const words = (n + 31) >>> 5;
  const keys = new Uint32Array(n);
  for (let i = 0; i < n; i++) keys[i] = opKey(i);

  for (const init of inits) {
    // Rebuild the event list for each initial state (the previous search may
    // have stopped with operations lifted out of it).
    let last = head;
    prev[head] = -1;
    for (let k = 0; k < order.length; k++) {
      const node = order[k]!;
      next[last] = node;
      prev[node] = last;
      last = node;
    }
    next[last] = -1;

    const bits = new Uint32Array(words);
    let setHash = 0;
    const memo = new Map<number, MemoEntry<State>[]>();
    const stackNode = new Int32Array(n);
    const stackState: State[] = new Array<State>(n);
    const stackHash = new Uint32Array(n);
    let top = 0;
    let state = init;
    let node = next[head]!;
    let outcome: SearchOutcome | undefined;

    while (outcome === undefined) {
      if (node === -1) {
        outcome = "ok"; // every event lifted: all operations linearized
        break;
      }
      const i = node >> 1;
      const e = entries[i]!;
      if ((node & 1) === 0) {
        if (!budget.take()) return { outcome: "unknown", reach };
        let result: ReturnType<Model<State, Input, Output>["step"]>;
        if (e.unknown) {
          invariant(stepUnknown !== undefined, "model has no stepUnknown for an unknown-outcome operation");
          result = stepUnknown.call(model, state, e.op.input);
        } else {
          result = model.step(state, e.op.input, e.op.output as Output);
        }
        if (result.ok) {
          const nextSetHash = (setHash ^ keys[i]!) >>> 0;
          const key = (nextSetHash ^ Math.imul(hash(result.state) | 0, 0x9e3779b1)) >>> 0;
          if (memoAdd(memo, key, bits, i, result.state, equal)) {
            stackNode[top] = node;
            stackState[top] = state;
            stackHash[top] = setHash;
            top++;
            state = result.state;
            setHash = nextSetHash;
            bits[i >>> 5] |= 1 << (i & 31);
            lift(next, prev, node);
            node = next[head]!;
            continue;
          }
        }
        node = next[node]!;
      } else {
        // A return event: everything before it must already be linearized.
        if (e.ret === Infinity) {
          outcome = "ok";
          break;
        }
        if (position[node]! > reach) reach = position[node]!;
        if (top === 0) {
          outcome = "illegal";
          break;
        }
        top--;
        const back = stackNode[top]!;
        state = stackState[top]!;
        setHash = stackHash[top]!;
        const j = back >> 1;
        bits[j >>> 5] &= ~(1 << (j & 31));
        unlift(next, prev, back);
        node = next[back]!;
      }
    }
    if (outcome === "ok") return { outcome: "ok", reach: 2 * n };
  }
  return { outcome: "illegal", reach };
}

/** Adds (bits + i, state) to the memo; false when it was already there (explored). */
function memoAdd<State>(
  memo: Map<number, MemoEntry<State>[]>,
  key: number,
  bits: Uint32Array,
  i: number,
  state: State,
  equal: (a: State, b: State) => boolean,
): boolean {
  const wi = i >>> 5;
  const wbit = 1 << (i & 31);
  let bucket = memo.get(key);
  if (bucket !== undefined) {
    for (const m of bucket) {
      let same = true;
      for (let w = 0; w < bits.length; w++) {
        const word = w === wi ? bits[w]! | wbit : bits[w]!;
        if (m.bits[w] !== word) {
          same = false;
          break;
        }
      }
      if (same && equal(m.state, state)) return false;
    }
  } else {
    bucket = [];
    memo.set(key, bucket);
  }
  const copy = bits.slice();
  copy[wi] |= wbit;
  bucket.push({ bits: copy, state });
  return true;
}

/** Unlinks a call node and its return node (always `call + 1`). */
function lift(next: Int32Array, prev: Int32Array, call: number): void {
  unlink(next, prev, call);
  unlink(next, prev, call + 1);
}

/** Relinks what `lift` removed, in reverse order (dancing links). */
function unlift(next: Int32Array, prev: Int32Array, call: number): void {
  relink(next, prev, call + 1);
  relink(next, prev, call);
}

function unlink(next: Int32Array, prev: Int32Array, node: number): void {
  const p = prev[node]!;
  const q = next[node]!;
  next[p] = q;
  if (q !== -1) prev[q] = p;
}

function relink(next: Int32Array, prev: Int32Array, node: number): void {
  const p = prev[node]!;
  const q = next[node]!;
  next[p] = node;
  if (q !== -1) prev[q] = node;
}
