/**
 * ReadIndex bookkeeping on the leader (Raft thesis §6.4).
 *
 * A read records the commit index when it arrives, then waits until a quorum
 * acknowledges a heartbeat round *sent after* it arrived: that proves this
 * node was still the leader at a moment after the read began. All reads that
 * wait share one round, so a burst of reads costs one heartbeat broadcast.
 */

import { invariant } from "../errors.ts";
import type { NodeId } from "./types.ts";

export interface PendingRead {
  readonly ctx: string;
  /** The commit index when the read arrived: the read may be served once applied. */
  readonly index: number;
  /** Who asked: this node, or the follower that forwarded it. */
  readonly from: NodeId;
  /** The heartbeat round that confirms it (0 = waits for the next round). */
  round: number;
}

export class ReadQueue {
  /** In arrival order; rounds are non-decreasing along the queue. */
  private reads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term. */
  private waitingForCommit: Omit<PendingRead, "index">[] = [];
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  get size(): number {
    return this.reads.length + this.waitingForCommit.length;
  }

  full(): boolean {
    return this.size >= this.max;
  }

  add(ctx: string, index: number, from: NodeId): void {
    invariant(!this.full(), "read queue overflow");
    this.reads.push({ ctx, index, from, round: 0 });
  }

  deferUntilCommitInTerm(ctx: string, from: NodeId): void {
    invariant(!this.full(), "read queue overflow");
    this.waitingForCommit.push({ ctx, from, round: 0 });
  }

  /** Once the leader has committed an entry of its term, deferred reads get that commit index. */
  releaseDeferred(commit: number): void {
    for (const r of this.waitingForCommit)
      this.reads.push({ ctx: r.ctx, index: commit, from: r.from, round: 0 });
    this.waitingForCommit = [];
  }

  /** Reads not yet attached to a round. */
  hasUnassigned(): boolean {
    const last = this.reads[this.reads.length - 1];
    return last !== undefined && last.round === 0;
  }

  /** Attach every unassigned read to `round` (just being sent). */
  assign(round: number): void {
    for (let i = this.reads.length - 1; i >= 0 && this.reads[i]!.round === 0; i--)
      this.reads[i]!.round = round;
  }

  /** Reads confirmed by a quorum acknowledging `round`, removed from the queue. */
  confirm(round: number): PendingRead[] {
    let n = 0;
    while (n < this.reads.length && this.reads[n]!.round !== 0 && this.reads[n]!.round <= round) n++;
    return n === 0 ? [] : this.reads.splice(0, n);
  }

  /** Everything pending, removed (leadership lost). */
  drain(): { ctx: string; from: NodeId }[] {
    const all = [...this.waitingForCommit, ...this.reads].map((r) => ({ ctx: r.ctx, from: r.from }));
    this.reads = [];
    this.waitingForCommit = [];
    return all;
  }
}
