/** Helpers for runtime tests: free loopback ports, temp dirs, clusters of in-process nodes on real TCP. */

import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { NodeBuilder } from "../../src/node/builder.ts";
import { mergeNodeConfig, type NodeConfigInput } from "../../src/node/config.ts";
import type { RaftNode } from "../../src/node/raft-node.ts";
import type { FileStateMachine } from "../../src/storage/file-state-machine.ts";
import { decodeKvCommand, encodeKvCommand, type KvResult } from "../../src/storage/kv-command.ts";
import { MemoryNetwork } from "../../src/transport/memory.ts";

export type KvNode = RaftNode<KvResult, Uint8Array, Uint8Array | null>;

export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve) => {
          const s = createServer();
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export function tempDir(prefix = "tsraft-node-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Fast timers so tests elect in tens of milliseconds. */
export const FAST: NodeConfigInput = {
  raft: { tickMs: 10, electionTicks: 10, heartbeatTicks: 1 },
  limits: { readyTimeoutMs: 10_000, proposalTimeoutMs: 10_000, shutdownTimeoutMs: 2000 },
  membership: { promoteAfterMs: 100 },
};

export function kvNode(config: NodeConfigInput): KvNode {
  return new NodeBuilder(config).build() as unknown as KvNode;
}

export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));
export const put = (k: string, v: string) => encodeKvCommand({ op: "put", key: enc(k), value: enc(v) });
export { decodeKvCommand };

export async function waitFor<T>(
  what: string,
  f: () => T | undefined | false | null,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export function leaderOf(nodes: readonly KvNode[]): KvNode | undefined {
  return nodes.find((n) => n.running && n.status().role === "leader");
}

export type { FileStateMachine };

/**
 * Nodes over one MemoryNetwork (file storage in `dir`): node `id` listens at
 * "n<id>:1", a host:port the config accepts and the network routes.
 */
export function memAddress(id: number): string {
  return `n${id}:1`;
}

export function memNode(net: MemoryNetwork, id: number, dir: string, config: NodeConfigInput): KvNode {
  const base = mergeNodeConfig(FAST, config);
  return new NodeBuilder({ ...base, nodeId: id, listen: memAddress(id), dataDir: join(dir, `m${id}`) })
    .transport(net.transport(id, { address: memAddress(id) }))
    .build() as unknown as KvNode;
}

export function memCluster(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i + 1), memAddress(i + 1)]));
}

/** The voters a node's status lists. */
export const voters = (n: KvNode): number[] =>
  n
    .status()
    .members.filter((m) => m.role === "voter")
    .map((m) => m.id);

/** Cuts `node` off from the rest of `nodes` (both directions). */
export function cutOff(net: MemoryNetwork, node: KvNode, nodes: readonly KvNode[]): void {
  net.partition(
    [node.id],
    nodes.filter((x) => x !== node).map((x) => x.id),
  );
}

export interface MemCluster {
  readonly net: MemoryNetwork;
  readonly nodes: KvNode[];
  readonly dir: string;
  /** Builds (does not start) node `id` over the same network and directory. */
  add(id: number, config: NodeConfigInput): KvNode;
}

/**
 * Starts founding members 1..`start` of an `n`-member cluster over a fresh
 * MemoryNetwork, file storage under `dir`; stops every node added when `t` ends.
 */
export async function startMemCluster(
  t: TestContext,
  dir: string,
  n: number,
  config: NodeConfigInput = {},
  start = n,
): Promise<MemCluster> {
  const net = new MemoryNetwork({ clusterId: "mem-test" });
  const nodes: KvNode[] = [];
  const mem: MemCluster = {
    net,
    nodes,
    dir,
    add(id, cfg) {
      const node = memNode(net, id, dir, cfg);
      nodes.push(node);
      return node;
    },
  };
  // Leaders first, one at a time: each hands over to a live voter at once instead of
  // waiting out a transfer to a node that is stopping too.
  t.after(async () => {
    for (let live = nodes.filter((x) => x.running); live.length > 0; live = nodes.filter((x) => x.running)) {
      await (leaderOf(live) ?? live[0]!).stop().catch(() => {});
    }
  });
  const initialCluster = memCluster(n);
  for (let i = 1; i <= start; i++) mem.add(i, { ...config, initialCluster });
  await Promise.all(nodes.map((x) => x.startRpcServer()));
  return mem;
}
