/**
 * Generates KV histories that are linearizable by construction: clients issue
 * operations with random latencies, each operation takes effect at a random
 * instant inside its interval, and outputs come from executing the operations
 * sequentially in the order of those instants. Used by tests and the checker
 * benchmark, and handy for users trying the checker on their own models.
 */

import { InvalidArgumentError } from "../../errors.ts";
import type { HistoryRecord, HistoryValue } from "../history.ts";
import type { Prng } from "../prng.ts";

export interface KvWorkloadOptions {
  readonly operations: number;
  readonly keys: number;
  readonly clients: number;
  /** Longest request latency, in time units (>= 1). Default 20. */
  readonly latencyMax?: number;
  /** Longest pause between a client's operations (>= 1). Default 5. */
  readonly thinkMax?: number;
  /** Fraction of operations that time out (outcome unknown; half of them took effect). Default 0. */
  readonly unknownRate?: number;
  /** Fraction of operations rejected outright (status "fail", no effect). Default 0. */
  readonly failRate?: number;
}

interface Planned {
  readonly client: number;
  readonly op: "get" | "put" | "delete" | "cas";
  readonly key: string;
  readonly input: HistoryValue;
  readonly call: number;
  readonly ret: number;
  /** The instant it takes effect; null when it never does. */
  readonly at: number | null;
  readonly status: "ok" | "fail" | "unknown";
}

export function generateKvHistory(prng: Prng, options: KvWorkloadOptions): HistoryRecord[] {
  const { operations, keys, clients } = options;
  const latencyMax = options.latencyMax ?? 20;
  const thinkMax = options.thinkMax ?? 5;
  const unknownRate = options.unknownRate ?? 0;
  const failRate = options.failRate ?? 0;
  if (!(operations >= 0 && keys >= 1 && clients >= 1 && latencyMax >= 1 && thinkMax >= 1)) {
    throw new InvalidArgumentError(
      "generateKvHistory: operations >= 0, keys, clients, latencyMax, thinkMax >= 1",
    );
  }
  const clientTime = new Array<number>(clients).fill(0);
  // Recently written values per key, so that cas has a fair chance to match.
  const recent = new Map<string, string[]>();
  const planned: Planned[] = [];
  for (let seq = 0; seq < operations; seq++) {
    let c = 0;
    for (let i = 1; i < clients; i++) if (clientTime[i]! < clientTime[c]!) c = i;
    const call = clientTime[c]! + 1 + prng.int(thinkMax);
    const ret = call + 1 + prng.int(latencyMax);
    const key = `k${prng.int(keys)}`;
    const value = `v${c}.${seq}`;
    const roll = prng.next();
    const op = roll < 0.4 ? "get" : roll < 0.7 ? "put" : roll < 0.9 ? "cas" : "delete";
    const history = recent.get(key) ?? [];
    let input: HistoryValue = null;
    if (op === "put") input = value;
    if (op === "cas") {
      const expected = history.length === 0 || prng.chance(0.1) ? null : prng.pick(history);
      input = { expected, new: value };
    }
    if (op === "put" || op === "cas") recent.set(key, [...history.slice(-3), value]);
    const fate = prng.next();
    let status: Planned["status"] = "ok";
    let at: number | null = call + prng.next() * (ret - call);
    if (fate < failRate) {
      status = "fail";
      at = null;
    } else if (fate < failRate + unknownRate) {
      status = "unknown";
      // A timed-out request may still take effect, even after the client gave up.
      at = prng.chance(0.5) ? call + prng.next() * 3 * (ret - call) : null;
    }
    planned.push({ client: c, op, key, input, call, ret, at, status });
    clientTime[c] = ret;
  }

  const outputs = new Array<HistoryValue>(planned.length).fill(null);
  const effective = planned.map((_, i) => i).filter((i) => planned[i]!.at !== null);
  effective.sort((a, b) => planned[a]!.at! - planned[b]!.at!);
  const store = new Map<string, string>();
  for (const i of effective) {
    const p = planned[i]!;
    const current = store.get(p.key) ?? null;
    if (p.op === "get") outputs[i] = current;
    else if (p.op === "put") store.set(p.key, p.input as string);
    else if (p.op === "delete") store.delete(p.key);
    else {
      const { expected, new: next } = p.input as { expected: string | null; new: string };
      const swapped = expected === current;
      if (swapped) store.set(p.key, next);
      outputs[i] = swapped;
    }
  }
  return planned
    .map((p, i) => ({
      client: p.client,
      op: p.op,
      key: p.key,
      input: p.input,
      output: p.status === "ok" ? outputs[i]! : null,
      call: p.call,
      return: p.status === "unknown" ? null : p.ret,
      status: p.status,
    }))
    .sort((a, b) => a.call - b.call);
}
