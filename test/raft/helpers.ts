/** Small helpers shared by the core's scenario tests. */

import assert from "node:assert/strict";
import { type ConfChangeSingle, ConfChangeType, type Message, type NodeId } from "../../src/raft/types.ts";
import { LocalCluster, type NodeOptions } from "../../src/testing/local-cluster.ts";

export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export function ids(n: number): NodeId[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** A cluster of `n` voters with `leader` elected and everything stabilized. */
export function electedCluster(n: number, options: NodeOptions = {}, leader: NodeId = 1): LocalCluster {
  const c = new LocalCluster(ids(n), options);
  // With leases on, a (re)started node ignores votes for one election timeout, since it
  // may have acknowledged a lease before it restarted: let that time pass first.
  if (options.leaseTicks) c.tickAll(options.electionTick ?? 10);
  c.elect(leader);
  assert.equal(c.leader(), leader);
  return c;
}

/** Records every delivered message (a LocalCluster has one delivery hook). */
export function recordDeliveries(c: LocalCluster): Message[] {
  const seen: Message[] = [];
  c.onDeliver = (m) => {
    seen.push(m);
  };
  return seen;
}

/** Ticks every node once and stabilizes, `n` times; stops early when `until` holds. */
export function tickAndSettle(c: LocalCluster, n: number, until?: () => boolean): number {
  for (let i = 1; i <= n; i++) {
    c.tickAll(1);
    c.stabilize();
    if (until?.()) return i;
  }
  return n;
}

export function role(c: LocalCluster, id: NodeId): string {
  return c.node(id).raw.status().role;
}

export function term(c: LocalCluster, id: NodeId): number {
  return c.node(id).raw.status().term;
}

export function appliedData(c: LocalCluster, id: NodeId): string[] {
  return c
    .node(id)
    .applied.filter((e) => e.type === 0 && e.data.length > 0)
    .map((e) => dec(e.data));
}

export const cc = {
  add: (nodeId: NodeId): ConfChangeSingle => ({ type: ConfChangeType.AddNode, nodeId }),
  learner: (nodeId: NodeId): ConfChangeSingle => ({ type: ConfChangeType.AddLearner, nodeId }),
  remove: (nodeId: NodeId): ConfChangeSingle => ({ type: ConfChangeType.RemoveNode, nodeId }),
};

export function confChange(
  changes: readonly ConfChangeSingle[],
  transition: "auto" | "implicit" | "explicit" = "auto",
) {
  return { changes, transition, context: new Uint8Array(0) };
}

/** The bootstrap configuration of a LocalCluster of voters 1..n (new members start from it too). */
export function bootstrap(n: number) {
  return { voters: ids(n), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}
