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
  /** Entered right after an unknown overwrite (restricts the next step). */
  readonly afterBlind: boolean;
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
 *
 * Only definite operations live in the linked list. Unknown operations are
 * candidates too, once called, but they are tried after every definite
 * candidate of a configuration: exploring "not applied (yet)" first closes
 * the configurations that dominate the ones with the timeout applied (see
 * `memoAdd`), which keeps timeouts from multiplying the search.
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
  const unknowns: number[] = [];
  for (const node of order) if ((node & 1) === 0 && entries[node >> 1]!.unknown) unknowns.push(node >> 1);
  const unknownCallAt = Int32Array.from(unknowns, (i) => position[2 * i]!);
  const stepUnknown = model.stepUnknown;
  invariant(
    unknowns.length === 0 || stepUnknown !== undefined,
    "model has no stepUnknown for unknown outcomes",
  );
  let reach = 0;
  const equal = model.equal ?? Object.is;
  const hash = model.hash ?? ((s: State) => hashString(JSON.stringify(s) ?? "undefined"));
  const head = 2 * n;
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  const words = (n + 31) >>> 5;
  const keys = new Uint32Array(n);
  for (let i = 0; i < n; i++) keys[i] = opKey(i);
  const definite = new Uint32Array(words);
  for (let i = 0; i < n; i++) if (!entries[i]!.unknown) definite[i >>> 5] |= 1 << (i & 31);
  // Overwrites: after an unknown one, the next operation may not be another
  // overwrite. Any linearization can be put in that form by dropping the
  // unknown overwrite, since nothing observed its state; dropping is always
  // allowed for an unknown outcome. This stops chains of timed-out writes
  // from being explored in every order.
  const blind = Uint8Array.from(entries, (e) => (model.overwrites?.(e.op.input) ? 1 : 0));

  for (const init of inits) {
    // Rebuild the event list for each initial state (the previous search may
    // have stopped with operations lifted out of it).
    let last = head;
    prev[head] = -1;
    for (let k = 0; k < order.length; k++) {
      const node = order[k]!;
      if (entries[node >> 1]!.unknown) continue;
      next[last] = node;
      prev[node] = last;
      last = node;
    }
    next[last] = -1;

    const bits = new Uint32Array(words);
    let setHash = 0;
    const memo = new Map<number, MemoEntry<State>[]>();
    // A frame: what was applied (a definite call node, or -(slot + 1) for an
    // unknown operation) and what to restore when it is undone.
    const stackWhat = new Int32Array(n);
    const stackLimit = new Int32Array(n);
    const stackState: State[] = new Array<State>(n);
    const stackHash = new Uint32Array(n);
    let top = 0;
    let state = init;
    let node = next[head]!; // cursor over definite candidates
    let slot = -1; // >= 0: cursor over unknown candidates instead
    let limit = -1; // the first pending definite return while `slot` is in use
    let outcome: SearchOutcome | undefined;

    while (outcome === undefined) {
      let i: number;
      let what: number;
      if (slot < 0) {
        if (node === -1) {
          outcome = "ok"; // every definite operation linearized; the unknown rest may never have happened
          break;
        }
        if ((node & 1) === 1) {
          // The first pending return: no later call may go before it.
          if (position[node]! > reach) reach = position[node]!;
          limit = node;
          slot = 0;
          continue;
        }
        i = node >> 1;
        what = node;
      } else {
        const limitAt = position[limit]!;
        while (slot < unknowns.length && unknownCallAt[slot]! < limitAt && isSet(bits, unknowns[slot]!))
          slot++;
        if (slot === unknowns.length || unknownCallAt[slot]! >= limitAt) {
          if (top === 0) {
            outcome = "illegal";
            break;
          }
          top--;
          state = stackState[top]!;
          setHash = stackHash[top]!;
          const back = stackWhat[top]!;
          if (back >= 0) {
            const j = back >> 1;
            bits[j >>> 5] &= ~(1 << (j & 31));
            unlift(next, prev, back);
            node = next[back]!;
            slot = -1;
          } else {
            const j = unknowns[-back - 1]!;
            bits[j >>> 5] &= ~(1 << (j & 31));
            slot = -back;
            limit = stackLimit[top]!;
          }
          continue;
        }
        i = unknowns[slot]!;
        what = -(slot + 1);
      }

      const afterBlind =
        top > 0 && stackWhat[top - 1]! < 0 && blind[unknowns[-stackWhat[top - 1]! - 1]!] === 1;
      if (afterBlind && blind[i] === 1) {
        if (what >= 0) node = next[node]!;
        else slot++;
        continue;
      }
      if (!budget.take()) return { outcome: "unknown", reach };
      const e = entries[i]!;
      const result = e.unknown
        ? stepUnknown!.call(model, state, e.op.input)
        : model.step(state, e.op.input, e.op.output as Output);
      if (result.ok) {
        // The memo key covers definite operations and the state only, so
        // configurations differing just in applied unknown operations share
        // a bucket and can be compared for dominance.
        const nextSetHash = e.unknown ? setHash : (setHash ^ keys[i]!) >>> 0;
        const nextBlind = e.unknown && blind[i] === 1;
        const key =
          (nextSetHash ^ Math.imul(hash(result.state) | 0, 0x9e3779b1) ^ (nextBlind ? 0x2545f491 : 0)) >>> 0;
        if (memoAdd(memo, key, bits, definite, i, result.state, nextBlind, equal)) {
          stackWhat[top] = what;
          stackLimit[top] = limit;
          stackState[top] = state;
          stackHash[top] = setHash;
          top++;
          state = result.state;
          setHash = nextSetHash;
          bits[i >>> 5] |= 1 << (i & 31);
          if (what >= 0) lift(next, prev, what);
          node = next[head]!;
          slot = -1;
          continue;
        }
      }
      if (what >= 0) node = next[node]!;
      else slot++;
    }
    if (outcome === "ok") return { outcome: "ok", reach: 2 * n };
  }
  return { outcome: "illegal", reach };
}

function isSet(bits: Uint32Array, i: number): boolean {
  return (bits[i >>> 5]! & (1 << (i & 31))) !== 0;
}

/**
 * Records the configuration (bits + i, state) about to be entered; false when
 * it need not be explored: an entered configuration with the same definite
 * operations, state and overwrite flag had a subset of the unknown operations
 * applied (equal sets included). That one dominates: an unknown operation not
 * applied there can still be applied later or never, and which calls are
 * available depends only on the definite operations (unknown returns sit at
 * +infinity), so every completion from here is one from there. It was
 * entered before, so its own exploration covers them. (Induction on the
 * length of the shortest completion shows nothing is lost even while the
 * dominating configuration is still on the stack.) Without this, every
 * subset of timed-out writes would be a distinct configuration.
 */
function memoAdd<State>(
  memo: Map<number, MemoEntry<State>[]>,
  key: number,
  bits: Uint32Array,
  definite: Uint32Array,
  i: number,
  state: State,
  afterBlind: boolean,
  equal: (a: State, b: State) => boolean,
): boolean {
  const wi = i >>> 5;
  const wbit = 1 << (i & 31);
  let bucket = memo.get(key);
  if (bucket !== undefined) {
    for (const m of bucket) {
      if (m.afterBlind !== afterBlind) continue;
      let dominated = true; // m.bits within the candidate, differing only in unknown operations
      for (let w = 0; w < bits.length; w++) {
        const cur = w === wi ? bits[w]! | wbit : bits[w]!;
        const old = m.bits[w]!;
        if (old !== cur && ((old & ~cur) !== 0 || (cur & ~old & definite[w]!) !== 0)) {
          dominated = false;
          break;
        }
      }
      if (dominated && equal(m.state, state)) return false;
    }
  } else {
    bucket = [];
    memo.set(key, bucket);
  }
  const copy = bits.slice();
  copy[wi] |= wbit;
  bucket.push({ bits: copy, state, afterBlind });
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
