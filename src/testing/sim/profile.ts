/**
 * Fault profiles. Swarm testing (Groce et al.): instead of one fixed mix of
 * faults, every seed draws its own probabilities, so some runs are calm and
 * long-lived while others are storms of one kind of fault; bugs that need a
 * particular mix get found by some seed.
 */

import { InvalidArgumentError } from "../../errors.ts";
import type { Prng } from "../prng.ts";
import { PARTITION_KINDS, type PartitionKind } from "./network.ts";

/** Simulated time is counted in microseconds. */
export const MS = 1000;

export interface SimParams {
  readonly voters: number;
  readonly learners: number;
  // Core configuration.
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** 0: lease reads off (reads use ReadIndex only). */
  readonly leaseTicks: number;
  readonly maxSizePerMsg: number;
  readonly maxInflightMsgs: number;
  // Clock.
  readonly tickUs: number;
  /** Bound on each node's clock-rate error: its tick period is tickUs × (1 ± drift). */
  readonly clockDrift: number;
  // Disk.
  readonly fsyncMinUs: number;
  readonly fsyncMaxUs: number;
  /** Chance that a crash during a write keeps a prefix of its entries (a torn tail). */
  readonly tornWriteRate: number;
  /** Chance that a crash loses what was written without an fsync since the last one. */
  readonly loseUnsyncedRate: number;
  /** Take a local snapshot and compact after this many applied entries. */
  readonly snapshotEvery: number;
  /** Entries kept before the snapshot index when compacting. */
  readonly compactKeep: number;
  // Network.
  readonly delayMinUs: number;
  readonly delayMeanUs: number;
  /** Chance of a long delay (reordering far behind later messages). */
  readonly delayTailRate: number;
  readonly delayTailMaxUs: number;
  readonly dropRate: number;
  readonly duplicateRate: number;
  // Faults: mean time between fault events of each kind (0 = never).
  readonly crashEveryUs: number;
  readonly downMaxUs: number;
  readonly partitionEveryUs: number;
  readonly partitionMaxUs: number;
  /** The kinds of partition this run uses (swarm: a random non-empty subset). */
  readonly partitionKinds: readonly PartitionKind[];
  readonly membershipEveryUs: number;
  readonly transferEveryUs: number;
  // Clients.
  readonly clients: number;
  readonly keys: number;
  /** Share of operations that are reads (the rest: put, cas, delete). */
  readonly readRate: number;
  readonly thinkMaxUs: number;
  readonly opTimeoutUs: number;
  /** Share of reads that go to a random node instead of the believed leader. */
  readonly followerReadRate: number;
  // Storage writes (drawn last, so the draws above are the same as before they existed).
  /**
   * Asynchronous storage writes (`asyncStorageWrites` in the core): a Ready's
   * write is handed to the disk, its committed entries applied and advance()
   * called at once; the write completes later, in order, and only then are
   * its `messages` sent and `persisted()` called.
   */
  readonly asyncWrites: boolean;
  /** Asynchronous writes: at most this many in flight per node (then the node waits for the disk). */
  readonly maxWritesInFlight: number;
  /**
   * The state machine is durable (as an embedded database committing each
   * apply): a restart keeps it and passes its applied index to the core,
   * which takes it as committed even when the commit index in the hard state
   * (written without fsync) was lost. Otherwise it restarts from the snapshot.
   */
  readonly durableApply: boolean;
  /** `deferCommitBroadcast` in the core (drawn last, after everything above). */
  readonly deferCommitBroadcast: boolean;
  /** `applyUnpersisted` in the core (with asynchronous writes; drawn last). */
  readonly applyUnpersisted: boolean;
}

export const PROFILES = ["swarm", "calm", "chaos", "partitions", "crashes", "membership", "lease"] as const;
export type ProfileName = (typeof PROFILES)[number];

function between(prng: Prng, lo: number, hi: number): number {
  return lo + prng.next() * (hi - lo);
}

/** A random non-empty subset (each kind kept with probability 1/2). */
function subset<T>(prng: Prng, items: readonly T[]): T[] {
  const out = items.filter(() => prng.chance(0.5));
  return out.length > 0 ? out : [prng.pick(items)];
}

function maybe(prng: Prng, p: number, value: number): number {
  return prng.chance(p) ? value : 0;
}

/**
 * Draws the parameters of one run. `voters` overrides the cluster size
 * (otherwise 3, 5 or 7); the profile shapes which faults are likely.
 */
export function drawParams(prng: Prng, profile: ProfileName, voters?: number): SimParams {
  if (!PROFILES.includes(profile)) {
    throw new InvalidArgumentError(`unknown profile ${profile} (one of ${PROFILES.join(", ")})`);
  }
  const n = voters ?? prng.pick([3, 5, 7]);
  if (![3, 5, 7].includes(n)) throw new InvalidArgumentError(`voters must be 3, 5 or 7, got ${n}`);
  const heavy = profile === "chaos";
  const calm = profile === "calm";
  const lease = profile === "lease" || (!calm && prng.chance(0.4));
  // Fault rates: swarm draws each kind independently (some off entirely).
  const rate = (kind: ProfileName, meanMs: number): number => {
    if (calm) return 0;
    if (profile === kind || heavy) return between(prng, 0.3, 1) * meanMs * MS;
    if (profile !== "swarm" && profile !== "lease") return 0;
    return maybe(prng, 0.7, between(prng, 0.5, 3) * meanMs * MS);
  };
  const electionTick = 10;
  return {
    voters: n,
    learners: prng.pick([0, 0, 1, 2]),
    electionTick,
    heartbeatTick: 1,
    preVote: lease || prng.chance(0.8),
    checkQuorum: lease || prng.chance(0.7),
    // The lease must end before a follower's stickiness can, even with clocks
    // drifting apart: leaseTicks × (1 + drift) < (electionTick - 1) × (1 - drift).
    leaseTicks: lease ? 3 + prng.int(5) : 0,
    maxSizePerMsg: prng.pick([64, 512, 1 << 20]),
    maxInflightMsgs: prng.pick([2, 16, 256]),
    tickUs: 10 * MS,
    clockDrift: between(prng, 0, 0.05),
    fsyncMinUs: Math.round(between(prng, 0.1, 1) * MS),
    fsyncMaxUs: Math.round(between(prng, 1, calm ? 3 : 12) * MS),
    tornWriteRate: calm ? 0 : between(prng, 0, 0.5),
    loseUnsyncedRate: calm ? 0 : between(prng, 0, 0.5),
    snapshotEvery: prng.pick([8, 30, 100, 400]),
    compactKeep: prng.pick([0, 5, 50]),
    delayMinUs: Math.round(between(prng, 0.05, 1) * MS),
    delayMeanUs: Math.round(between(prng, 0.5, calm ? 2 : 8) * MS),
    delayTailRate: calm ? 0 : between(prng, 0, heavy ? 0.1 : 0.03),
    delayTailMaxUs: Math.round(between(prng, 20, 300) * MS),
    dropRate: calm ? 0 : maybe(prng, heavy ? 1 : 0.6, between(prng, 0, heavy ? 0.2 : 0.08)),
    duplicateRate: calm ? 0 : maybe(prng, heavy ? 1 : 0.5, between(prng, 0, 0.05)),
    crashEveryUs: rate("crashes", 600),
    downMaxUs: Math.round(between(prng, 50, 1500) * MS),
    partitionEveryUs: rate("partitions", 400),
    partitionMaxUs: Math.round(between(prng, 50, 1500) * MS),
    partitionKinds: subset(prng, PARTITION_KINDS),
    membershipEveryUs: rate("membership", 500),
    transferEveryUs: rate("membership", 800),
    clients: 2 + prng.int(5),
    keys: 1 + prng.int(4),
    readRate: prng.pick([0.2, 0.4, 0.4, 0.6, 0.95]),
    thinkMaxUs: Math.round(between(prng, 1, 30) * MS),
    opTimeoutUs: Math.round(between(prng, 100, 1000) * MS),
    followerReadRate: between(prng, 0, 0.5),
    asyncWrites: prng.chance(0.5),
    maxWritesInFlight: prng.pick([1, 3, 8, 64]),
    durableApply: prng.chance(0.3),
    deferCommitBroadcast: prng.chance(0.5),
    applyUnpersisted: prng.chance(0.5),
  };
}
