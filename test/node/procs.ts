/**
 * A harness for runtime tests with real processes: each node is a
 * `tsraft node` child on loopback with file storage, started with
 * `--exit-with-parent` (a test runner that dies takes its nodes with it),
 * killed with SIGKILL or SIGTERM, and restarted on the same data dir and ports.
 * An HTTP client follows 421 answers to the leader.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePorts } from "./helpers.ts";

const CLI = fileURLToPath(new URL("../../src/cli/tsraft.ts", import.meta.url));

/** Fast timers for processes, as TSRAFT_* variables (tick 20 ms, election 200-400 ms). */
export const FAST_ENV: Readonly<Record<string, string>> = {
  TSRAFT_RAFT_TICK_MS: "20",
  TSRAFT_RAFT_ELECTION_TICKS: "10",
  TSRAFT_RAFT_HEARTBEAT_TICKS: "1",
  TSRAFT_LIMITS_READY_TIMEOUT_MS: "20000",
  TSRAFT_LIMITS_PROPOSAL_TIMEOUT_MS: "5000",
  TSRAFT_LIMITS_SHUTDOWN_TIMEOUT_MS: "3000",
  TSRAFT_MEMBERSHIP_PROMOTE_AFTER_MS: "200",
};

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [k: string]: unknown;
}

export interface ProcOptions {
  readonly id: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  readonly initialCluster?: string;
  readonly join?: string;
  readonly clusterId?: string;
  readonly config?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Wait for the "ready" line (default true). */
  readonly waitReady?: boolean;
}

export class NodeProc {
  readonly id: number;
  readonly opts: ProcOptions;
  child: ChildProcess | null = null;
  /** Every log line of every incarnation, parsed. */
  readonly logs: LogLine[] = [];
  /** Raw stderr lines that were not JSON (crashes, stack traces). */
  readonly rawErr: string[] = [];
  private exitP: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  starts = 0;

  constructor(opts: ProcOptions) {
    this.id = opts.id;
    this.opts = opts;
  }

  get http(): string {
    return `127.0.0.1:${this.opts.httpPort}`;
  }
  get peer(): string {
    return `127.0.0.1:${this.opts.peerPort}`;
  }
  get alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Spawns the process; resolves once it printed its ready line (a leader is known). */
  async start(timeoutMs = 20_000): Promise<void> {
    if (this.alive) throw new Error(`node ${this.id} is already running`);
    const o = this.opts;
    const args = [
      "--import",
      "tsx",
      CLI,
      "node",
      "--id",
      String(o.id),
      "--listen",
      this.peer,
      "--http",
      this.http,
      "--data-dir",
      o.dataDir,
      "--exit-with-parent",
    ];
    if (o.initialCluster) args.push("--initial-cluster", o.initialCluster);
    if (o.join) args.push("--join", o.join);
    if (o.clusterId) args.push("--cluster-id", o.clusterId);
    if (o.config) args.push("--config", o.config);
    const env = { ...process.env, ...FAST_ENV, TSRAFT_LOG_LEVEL: "info", ...o.env };
    const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "pipe"], env });
    this.child = child;
    this.starts++;
    const incarnation = this.starts;
    this.exitP = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    createInterface({ input: child.stderr! }).on("line", (line) => {
      try {
        const v = JSON.parse(line) as LogLine;
        this.logs.push({ ...v, incarnation });
      } catch {
        this.rawErr.push(line);
      }
    });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`node ${o.id} not ready in ${timeoutMs} ms; stderr: ${this.tail()}`)),
        timeoutMs,
      );
      createInterface({ input: child.stdout! }).on("line", (line) => {
        try {
          const ev = JSON.parse(line) as { event?: string };
          if (ev.event === "ready") {
            clearTimeout(timer);
            resolve();
          }
        } catch {}
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`node ${o.id} exited before ready (${code ?? signal}); stderr: ${this.tail()}`));
      });
    });
    if (o.waitReady === false) {
      ready.catch(() => {});
      return;
    }
    await ready;
  }

  /** The last lines of stderr, for failure messages. */
  tail(n = 15): string {
    const lines = this.logs.slice(-n).map((l) => `${l.msg} ${JSON.stringify(l)}`);
    return [...lines, ...this.rawErr.slice(-n)].join("\n");
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `timeoutMs`). */
  async kill(
    signal: NodeJS.Signals = "SIGKILL",
    timeoutMs = 10_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    if (!child || !this.exitP) throw new Error(`node ${this.id} was never started`);
    if (this.alive) child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    try {
      return await this.exitP;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with the exit once the process exits by itself. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exitP) throw new Error(`node ${this.id} was never started`);
    return this.exitP;
  }

  /** Log lines whose message contains `text` (from any incarnation). */
  logged(text: string): LogLine[] {
    return this.logs.filter((l) => typeof l.msg === "string" && l.msg.includes(text));
  }
}

/** The JSON the HTTP API answers with (the fields the tests read). */
export interface ApiBody {
  readonly code?: string;
  readonly message?: string;
  readonly leaderId?: number;
  readonly leaderPeerAddress?: string;
  readonly leader?: number;
  readonly index?: number;
  readonly confState?: { readonly voters: number[]; readonly learners: number[] };
}

export interface Status {
  id: number;
  role: string;
  term: number;
  leader: number;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  snapshotIndex: number;
  members: { id: number; address: string; role: "voter" | "learner"; match?: number }[];
}

/** A set of node processes on one temp dir, and an HTTP client over them. */
export class ProcCluster {
  readonly dir: string;
  readonly procs = new Map<number, NodeProc>();
  /** Set by killAll: client loops give up at once instead of retrying until their deadline. */
  closed = false;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates (does not start) `n` founding members 1..n on fresh loopback ports. */
  async create(n: number, extra: Partial<ProcOptions> = {}): Promise<NodeProc[]> {
    const ports = await freePorts(2 * n);
    const initialCluster = Array.from({ length: n }, (_, i) => `${i + 1}=127.0.0.1:${ports[2 * i]}`).join(
      ",",
    );
    const out: NodeProc[] = [];
    for (let i = 0; i < n; i++) {
      out.push(
        this.add({
          id: i + 1,
          peerPort: ports[2 * i]!,
          httpPort: ports[2 * i + 1]!,
          dataDir: join(this.dir, `n${i + 1}`),
          initialCluster,
          ...extra,
        }),
      );
    }
    return out;
  }

  add(opts: ProcOptions): NodeProc {
    mkdirSync(this.dir, { recursive: true });
    const p = new NodeProc(opts);
    this.procs.set(opts.id, p);
    return p;
  }

  /** Writes a JSON config file under the cluster dir and returns its path. */
  configFile(name: string, config: object): string {
    mkdirSync(this.dir, { recursive: true });
    const path = join(this.dir, name);
    writeFileSync(path, JSON.stringify(config));
    return path;
  }

  node(id: number): NodeProc {
    const p = this.procs.get(id);
    if (!p) throw new Error(`no node ${id}`);
    return p;
  }

  alive(): NodeProc[] {
    return [...this.procs.values()].filter((p) => p.alive);
  }

  /** Kills every process still running (for `after` hooks; never throws). */
  async killAll(): Promise<void> {
    this.closed = true;
    await Promise.all(
      [...this.procs.values()].filter((p) => p.alive).map((p) => p.kill("SIGKILL").catch(() => {})),
    );
  }

  async status(p: NodeProc): Promise<Status | null> {
    try {
      const r = await fetch(`http://${p.http}/status`, { signal: AbortSignal.timeout(2000) });
      if (r.status !== 200) return null;
      return (await r.json()) as Status;
    } catch {
      return null;
    }
  }

  /** The node every live member agrees leads (all in the same term), or null. */
  async agreedLeader(among: readonly NodeProc[] = this.alive()): Promise<NodeProc | null> {
    const sts = await Promise.all(among.map((p) => this.status(p)));
    if (sts.some((s) => s === null)) return null;
    const leader = sts[0]!.leader;
    if (leader === 0 || !sts.every((s) => s!.leader === leader && s!.term === sts[0]!.term)) return null;
    const lp = this.procs.get(leader);
    if (!lp?.alive) return null;
    const ls = sts.find((s) => s!.id === leader) ?? (await this.status(lp));
    return ls?.role === "leader" ? lp : null;
  }

  async waitLeader(among?: readonly NodeProc[], timeoutMs = 15_000): Promise<NodeProc> {
    return poll("an agreed leader", () => this.agreedLeader(among), timeoutMs);
  }

  /**
   * PUT through any live node, following 421 to the leader and retrying on
   * connection errors and 503s until `deadline`. Returns true once acknowledged
   * (HTTP 200), false if the deadline passed (the outcome is then unknown).
   */
  async put(key: string, value: string, deadline = Date.now() + 10_000, via?: NodeProc): Promise<boolean> {
    return (await this.request("PUT", key, value, deadline, via)) !== null;
  }

  async del(key: string, deadline = Date.now() + 10_000): Promise<boolean> {
    return (await this.request("DELETE", key, undefined, deadline)) !== null;
  }

  private async request(
    method: string,
    key: string,
    body: string | undefined,
    deadline: number,
    via?: NodeProc,
  ): Promise<Response | null> {
    let target: NodeProc | undefined = via ?? this.alive()[0];
    let i = 0;
    while (Date.now() < deadline && !this.closed) {
      if (!target?.alive) {
        const live = this.alive();
        target = live[i++ % Math.max(1, live.length)];
        if (!target) {
          await sleep(20);
          continue;
        }
      }
      let r: Response;
      try {
        r = await fetch(`http://${target.http}/kv/${encodeURIComponent(key)}`, {
          method,
          ...(body !== undefined ? { body } : {}),
          signal: AbortSignal.timeout(Math.max(1, Math.min(6000, deadline - Date.now()))),
        });
      } catch {
        target = undefined;
        await sleep(20);
        continue;
      }
      if (r.status === 200) {
        await r.arrayBuffer();
        return r;
      }
      const info = (await r.json().catch(() => ({}))) as { leaderId?: number; code?: string };
      if (r.status === 421) {
        const lp = info.leaderId ? this.procs.get(info.leaderId) : undefined;
        if (lp?.alive && lp !== target) {
          target = lp;
          continue;
        }
        target = undefined;
        await sleep(20);
        continue;
      }
      if (r.status === 503 || r.status === 429) {
        await sleep(20);
        continue;
      }
      throw new Error(`${method} ${key} on node ${target.id}: HTTP ${r.status} ${JSON.stringify(info)}`);
    }
    return null;
  }

  /**
   * GET on one given node (no redirection: followers serve linearizable reads
   * through ReadIndex). Retries 421/503/connection errors until the deadline.
   * Returns the value, or null for 404.
   */
  async get(
    p: NodeProc,
    key: string,
    consistency = "linearizable",
    deadline = Date.now() + 10_000,
  ): Promise<string | null> {
    let last = "";
    while (Date.now() < deadline && !this.closed) {
      try {
        const r = await fetch(`http://${p.http}/kv/${encodeURIComponent(key)}?consistency=${consistency}`, {
          signal: AbortSignal.timeout(Math.max(1, Math.min(6000, deadline - Date.now()))),
        });
        if (r.status === 200) return await r.text();
        if (r.status === 404) {
          await r.arrayBuffer();
          return null;
        }
        last = `HTTP ${r.status} ${await r.text()}`;
      } catch (e) {
        last = String(e);
      }
      await sleep(20);
    }
    throw new Error(`GET ${key} on node ${p.id} did not succeed: ${last}`);
  }

  async json(
    p: NodeProc,
    method: string,
    path: string,
    body?: object,
  ): Promise<{ status: number; body: ApiBody }> {
    const r = await fetch(`http://${p.http}${path}`, {
      method,
      ...(body ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } } : {}),
      signal: AbortSignal.timeout(15_000),
    });
    return { status: r.status, body: ((await r.json().catch(() => null)) ?? {}) as ApiBody };
  }
}

/** Polls `f` until it returns a truthy value or `timeoutMs` passes. */
export async function poll<T>(
  what: string,
  f: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${lastErr}` : ""}`);
    await sleep(everyMs);
  }
}

/**
 * Concurrent writers, each sequential: writer w puts unique keys `w<w>-<j>`
 * (value `v<j>`) and overwrites `latest-<w>` with `<j>` after each of them.
 * Records what was acknowledged so a checker can demand every acknowledged
 * write back, with its latest acknowledged value.
 */
export class Workload {
  readonly acked = new Map<string, string>();
  /** Per writer: the last acknowledged and last attempted sequence number on `latest-<w>`. */
  readonly latest: { acked: number; attempted: number }[] = [];
  private stopFlag = false;
  private running: Promise<void>[] = [];
  private failure: Error | null = null;
  readonly prefix: string;

  constructor(
    private readonly cluster: ProcCluster,
    prefix = "w",
  ) {
    this.prefix = prefix;
  }

  get ackedCount(): number {
    return this.acked.size;
  }

  start(writers: number): void {
    for (let w = 0; w < writers; w++) {
      const state = { acked: -1, attempted: -1 };
      this.latest.push(state);
      const id = this.latest.length - 1;
      this.running.push(
        this.writer(id, state).catch((e: unknown) => {
          this.failure ??= e as Error;
          this.stopFlag = true;
        }),
      );
    }
  }

  private async writer(w: number, state: { acked: number; attempted: number }): Promise<void> {
    for (let j = 0; !this.stopFlag; j++) {
      const key = `${this.prefix}${w}-${j}`;
      const value = `v${j}`;
      // Retried until acknowledged; put is idempotent, so a retry of an ambiguous write is harmless.
      const ok = await this.cluster.put(key, value, Date.now() + 30_000);
      if (!ok) throw new Error(`writer ${w}: ${key} not acknowledged in 30 s`);
      this.acked.set(key, value);
      state.attempted = j;
      const okLatest = await this.cluster.put(`${this.prefix}latest-${w}`, String(j), Date.now() + 30_000);
      if (!okLatest) throw new Error(`writer ${w}: latest-${w}=${j} not acknowledged in 30 s`);
      state.acked = j;
    }
  }

  /** Resolves once `n` more writes (beyond the current count) are acknowledged. */
  async waitMore(n: number, timeoutMs = 20_000): Promise<void> {
    const target = this.acked.size + n;
    const deadline = Date.now() + timeoutMs;
    while (this.acked.size < target) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${n} more acknowledged writes (have ${this.acked.size})`);
      await sleep(10);
    }
  }

  async stop(): Promise<void> {
    this.stopFlag = true;
    await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }

  /** Reads every acknowledged key on `p` linearizably and checks its value; returns the count checked. */
  async verifyOn(p: NodeProc, deadlineMs = 30_000): Promise<number> {
    const deadline = Date.now() + deadlineMs;
    const keys = [...this.acked.entries()];
    const bad: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < keys.length) {
          const [k, v] = keys[next++]!;
          const got = await this.cluster.get(p, k, "linearizable", deadline);
          if (got !== v) bad.push(`${k}: expected ${v}, got ${got}`);
        }
      }),
    );
    for (let w = 0; w < this.latest.length; w++) {
      const { acked, attempted } = this.latest[w]!;
      if (acked < 0) continue;
      const got = await this.cluster.get(p, `${this.prefix}latest-${w}`, "linearizable", deadline);
      const n = got === null ? Number.NaN : Number(got);
      // The last acknowledged value, or a later one whose acknowledgement never came.
      if (!(n >= acked && n <= attempted))
        bad.push(`latest-${w}: expected ${acked}..${attempted}, got ${got}`);
    }
    if (bad.length > 0) {
      throw new Error(
        `node ${p.id}: ${bad.length} acknowledged writes lost or stale: ${bad.slice(0, 10).join("; ")}`,
      );
    }
    return keys.length;
  }
}
