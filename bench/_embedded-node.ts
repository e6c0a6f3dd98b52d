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
    case "stop":
      await node?.stop();
      setImmediate(() => process.exit(0));
      return {};
  }
}

async function run(n: RaftNode, concurrency: number, ops: number, valueBytes: number, keySpace: number) {
  const value = new Uint8Array(valueBytes).fill(120);
  const enc = new TextEncoder();
  const keys = Array.from({ length: keySpace }, (_, i) => enc.encode(`key-${i}`));
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
          await n.propose(encodeKvCommand({ op: "put", key: keys[i % keySpace]!, value }));
        } catch {
          errors++;
        }
        latUs[i] = (performance.now() - s) * 1000;
      }
    }),
  );
  const elapsedMs = performance.now() - t0;
  const sorted = Array.from(latUs).sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! / 1000;
  return {
    opsPerSec: Math.round((ops / elapsedMs) * 1000),
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    errors,
    rssBytes: process.memoryUsage().rss,
  };
}
