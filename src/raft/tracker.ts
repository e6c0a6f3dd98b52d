/**
 * The membership configuration and every member's replication progress, as
 * the leader tracks them; also the votes of an election in progress.
 */

import type { Progress } from "./progress.ts";
import {
  type JointVoters,
  jointCommitted,
  jointIds,
  jointVoteResult,
  majorityVoteResult,
  type VoteResult,
} from "./quorum.ts";
import type { ConfState, NodeId } from "./types.ts";

export interface TrackerConfig extends JointVoters {
  readonly learners: ReadonlySet<NodeId>;
  /** Outgoing voters that become learners when the joint configuration is left. */
  readonly learnersNext: ReadonlySet<NodeId>;
  /** Leave the joint configuration automatically once it is applied. */
  readonly autoLeave: boolean;
}

export const EMPTY_TRACKER_CONFIG: TrackerConfig = {
  incoming: new Set(),
  outgoing: new Set(),
  learners: new Set(),
  learnersNext: new Set(),
  autoLeave: false,
};

export function isJoint(cfg: TrackerConfig): boolean {
  return cfg.outgoing.size > 0;
}

export function confStateOf(cfg: TrackerConfig): ConfState {
  const sorted = (s: ReadonlySet<NodeId>) => [...s].sort((a, b) => a - b);
  return {
    voters: sorted(cfg.incoming),
    learners: sorted(cfg.learners),
    votersOutgoing: sorted(cfg.outgoing),
    learnersNext: sorted(cfg.learnersNext),
    autoLeave: cfg.autoLeave,
  };
}

export type ProgressMap = Map<NodeId, Progress>;

export class ProgressTracker {
  config: TrackerConfig = EMPTY_TRACKER_CONFIG;
  progress: ProgressMap = new Map();
  readonly votes = new Map<NodeId, boolean>();

  isVoter(id: NodeId): boolean {
    return this.config.incoming.has(id) || this.config.outgoing.has(id);
  }

  /** Voters of the (joint) configuration, ascending. */
  voterIds(): NodeId[] {
    return jointIds(this.config);
  }

  /** All members (voters and learners), ascending: a deterministic visiting order. */
  memberIds(): NodeId[] {
    return [...this.progress.keys()].sort((a, b) => a - b);
  }

  /** True when this node is the only voter: it decides everything alone. */
  isSingleton(id: NodeId): boolean {
    return this.config.incoming.size === 1 && this.config.outgoing.size === 0 && this.config.incoming.has(id);
  }

  /** The largest index replicated on a quorum (joint: on both quorums). */
  committed(): number {
    return jointCommitted(this.config, (id) => this.progress.get(id)?.match);
  }

  /** The newest heartbeat round a quorum acknowledged. */
  quorumAckedRound(): number {
    return jointCommitted(this.config, (id) => this.progress.get(id)?.ackedRound);
  }

  /** Whether a quorum was recently active (check-quorum). */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) if (!pr.isLearner) votes.set(id, pr.recentActive);
    return jointVoteResult(this.config, votes) === "won";
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voterIds()) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    return { granted, rejected, result: jointVoteResult(this.config, this.votes) };
  }

  /** Vote result in the incoming majority alone (for diagnostics and tests). */
  incomingVoteResult(): VoteResult {
    return majorityVoteResult(this.config.incoming, this.votes);
  }
}
