/**
 * `npm run bench -- embedded [--ops-scale X] [--concurrency 1,256] [--sync-writes]`:
 * 3 nodes as 3 processes on loopback, file storage with fdatasync, 256 B writes
 * proposed on the leader (inside its process), after an unreported warm-up, at
 * concurrency 1, 64, 256, 512 and 1024. Reports ops/s, p50,
 * p99 and RSS per node, beside the raw cost of one fdatasync and one loopback
 * round trip measured in the same run (the single-writer floor), and the cost
 * of one fdatasync while three threads sync at once (as the three nodes do).
 */

import { type ChildProcess, fork } from "node:child_process";
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { printTable } from "./_table.ts";

const NODE_SCRIPT = fileURLToPath(new URL("./_embedded-node.ts", import.meta.url));

interface Reply {
  ok: boolean;
  error?: string;
  [k: string]: unknown;
}

function call(p: ChildProcess, msg: object, timeoutMs = 120_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply to ${JSON.stringify(msg)}`)), timeoutMs);
    p.once("message", (r) => {
      clearTimeout(timer);
      const reply = r as Reply;
      if (reply.ok) resolve(reply);
      else reject(new Error(reply.error));
    });
    p.send(msg);
  });
}

async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
    out.push((s.address() as { port: number }).port);
    await new Promise((r) => s.close(r));
  }
  return out;
}

/**
 * The same loop in three threads at once, one file each, as the three nodes
 * sync on this one disk: the mean time of one write + fdatasync then.
 */
async function concurrentFdatasyncMs(dir: string, n = 200): Promise<number> {
  const code = `
    const { openSync, writeSync, fdatasyncSync, closeSync } = require("node:fs");
    const { workerData, parentPort } = require("node:worker_threads");
    const fd = openSync(workerData.path, "w");
    const buf = Buffer.alloc(256, 1);
    const t0 = performance.now();
    for (let i = 0; i < workerData.n; i++) { writeSync(fd, buf); fdatasyncSync(fd); }
    closeSync(fd);
    parentPort.postMessage((performance.now() - t0) / workerData.n);`;
  const runs = [0, 1, 2].map(
    (k) =>
      new Promise<number>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { path: join(dir, `raw-${k}`), n } });
        w.once("message", resolve);
        w.once("error", reject);
      }),
  );
  const ms = await Promise.all(runs);
  return ms.reduce((a, b) => a + b, 0) / ms.length;
}

/** The floor of one durable write: a 256 B write + fdatasync on the same disk. */
function fdatasyncMs(dir: string, n = 200): number {
  const fd = openSync(join(dir, "raw"), "w");
  const buf = Buffer.alloc(256, 1);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    writeSync(fd, buf);
    fdatasyncSync(fd);
  }
  closeSync(fd);
  return (performance.now() - t0) / n;
}

async function loopbackRttMs(n = 500): Promise<number> {
  const server = createServer((s) => s.on("data", (d) => s.write(d)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const sock = connect((server.address() as { port: number }).port, "127.0.0.1");
  sock.setNoDelay(true);
  await new Promise((r) => sock.once("connect", r));
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await new Promise((r) => {
      sock.once("data", r);
      sock.write("x");
    });
  }
  const ms = (performance.now() - t0) / n;
  sock.destroy();
  server.close();
  return ms;
}

export async function main(args: string[]): Promise<void> {
  const i = args.indexOf("--ops-scale");
  const scale = i >= 0 ? Number(args[i + 1]) : 1;
  // --concurrency 1,256: only those rows.
  const c = args.indexOf("--concurrency");
  const only =
    c >= 0
      ? new Set(
          String(args[c + 1])
            .split(",")
            .map(Number),
        )
      : null;
  // --sync-writes: the runtime waits for each Ready's fsync before taking the next (for comparison).
  const asyncStorageWrites = !args.includes("--sync-writes");
  const dir = mkdtempSync(join(tmpdir(), "tsraft-bench-embedded-"));
  const children: ChildProcess[] = [];
  try {
    const syncMs = fdatasyncMs(dir);
    const sync3Ms = await concurrentFdatasyncMs(dir);
    const rttMs = await loopbackRttMs();
    const ports = await freePorts(3);
    const initialCluster = Object.fromEntries(ports.map((p, k) => [String(k + 1), `127.0.0.1:${p}`]));
    for (let k = 0; k < 3; k++) {
      // TSRAFT_BENCH_PROF_DIR=dir writes a CPU profile per node process (for finding hot spots).
      const prof = process.env.TSRAFT_BENCH_PROF_DIR;
      const execArgv = ["--import", "tsx", ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [])];
      children.push(fork(NODE_SCRIPT, [], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] }));
    }
    await Promise.all(
      children.map((c, k) =>
        call(c, {
          cmd: "start",
          config: {
            nodeId: k + 1,
            listen: `127.0.0.1:${ports[k]}`,
            dataDir: join(dir, `n${k + 1}`),
            initialCluster,
            raft: { tickMs: 100, asyncStorageWrites },
            snapshot: { policy: "entries", entries: 200_000 },
            limits: { maxPendingProposals: 100_000 },
          },
        }),
      ),
    );
    let leader: ChildProcess | undefined;
    for (let t = 0; t < 100 && !leader; t++) {
      for (const c of children) if ((await call(c, { cmd: "status" })).role === "leader") leader = c;
      if (!leader) await new Promise((r) => setTimeout(r, 50));
    }
    if (!leader) throw new Error("no leader");
    // Warm-up (not reported): the first thousands of writes run cold code (JIT, lazy compilation).
    for (const [concurrency, ops] of [
      [64, 20_000],
      [1, 1000],
    ] as const) {
      await call(leader, { cmd: "run", concurrency, ops, valueBytes: 256, keySpace: 10_000 });
    }
    const rows = [];
    for (const [concurrency, ops] of [
      [1, 2000],
      [64, 40_000],
      [256, 100_000],
      [512, 150_000],
      [1024, 200_000],
    ] as const) {
      if (only && !only.has(concurrency)) continue;
      const r = await call(leader, {
        cmd: "run",
        concurrency,
        ops: Math.round(ops * scale),
        valueBytes: 256,
        keySpace: 10_000,
      });
      const rss = await Promise.all(children.map((c) => call(c, { cmd: "status" })));
      rows.push({
        writes: asyncStorageWrites ? "async" : "sync",
        concurrency,
        ops: Math.round(ops * scale),
        opsPerSec: r.opsPerSec as number,
        p50Ms: r.p50Ms as number,
        p99Ms: r.p99Ms as number,
        errors: r.errors as number,
        rssMBPerNode: rss.map((s) => Math.round((s.rssBytes as number) / 1e6)).join("/"),
      });
    }
    printTable("embedded", rows);
    const floor = {
      fdatasyncMs: Number(syncMs.toFixed(3)),
      fdatasync3AtOnceMs: Number(sync3Ms.toFixed(3)),
      loopbackRttMs: Number(rttMs.toFixed(3)),
    };
    console.log(
      `single-writer floor: one fdatasync ${floor.fdatasyncMs} ms + one loopback round trip ${floor.loopbackRttMs} ms` +
        ` (one fdatasync while three threads sync at once, as the nodes do: ${floor.fdatasync3AtOnceMs} ms)`,
    );
    console.log(JSON.stringify({ bench: "embedded-floor", ...floor }));
    await Promise.all(children.map((c) => call(c, { cmd: "stop" }).catch(() => {})));
    await Promise.all(
      children.map(
        (c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once("exit", r) && setTimeout(r, 5000))),
      ),
    );
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}
