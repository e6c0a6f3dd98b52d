/**
 * The core's configuration: defaults, and validation that fails early with a
 * {@link ConfigError} naming the key and the reason.
 */

import { ConfigError } from "../errors.ts";
import type { RaftLogReader } from "./storage.ts";
import type { NodeId } from "./types.ts";

/** A source of uniform random numbers in [0, 1). Injected so runs are reproducible. */
export type Rng = () => number;

/** Optional diagnostics from the core (pino-compatible shape). */
export interface RaftLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RaftConfig {
  readonly id: NodeId;
  readonly storage: RaftLogReader;
  /** Seeded randomness for election timeouts. */
  readonly rng: Rng;
  /** Ticks without hearing from a leader before campaigning (randomized in [e, 2e)). Default 10. */
  readonly electionTick?: number;
  /** Ticks between leader heartbeats. Default 1. */
  readonly heartbeatTick?: number;
  /** Index already applied by the state machine at start-up (default: the snapshot index). */
  readonly applied?: number;
  /** Campaign with a pre-vote round first, so a partitioned node cannot inflate terms. Default true. */
  readonly preVote?: boolean;
  /** A leader steps down when it has not heard from a quorum for an election timeout. Default true. */
  readonly checkQuorum?: boolean;
  /**
   * How long (in ticks) a leader's lease lasts after a heartbeat round that a
   * quorum acknowledged. 0 disables lease reads. Must be < electionTick (the
   * gap is the clock-drift margin); requires checkQuorum. Default 0.
   */
  readonly leaseTicks?: number;
  /** Max bytes of entry data in one append message (at least one entry is always sent). Default 1 MiB. */
  readonly maxSizePerMsg?: number;
  /** Max append messages in flight to one follower. Default 256. */
  readonly maxInflightMsgs?: number;
  /** Max bytes of entries in flight to one follower (0 = no limit). Default 32 MiB. */
  readonly maxInflightBytes?: number;
  /** Max bytes of uncommitted entry data on the leader; beyond it proposals are rejected. Default 64 MiB. */
  readonly maxUncommittedEntriesSize?: number;
  /** Max bytes of committed entries handed out in one Ready. Default 64 MiB. */
  readonly maxCommittedSizePerReady?: number;
  /** Max ReadIndex requests waiting on the leader (and forwarded ones on a follower). Default 65536. */
  readonly maxPendingReads?: number;
  /** Max entries in one propose() call. Default 65536. */
  readonly maxProposalEntries?: number;
  /**
   * Asynchronous storage writes: advance() no longer means "durable". The
   * runtime hands a Ready's entries and hard state to storage, calls
   * advance() at once (so the next Ready can be taken while the write is in
   * flight), and calls persisted(ready) — in Ready order — once they are
   * durable; only then may it send that Ready's `messages`. Default false.
   */
  readonly asyncStorageWrites?: boolean;
  /**
   * When the commit index advances in a Ready that also carries committed
   * entries, send the appends that tell followers about it with the next
   * Ready instead: applying the entries usually brings new proposals, whose
   * appends then carry the commit index too (one message per follower, not
   * two). The next Ready always sends it, proposals or not. Default false.
   */
  readonly deferCommitBroadcast?: boolean;
  /**
   * Hand out committed entries to apply before they are durable locally
   * (they are durable on a quorum: that is what committed means). A leader
   * whose own fsync is the slow one then applies and answers as soon as a
   * quorum of followers has the entry. After a crash the application may be
   * ahead of the local log: pass its applied index as `applied`, and entries
   * up to it are not handed out again. Default false.
   */
  readonly applyUnpersisted?: boolean;
  readonly logger?: RaftLogger;
}

export type ResolvedRaftConfig = Required<Omit<RaftConfig, "logger">> & {
  readonly logger: RaftLogger | null;
};

export const RAFT_DEFAULTS = {
  electionTick: 10,
  heartbeatTick: 1,
  preVote: true,
  checkQuorum: true,
  leaseTicks: 0,
  maxSizePerMsg: 1024 * 1024,
  maxInflightMsgs: 256,
  maxInflightBytes: 32 * 1024 * 1024,
  maxUncommittedEntriesSize: 64 * 1024 * 1024,
  maxCommittedSizePerReady: 64 * 1024 * 1024,
  maxPendingReads: 65536,
  maxProposalEntries: 65536,
  asyncStorageWrites: false,
  deferCommitBroadcast: false,
  applyUnpersisted: false,
} as const;

function positiveInt(key: string, v: number, min = 1): void {
  if (!Number.isSafeInteger(v) || v < min)
    throw new ConfigError(key, `must be an integer >= ${min}, got ${v}`);
}

export function resolveRaftConfig(c: RaftConfig): ResolvedRaftConfig {
  positiveInt("id", c.id);
  if (typeof c.rng !== "function") throw new ConfigError("rng", "must be a function returning [0, 1)");
  if (!c.storage) throw new ConfigError("storage", "is required");
  /** The option as given, or its default. */
  const or = <K extends keyof typeof RAFT_DEFAULTS>(key: K) => c[key] ?? RAFT_DEFAULTS[key];
  const r: ResolvedRaftConfig = {
    id: c.id,
    storage: c.storage,
    rng: c.rng,
    electionTick: or("electionTick"),
    heartbeatTick: or("heartbeatTick"),
    applied: c.applied ?? c.storage.firstIndex() - 1,
    preVote: or("preVote"),
    checkQuorum: or("checkQuorum"),
    leaseTicks: or("leaseTicks"),
    maxSizePerMsg: or("maxSizePerMsg"),
    maxInflightMsgs: or("maxInflightMsgs"),
    maxInflightBytes: or("maxInflightBytes"),
    maxUncommittedEntriesSize: or("maxUncommittedEntriesSize"),
    maxCommittedSizePerReady: or("maxCommittedSizePerReady"),
    maxPendingReads: or("maxPendingReads"),
    maxProposalEntries: or("maxProposalEntries"),
    asyncStorageWrites: or("asyncStorageWrites"),
    deferCommitBroadcast: or("deferCommitBroadcast"),
    applyUnpersisted: or("applyUnpersisted"),
    logger: c.logger ?? null,
  };
  positiveInt("heartbeatTick", r.heartbeatTick);
  positiveInt("electionTick", r.electionTick);
  if (r.electionTick <= r.heartbeatTick) {
    throw new ConfigError("electionTick", `must be greater than heartbeatTick (${r.heartbeatTick})`);
  }
  positiveInt("applied", r.applied, 0);
  positiveInt("leaseTicks", r.leaseTicks, 0);
  if (r.leaseTicks > 0) {
    if (!r.checkQuorum) throw new ConfigError("leaseTicks", "lease reads require checkQuorum");
    if (r.leaseTicks > r.electionTick - 2) {
      // A follower that ticks just after hearing the leader ignores votes for only
      // electionTick - 1 tick intervals: a lease that long leaves no margin for clock drift.
      throw new ConfigError(
        "leaseTicks",
        `must be at most electionTick - 2 (${r.electionTick - 2}) to tolerate clock drift`,
      );
    }
  }
  positiveInt("maxSizePerMsg", r.maxSizePerMsg);
  positiveInt("maxInflightMsgs", r.maxInflightMsgs);
  positiveInt("maxInflightBytes", r.maxInflightBytes, 0);
  if (r.maxInflightBytes > 0 && r.maxInflightBytes < r.maxSizePerMsg) {
    throw new ConfigError(
      "maxInflightBytes",
      `must be 0 (no limit) or >= maxSizePerMsg (${r.maxSizePerMsg})`,
    );
  }
  positiveInt("maxUncommittedEntriesSize", r.maxUncommittedEntriesSize);
  positiveInt("maxCommittedSizePerReady", r.maxCommittedSizePerReady);
  positiveInt("maxPendingReads", r.maxPendingReads);
  positiveInt("maxProposalEntries", r.maxProposalEntries);
  return r;
}
