/**
 * The simulated network: every message gets a delay drawn from the profile's
 * distribution (most short, a few very long, so later messages overtake
 * earlier ones), may be dropped or duplicated, and is dropped at delivery if
 * a partition separates its ends by then. Partitions are sets of blocked
 * directed links, so one-way cuts, bridges and rings are all expressible.
 */

import { invariant } from "../../errors.ts";
import type { NodeId } from "../../raft/types.ts";
import type { Prng } from "../prng.ts";
import type { SimParams } from "./profile.ts";

/** Node ids are small integers below this bound (a blocked-link matrix is indexed by them). */
export const MAX_NODE_ID = 64;

export type PartitionKind =
  | "isolate-leader"
  | "isolate"
  | "split"
  | "one-way"
  | "bridge"
  | "majority-ring"
  | "cut-link";

export class SimNetwork {
  private readonly blocked = new Uint8Array(MAX_NODE_ID * MAX_NODE_ID);
  private blockedCount = 0;
  /** A human-readable description of the current partition ("" when healed). */
  description = "";

  constructor(
    private readonly prng: Prng,
    private params: SimParams,
  ) {}

  /** Replaces the fault parameters (the liveness phase turns faults off). */
  setParams(p: SimParams): void {
    this.params = p;
  }

  /** The delivery delays for one send: [] when dropped, two entries when duplicated. */
  delays(): number[] {
    const n = this.sample();
    return n === 0 ? [] : n === 1 ? [this.delay0] : [this.delay0, this.delay1];
  }

  /** Delays drawn by the last {@link sample} (valid for as many copies as it returned). */
  delay0 = 0;
  delay1 = 0;

  /**
   * Draws the fate of one send without allocating: how many copies arrive (0
   * dropped, 2 duplicated), their delays left in `delay0` / `delay1`.
   */
  sample(): 0 | 1 | 2 {
    const p = this.params;
    if (p.dropRate > 0 && this.prng.chance(p.dropRate)) return 0;
    this.delay0 = this.delay();
    if (p.duplicateRate > 0 && this.prng.chance(p.duplicateRate)) {
      this.delay1 = this.delay();
      return 2;
    }
    return 1;
  }

  private delay(): number {
    const p = this.params;
    if (p.delayTailRate > 0 && this.prng.chance(p.delayTailRate)) {
      return p.delayMinUs + this.prng.int(Math.max(1, p.delayTailMaxUs));
    }
    // Exponential around the mean: many quick messages, a few slow ones.
    const u = this.prng.next();
    return p.delayMinUs + Math.round(-Math.log(1 - u) * Math.max(0, p.delayMeanUs - p.delayMinUs));
  }

  canSend(from: NodeId, to: NodeId): boolean {
    return this.blockedCount === 0 || this.blocked[from * MAX_NODE_ID + to] === 0;
  }

  block(from: NodeId, to: NodeId): void {
    invariant(from < MAX_NODE_ID && to < MAX_NODE_ID, "node id out of range");
    const i = from * MAX_NODE_ID + to;
    if (this.blocked[i] === 0) this.blockedCount++;
    this.blocked[i] = 1;
  }

  heal(): void {
    this.blocked.fill(0);
    this.blockedCount = 0;
    this.description = "";
  }

  get partitioned(): boolean {
    return this.blockedCount > 0;
  }

  /** Splits `ids` into groups that cannot talk across (both directions). */
  private split(groups: readonly (readonly NodeId[])[]): void {
    for (const a of groups)
      for (const b of groups) if (a !== b) for (const x of a) for (const y of b) this.block(x, y);
  }

  /**
   * Installs a partition of the given kind over `ids` (all live members),
   * replacing the current one. `leader` is the node believed to lead (0: none).
   */
  partition(kind: PartitionKind, ids: readonly NodeId[], leader: NodeId): void {
    this.heal();
    const shuffled = shuffle(this.prng, ids);
    const n = shuffled.length;
    if (n < 2) return;
    switch (kind) {
      case "isolate-leader":
      case "isolate": {
        const x = kind === "isolate-leader" && leader !== 0 ? leader : shuffled[0]!;
        this.split([[x], ids.filter((id) => id !== x)]);
        this.description = `isolate ${x}`;
        return;
      }
      case "split": {
        const k = 1 + this.prng.int(Math.max(1, Math.floor(n / 2)));
        const a = shuffled.slice(0, k);
        const b = shuffled.slice(k);
        this.split([a, b]);
        this.description = `split [${a}] | [${b}]`;
        return;
      }
      case "one-way": {
        // Messages from `x` to the others are lost; the others still reach `x`.
        const x = leader !== 0 && this.prng.chance(0.5) ? leader : shuffled[0]!;
        for (const y of ids) if (y !== x) this.block(x, y);
        this.description = `one-way ${x} -/-> others`;
        return;
      }
      case "bridge": {
        // Two halves that only `bridge` connects.
        const bridge = shuffled[0]!;
        const rest = shuffled.slice(1);
        const half = Math.floor(rest.length / 2);
        const a = rest.slice(0, half);
        const b = rest.slice(half);
        this.split([a, b]);
        this.description = `bridge ${bridge} between [${a}] and [${b}]`;
        return;
      }
      case "majority-ring": {
        // Each node sees a majority (itself and its ring neighbours), no two the same one.
        const majority = Math.floor(n / 2) + 1;
        const d = Math.ceil((majority - 1) / 2);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            const dist = Math.min(Math.abs(i - j), n - Math.abs(i - j));
            if (dist > d) this.block(shuffled[i]!, shuffled[j]!);
          }
        }
        this.description = `majority-ring ${shuffled.join("-")}`;
        return;
      }
      case "cut-link": {
        // One pair cannot talk: e.g. a follower that stops hearing the leader but sees everyone else.
        const x = leader !== 0 ? leader : shuffled[0]!;
        const y = shuffled.find((id) => id !== x)!;
        this.block(x, y);
        this.block(y, x);
        this.description = `cut ${x} <-> ${y}`;
        return;
      }
    }
  }
}

export const PARTITION_KINDS: readonly PartitionKind[] = [
  "isolate-leader",
  "isolate",
  "split",
  "one-way",
  "bridge",
  "majority-ring",
  "cut-link",
];

export function shuffle<T>(prng: Prng, items: readonly T[]): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = prng.int(i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}
