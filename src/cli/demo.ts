/**
 * `tsraft demo` (`npm start`): a local 3-node cluster as 3 processes with
 * file storage under ./data, a short replicated write workload, then live
 * status (leader, term, commit / applied per node) until Ctrl-C, which stops
 * every node cleanly. Re-running it recovers the data of the previous run.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError } from "../errors.ts";
import { isDuplicateSignal } from "./signals.ts";

export interface DemoOptions {
  readonly dataDir: string;
  readonly writes: string;
  readonly once?: boolean;
  readonly basePort?: number;
}

interface Child {
  readonly id: number;
  readonly proc: ChildProcess;
  http: string;
  /** Resolves once the node printed its "ready" line (its signal handlers are in place by then). */
  ready: Promise<void>;
}

const CLI = join(dirname(fileURLToPath(import.meta.url)), "tsraft.ts");

export async function runDemo(opts: DemoOptions): Promise<void> {
  const base = opts.basePort ?? Number(process.env.TSRAFT_DEMO_BASE_PORT ?? 7101);
  const writes = Number(opts.writes);
  if (!Number.isInteger(writes) || writes < 1)
    throw new InvalidArgumentError(`--writes must be a positive integer, got "${opts.writes}"`);
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const ids = [1, 2, 3];
  const initialCluster = ids.map((id) => `${id}=127.0.0.1:${base + id - 1}`).join(",");
  // Filled once the signal handlers are in place: a Ctrl-C at any moment finds them.
  const children: Child[] = [];
  let stopping = false;
  let firstSignalAt = 0;
  const stopAll = async (code: number) => {
    if (stopping) {
      if (isDuplicateSignal(firstSignalAt)) return;
      // A second signal: each node's second signal makes it exit at once (what it
      // acknowledged is on disk already).
      console.log("second signal: stopping the nodes at once");
      for (const c of children) if (running(c.proc)) c.proc.kill("SIGTERM");
      process.exit(130);
    }
    stopping = true;
    firstSignalAt = Date.now();
    console.log("\nstopping the cluster (graceful: the leader hands over first; Ctrl-C again to force)...");
    // One at a time, the leader first: each hands leadership to a node still running.
    const order = [];
    for (const c of children) {
      // A node still starting has no SIGTERM handler yet: the signal would kill it outright.
      // It is ready within seconds (or exits); Ctrl-C again forces.
      await Promise.race([c.ready.catch(() => {}), exited(c.proc)]);
      order.push({ c, leader: (await status(c))?.role === "leader" });
    }
    order.sort((a, b) => Number(b.leader) - Number(a.leader));
    const failed: string[] = [];
    for (const { c } of order) {
      if (running(c.proc)) c.proc.kill("SIGTERM");
      const exit = await exited(c.proc);
      if (exit !== 0) failed.push(`node ${c.id} exited with ${exit}`);
    }
    if (failed.length === 0)
      console.log("all nodes stopped cleanly; run `npm start` again to recover the same data.");
    else console.log(`stopped, not all cleanly: ${failed.join(", ")} (logs in ${dataDir})`);
    process.exit(failed.length === 0 ? code : code || 1);
  };
  process.on("SIGINT", () => void stopAll(0));
  process.on("SIGTERM", () => void stopAll(0));
  console.log(`tsraft demo: 3 nodes, data in ${dataDir}`);
  children.push(...ids.map((id) => startNode(id, base, dataDir, initialCluster)));
  for (const c of children) {
    c.proc.once("exit", (code) => {
      if (!stopping) {
        console.error(
          `node ${c.id} exited unexpectedly (code ${code}); see its log in ${dataDir}/node-${c.id}.log`,
        );
        void stopAll(1);
      }
    });
  }
  await Promise.all(children.map((c) => c.ready));
  for (const c of children)
    console.log(`  node ${c.id}: peer 127.0.0.1:${base + c.id - 1}, HTTP http://${c.http}`);

  const t0 = Date.now();
  const leader = await findLeader(children);
  console.log(`\nleader is node ${leader.id}; writing ${writes} keys through it (concurrency 8)...`);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < writes) {
        const i = next++;
        await httpPut(children, leader, `demo-${i}`, `value-${i}-${new Date().toISOString()}`);
      }
    }),
  );
  const ms = Date.now() - t0;
  console.log(`${writes} durable, replicated writes in ${ms} ms`);
  for (const c of children) {
    const r = await fetch(`http://${c.http}/kv/demo-${writes - 1}?consistency=linearizable`);
    console.log(
      `  node ${c.id} reads demo-${writes - 1} (linearizable): ${r.status === 200 ? await r.text() : r.status}`,
    );
  }
  console.log("\ntry it:");
  console.log(`  curl -X PUT --data hello http://${leader.http}/kv/greeting`);
  console.log(`  curl http://${children[0]!.http}/kv/greeting`);
  console.log(`  curl http://${children[0]!.http}/status`);
  if (opts.once) return stopAll(0);
  console.log("\nlive status (Ctrl-C stops the cluster):");
  for (;;) {
    const rows = await Promise.all(children.map((c) => status(c)));
    console.log(
      rows
        .map((s, i) =>
          s
            ? `node ${s.id}: ${String(s.role).padEnd(9)} term ${s.term} leader ${s.leader} commit ${s.commit} applied ${s.applied}`
            : `node ${children[i]!.id}: down`,
        )
        .join(" | "),
    );
    await sleep(1000);
  }
}

function startNode(id: number, base: number, dataDir: string, initialCluster: string): Child {
  const args = [
    "--import",
    // Resolved from here, not from the working directory: the demo runs from anywhere.
    import.meta.resolve("tsx"),
    CLI,
    "node",
    "--id",
    String(id),
    "--listen",
    `127.0.0.1:${base + id - 1}`,
    "--http",
    `127.0.0.1:${base + 100 + id - 1}`,
    "--data-dir",
    join(dataDir, `node-${id}`),
    "--initial-cluster",
    initialCluster,
    "--exit-with-parent",
  ];
  const proc = spawn(process.execPath, args, {
    // A process group of its own: a terminal's Ctrl-C reaches the demo only, which then stops
    // the nodes in order. If the demo dies, the nodes see stdin close (--exit-with-parent).
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, TSRAFT_LOG_LEVEL: "info" },
  });
  // Logs go to a file per node; the terminal shows the demo's own output.
  const log = join(dataDir, `node-${id}.log`);
  import("node:fs").then(({ createWriteStream }) =>
    proc.stderr?.pipe(createWriteStream(log, { flags: "a" })),
  );
  const child: Child = { id, proc, http: "", ready: Promise.resolve() };
  child.ready = waitReady(child);
  // Awaited by the startup and by stopAll; a node that never gets ready fails the startup.
  child.ready.catch(() => {});
  return child;
}

function waitReady(c: Child): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const rl = createInterface({ input: c.proc.stdout! });
    const timer = setTimeout(() => reject(new Error(`node ${c.id} not ready in 30 s`)), 30_000);
    rl.on("line", (line) => {
      try {
        const ev = JSON.parse(line) as { event?: string; http?: string };
        if (ev.event === "ready" && ev.http) {
          c.http = ev.http;
          clearTimeout(timer);
          resolvePromise();
        }
      } catch {}
    });
  });
}

async function status(c: Child): Promise<Record<string, unknown> | null> {
  try {
    const r = await fetch(`http://${c.http}/status`, { signal: AbortSignal.timeout(1000) });
    return (await r.json()) as Record<string, unknown>;
  } catch {
    return null;
  }
}

async function findLeader(children: readonly Child[]): Promise<Child> {
  for (let i = 0; i < 200; i++) {
    for (const c of children) {
      const s = await status(c);
      if (s?.role === "leader") return c;
    }
    await sleep(50);
  }
  throw new Error("no leader elected");
}

/** PUT to any node, following "not leader" (421) answers to the leader. */
async function httpPut(children: readonly Child[], first: Child, key: string, value: string): Promise<void> {
  let target = first;
  for (let attempt = 0; attempt < 50; attempt++) {
    const r = await fetch(`http://${target.http}/kv/${key}`, { method: "PUT", body: value }).catch(
      () => null,
    );
    if (r?.status === 200) {
      await r.arrayBuffer();
      return;
    }
    const body = r ? ((await r.json().catch(() => ({}))) as { leaderId?: number }) : {};
    const leader = children.find((c) => c.id === body.leaderId);
    if (leader) target = leader;
    else await sleep(50);
  }
  throw new Error(`write of ${key} failed`);
}

function running(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/** Resolves with the exit code, or the signal that ended the process. */
function exited(p: ChildProcess): Promise<number | string> {
  if (!running(p)) return Promise.resolve(p.exitCode ?? p.signalCode ?? "unknown");
  return new Promise((r) => p.once("exit", (code, signal) => r(code ?? signal ?? "unknown")));
}
