/**
 * One node of the embedded benchmark (forked by bench/embedded.ts). It runs a
 * tsraft node with file storage and, when asked over IPC, proposes 256 B
 * writes on itself at a given concurrency, reporting throughput and latency.
 */

import { performance } from "node:perf_hooks";
import { NodeBuilder } from "../src/node/builder.ts";
import type { NodeConfigInput } from "../src/node/config.ts";
import type { RaftNode } from "../src/node/raft-node.ts";
import { encodeKvCommand } from "../src/storage/kv-command.ts";

type Cmd =
  | { cmd: "start"; config: NodeConfigInput }
  | { cmd: "status" }
  | { cmd: "run"; concurrency: number; ops: number; valueBytes: number; keySpace: number }
  | {
      cmd: "runRate";
      ratePerSec: number;
      ops: number;
      valueBytes: number;
      keySpace: number;
      maxInFlight: number;
    }
  | { cmd: "stop" };

let node: RaftNode | null = null;

/** CPU time this process has used (all threads: the thread pool's writes and syncs, GC helpers). */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

process.on("message", (raw) => {
  void handle(raw as Cmd).then(
    (r) => process.send?.({ ok: true, ...r }),
    (e: unknown) => process.send?.({ ok: false, error: String(e) }),
  );
});
process.on("disconnect", () => process.exit(0));

async function handle(m: Cmd): Promise<Record<string, unknown>> {
  switch (m.cmd) {
    case "start": {
      node = new NodeBuilder(m.config).build();
      await node.startRpcServer();
      await node.ready();
      return {};
    }
    case "status":
      return { role: node!.status().role, rssBytes: process.memoryUsage().rss, cpuUs: cpuUs() };
    case "run":
      return run(node!, m.concurrency, m.ops, m.valueBytes, m.keySpace);
    case "runRate":
      return runRate(node!, m.ratePerSec, m.ops, m.valueBytes, m.keySpace, m.maxInFlight);
    case "stop":
      await node?.stop();
      setImmediate(() => process.exit(0));
      return {};
  }
}

/** Write `i`: a put of `valueBytes` bytes to one of `keySpace` keys, in turn. */
function putCommands(valueBytes: number, keySpace: number): (i: number) => Uint8Array {
  const value = new Uint8Array(valueBytes).fill(120);
  const enc = new TextEncoder();
  const keys = Array.from({ length: keySpace }, (_, i) => enc.encode(`key-${i}`));
  return (i) => encodeKvCommand({ op: "put", key: keys[i % keySpace]!, value });
}

function quantiles(latUs: Float64Array): { p50Ms: number; p99Ms: number } {
  const sorted = Float64Array.from(latUs).sort();
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! / 1000;
  return { p50Ms: q(0.5), p99Ms: q(0.99) };
}

/**
 * Open loop: write i is due at start + i / rate, whether or not earlier ones
 * have finished, and its latency counts from when it was due (so a stall
 * delays, and is charged to, every write due during it: no coordinated
 * omission). Writes that would exceed `maxInFlight` are not sent and count
 * as errors with infinite latency.
 */
function runRate(
  n: RaftNode,
  ratePerSec: number,
  ops: number,
  valueBytes: number,
  keySpace: number,
  maxInFlight: number,
): Promise<Record<string, unknown>> {
  const command = putCommands(valueBytes, keySpace);
  const latUs = new Float64Array(ops);
  const periodMs = 1000 / ratePerSec;
  let issued = 0;
  let settled = 0;
  let inFlight = 0;
  let peakInFlight = 0;
  let errors = 0;
  let lastDoneMs = 0;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const finish = () => {
      resolve({
        opsPerSec: Math.round(((ops - errors) / (lastDoneMs - t0)) * 1000),
        ...quantiles(latUs),
        errors,
        peakInFlight,
        rssBytes: process.memoryUsage().rss,
      });
    };
    const settle = (i: number, due: number, ok: boolean) => {
      lastDoneMs = performance.now();
      latUs[i] = (lastDoneMs - due) * 1000;
      if (!ok) errors++;
      inFlight--;
      if (++settled === ops) finish();
    };
    const pump = () => {
      const due = Math.min(ops, Math.floor((performance.now() - t0) / periodMs) + 1);
      while (issued < due) {
        const i = issued++;
        const dueAt = t0 + i * periodMs;
        if (inFlight >= maxInFlight) {
          latUs[i] = Number.POSITIVE_INFINITY;
          errors++;
          if (++settled === ops) finish();
          continue;
        }
        inFlight++;
        if (inFlight > peakInFlight) peakInFlight = inFlight;
        n.propose(command(i)).then(
          () => settle(i, dueAt, true),
          () => settle(i, dueAt, false),
        );
      }
      if (issued < ops) setTimeout(pump, Math.max(0, t0 + issued * periodMs - performance.now()));
    };
    pump();
  });
}

async function run(n: RaftNode, concurrency: number, ops: number, valueBytes: number, keySpace: number) {
  const command = putCommands(valueBytes, keySpace);
  const latUs = new Float64Array(ops);
  let next = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= ops) return;
        const s = performance.now();
        try {
          await n.propose(command(i));
        } catch {
          errors++;
        }
        latUs[i] = (performance.now() - s) * 1000;
      }
    }),
  );
  const elapsedMs = performance.now() - t0;
  return {
    opsPerSec: Math.round((ops / elapsedMs) * 1000),
    ...quantiles(latUs),
    errors,
    rssBytes: process.memoryUsage().rss,
  };
}
