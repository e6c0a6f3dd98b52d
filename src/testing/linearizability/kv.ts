/**
 * The key-value model: get / put / delete / compare-and-swap over string keys,
 * partitioned per key (keys are independent registers, so checking each key
 * alone is both sound and much faster).
 */

import { InvalidArgumentError } from "../../errors.ts";
import type { HistoryRecord, HistoryValue } from "../history.ts";
import { check } from "./check.ts";
import type { CheckOptions, CheckResult, Model, Operation, Partition, StepResult } from "./model.ts";
import { hashString } from "./search.ts";

/** A stored value: text, or raw bytes (etcd values are bytes). */
export type KvValue = string | Uint8Array;

export type KvInput =
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "put"; readonly key: string; readonly value: KvValue }
  | { readonly op: "delete"; readonly key: string }
  /** Sets `value` iff the current value equals `expected` (null: the key is absent). */
  | { readonly op: "cas"; readonly key: string; readonly expected: KvValue | null; readonly value: KvValue };

/** get: the value or null (absent); put / delete: null; cas: whether it swapped. */
export type KvOutput = KvValue | boolean | null;

/**
 * The value of one key in canonical form, or null when absent. Bytes that are
 * valid UTF-8 equal the same text, because a client may write a string and
 * read it back as bytes; other bytes are tagged with a lone surrogate, which
 * UTF-8 text cannot contain, so they never collide with text.
 */
export type KvState = string | null;

const BYTES_TAG = "\uDFFF";
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const canonicalBytes = new WeakMap<Uint8Array, string>();

export function canonicalValue(v: KvValue): string {
  if (typeof v === "string") {
    // A string with a lone surrogate is not text UTF-8 can carry: what a client sends for it
    // has U+FFFD in its place (and so it can never equal tagged bytes).
    return /[\uD800-\uDFFF]/.test(v) ? Buffer.from(v, "utf8").toString("utf8") : v;
  }
  let c = canonicalBytes.get(v);
  if (c === undefined) {
    try {
      c = utf8.decode(v);
    } catch {
      c = BYTES_TAG + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
    }
    canonicalBytes.set(v, c);
  }
  return c;
}

function isValue(v: unknown): v is KvValue {
  return typeof v === "string" || v instanceof Uint8Array;
}

function canonicalOrNull(v: KvValue | null): KvState {
  return v === null ? null : canonicalValue(v);
}

const SAME: StepResult<KvState> = { ok: false };

function showValue(v: KvValue | null): string {
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  const hex = Buffer.from(v.buffer, v.byteOffset, Math.min(v.byteLength, 16)).toString("hex");
  return `0x${hex}${v.byteLength > 16 ? "…" : ""}`;
}

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => null,

  step(state, input, output) {
    switch (input.op) {
      case "get":
        if (output !== null && !isValue(output)) return SAME;
        return canonicalOrNull(output) === state ? { ok: true, state } : SAME;
      case "put":
        return { ok: true, state: canonicalValue(input.value) };
      case "delete":
        return { ok: true, state: null };
      case "cas": {
        const matches = canonicalOrNull(input.expected) === state;
        if (output === true) return matches ? { ok: true, state: canonicalValue(input.value) } : SAME;
        if (output === false) return matches ? SAME : { ok: true, state };
        return SAME;
      }
    }
  },

  stepUnknown(state, input) {
    switch (input.op) {
      case "get":
        return { ok: true, state };
      case "put":
        return { ok: true, state: canonicalValue(input.value) };
      case "delete":
        return { ok: true, state: null };
      case "cas":
        // A cas that did not match is a no-op, the same as not linearizing it.
        return canonicalOrNull(input.expected) === state
          ? { ok: true, state: canonicalValue(input.value) }
          : SAME;
    }
  },

  overwrites: (input) => input.op === "put" || input.op === "delete",

  isReadOnly: (input, output) => input.op === "get" || (input.op === "cas" && output === false),

  partition(operations) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of operations) {
      let list = byKey.get(op.input.key);
      if (list === undefined) {
        list = [];
        byKey.set(op.input.key, list);
      }
      list.push(op);
    }
    const parts: Partition<KvInput, KvOutput>[] = [];
    for (const [id, ops] of byKey) parts.push({ id, operations: ops });
    return parts;
  },

  possibleStates(operations) {
    // Only equality with values these operations mention matters, so every
    // other value behaves alike: one fresh value stands for all of them.
    const seen = new Set<string>();
    for (const { input, output } of operations) {
      if (input.op === "put") seen.add(canonicalValue(input.value));
      if (input.op === "cas") {
        seen.add(canonicalValue(input.value));
        if (input.expected !== null) seen.add(canonicalValue(input.expected));
      }
      if (input.op === "get" && isValue(output)) seen.add(canonicalValue(output));
    }
    let fresh = "\u0000other";
    while (seen.has(fresh)) fresh += "'";
    return [null, ...seen, fresh];
  },

  equal: (a, b) => a === b,
  hash: (s) => (s === null ? 0x5bd1e995 : hashString(s)),

  describeOperation(input, output) {
    const out = output === undefined ? "?" : typeof output === "boolean" ? String(output) : showValue(output);
    switch (input.op) {
      case "get":
        return `get() -> ${out}`;
      case "put":
        return `put(${showValue(input.value)})`;
      case "delete":
        return "delete()";
      case "cas":
        return `cas(${showValue(input.expected)} => ${showValue(input.value)}) -> ${out}`;
    }
  },

  describeState: (s) => (s === null ? "(key absent)" : JSON.stringify(s)),
};

function asValue(v: HistoryValue, what: string): KvValue {
  if (!isValue(v)) throw new InvalidArgumentError(`${what} must be a string or bytes`);
  return v;
}

function asValueOrNull(v: HistoryValue, what: string): KvValue | null {
  return v === null ? null : asValue(v, what);
}

/** Converts recorded KV operations (see history.ts for the conventions) into checker operations. */
export function kvOperations(records: readonly HistoryRecord[]): Operation<KvInput, KvOutput>[] {
  return records.map((r, i) => {
    const where = `record ${i} (${r.op} ${JSON.stringify(r.key)})`;
    const ok = r.status === "ok";
    let input: KvInput;
    let output: KvOutput | undefined;
    switch (r.op) {
      case "get":
        input = { op: "get", key: r.key };
        output = ok ? asValueOrNull(r.output, `${where}: output`) : undefined;
        break;
      case "put":
        input = { op: "put", key: r.key, value: asValue(r.input, `${where}: input`) };
        output = ok ? null : undefined;
        break;
      case "delete":
        input = { op: "delete", key: r.key };
        output = ok ? null : undefined;
        break;
      case "cas": {
        const x = r.input;
        if (x === null || typeof x !== "object" || x instanceof Uint8Array || Array.isArray(x)) {
          throw new InvalidArgumentError(`${where}: input must be {"expected": value | null, "new": value}`);
        }
        const o = x as { readonly [key: string]: HistoryValue };
        input = {
          op: "cas",
          key: r.key,
          expected: asValueOrNull(o.expected ?? null, `${where}: input.expected`),
          value: asValue(o.new ?? null, `${where}: input.new`),
        };
        if (ok && typeof r.output !== "boolean")
          throw new InvalidArgumentError(`${where}: output must be a boolean`);
        output = ok ? (r.output as boolean) : undefined;
        break;
      }
      default:
        throw new InvalidArgumentError(`${where}: the KV model knows get, put, delete and cas`);
    }
    return { client: r.client, input, output, call: r.call, return: r.return, status: r.status };
  });
}

/** Checks a recorded KV history (per-key partitions). */
export function checkKvHistory(
  records: readonly HistoryRecord[],
  options?: CheckOptions,
): CheckResult<KvInput, KvOutput> {
  return check(kvModel, kvOperations(records), options);
}
