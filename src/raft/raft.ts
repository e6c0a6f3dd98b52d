/**
 * The Raft protocol state machine: one node's term, vote, role, log and view
 * of its peers. Pure and synchronous: inputs are method calls, outputs are
 * accumulated in `msgs`, `readStates` and `droppedReads` for {@link RawNode}
 * to hand out in a Ready. Role-specific handlers live beside this file
 * (leader.ts, follower.ts, reads.ts); each rule of the Raft paper is a named
 * function a reader can find.
 *
 * Fields are public for those sibling modules; applications use RawNode.
 */

import { invariant, NotLeaderError, ProposalDroppedError } from "../errors.ts";
import { type ChangerContext, restoreConfState } from "./confchange.ts";
import { type RaftConfig, type ResolvedRaftConfig, resolveRaftConfig } from "./config.ts";
import { bcastHeartbeat } from "./leader.ts";
import { RaftLog } from "./log.ts";
import { Progress } from "./progress.ts";
import { ReadQueue } from "./read-queue.ts";
import { attachWaitingReads } from "./reads.ts";
import { ProgressTracker } from "./tracker.ts";
import {
  type DroppedRead,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  NONE,
  type NodeId,
  type ReadState,
  type Role,
  type SoftState,
} from "./types.ts";

export type CampaignKind = "pre" | "election" | "transfer";

export class Raft {
  readonly id: NodeId;
  readonly cfg: ResolvedRaftConfig;
  readonly log: RaftLog;
  readonly tracker = new ProgressTracker();
  /**
   * The log index the configuration reflects: a conf-change entry at or below it is in it
   * already (a snapshot restored after a Ready handed the entry out, before advance()).
   */
  configIndex = 0;

  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = "follower";

  /** Outputs, taken by RawNode.ready(). */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  droppedReads: DroppedRead[] = [];

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /**
   * Ticks since this node last heard from a leader (or was one). Votes for a
   * higher term are ignored while it is below electionTick (leader stickiness),
   * which is what makes check-quorum and leader leases safe. With leases on it
   * starts at 0, because a node that restarts may have acknowledged a lease.
   */
  leaderContactElapsed: number;
  /** Monotonic tick counter (the core's only notion of time). */
  ticks = 0;

  leadTransferee: NodeId = NONE;
  /** Index of the newest conf change on the leader; another waits until it is applied. */
  pendingConfIndex = 0;
  /** Bytes of entry data appended by this leader and not yet committed. */
  uncommittedSize = 0;
  /** Leader: a broadcast of appends is due (coalesces many proposals into one message per peer). */
  needsBroadcast = false;
  /** The commit index advanced: followers should hear of it (see RaftConfig.deferCommitBroadcast). */
  commitBroadcast = false;

  // Heartbeat rounds (see read-queue.ts).
  round = 0;
  readonly roundSentTick = new Map<number, number>();
  /** The round whose heartbeat a quorum acknowledged most recently, and when it was sent. */
  confirmedRound = 0;
  leaseBaseTick = Number.NEGATIVE_INFINITY;
  /** Only rounds from this one on may extend the lease (set after a membership change). */
  leaseMinRound = 0;
  /** The round a batch of reads is waiting on (0 = none in flight). */
  readRoundInFlight = 0;
  readonly reads: ReadQueue;
  /** Follower: reads forwarded to the leader, by ctx, with the leader asked. */
  readonly forwardedReads = new Map<string, NodeId>();

  constructor(config: RaftConfig) {
    this.cfg = resolveRaftConfig(config);
    this.id = this.cfg.id;
    this.log = new RaftLog(this.cfg.storage, this.cfg.maxCommittedSizePerReady);
    this.log.applyUnpersisted = this.cfg.applyUnpersisted;
    this.log.applyFloor = this.cfg.applied;
    this.reads = new ReadQueue(this.cfg.maxPendingReads);
    const { hardState, confState } = this.cfg.storage.initialState();
    const restored = restoreConfState(confState, this.changerContext());
    this.tracker.config = restored.config;
    this.tracker.progress = restored.progress;
    this.configIndex = this.log.firstIndex() - 1;
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0)
      this.loadHardState(hardState);
    if (this.cfg.applied > this.log.committed && this.cfg.applied <= this.log.lastIndex()) {
      // The application only applies committed entries, so `applied` is committed even if the
      // commit index in the hard state (written without fsync) was lost in a crash.
      this.log.commitTo(this.cfg.applied);
    }
    if (this.cfg.applied > this.log.applied)
      this.log.appliedTo(Math.min(this.cfg.applied, this.log.committed));
    this.leaderContactElapsed = this.cfg.leaseTicks > 0 ? 0 : this.cfg.electionTick;
    this.becomeFollower(this.term, NONE);
  }

  private loadHardState(hs: HardState): void {
    invariant(
      hs.commit <= this.log.lastIndex(),
      () => `hard state commit ${hs.commit} beyond the last index ${this.log.lastIndex()}`,
    );
    this.term = hs.term;
    this.vote = hs.vote;
    // The commit index is written without fsync, and a snapshot can become durable before
    // the hard state written after it: a snapshot holds only committed entries, so its
    // index (where the log starts committed) is a floor for the commit index.
    this.log.committed = Math.max(hs.commit, this.log.committed);
  }

  changerContext(): ChangerContext {
    return {
      lastIndex: this.log.lastIndex(),
      maxInflightMsgs: this.cfg.maxInflightMsgs,
      maxInflightBytes: this.cfg.maxInflightBytes,
    };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  send(m: Message): void {
    invariant(m.to !== this.id, "a node never sends to itself");
    this.msgs.push(m);
  }

  /** Whether this node may campaign: a voter with no snapshot pending. */
  promotable(): boolean {
    const pr = this.tracker.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && this.log.unstable.snapshot === null;
  }

  /** Whether votes for a higher term are ignored now (leader stickiness). */
  inLease(): boolean {
    return this.cfg.checkQuorum && this.leaderContactElapsed < this.cfg.electionTick;
  }

  committedInTerm(): boolean {
    return this.log.termOrZero(this.log.committed) === this.term;
  }

  // ---------------------------------------------------------------------------
  // Role transitions
  // ---------------------------------------------------------------------------

  becomeFollower(term: NodeId, lead: NodeId): void {
    this.reset(term);
    this.setLead(lead);
    this.role = "follower";
  }

  /** A pre-candidate asks for votes for term+1 without changing term or vote (thesis §9.6). */
  becomePreCandidate(): void {
    invariant(this.role !== "leader", "leader cannot become pre-candidate");
    this.tracker.resetVotes();
    this.setLead(NONE);
    this.role = "preCandidate";
  }

  becomeCandidate(): void {
    invariant(this.role !== "leader", "leader cannot become candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
  }

  becomeLeader(): void {
    invariant(this.role === "candidate", "only a candidate becomes leader");
    this.reset(this.term);
    this.setLead(this.id);
    this.role = "leader";
    this.leaderContactElapsed = 0;
    const self = this.tracker.progress.get(this.id);
    invariant(self, "leader has no progress of its own");
    self.becomeReplicate();
    // Conf changes in the uncommitted tail may still be pending: allow no new one until applied.
    this.pendingConfIndex = this.log.lastIndex();
    // An empty entry of the new term commits everything before it (Raft §5.4.2, §8).
    const empty: Entry = {
      term: this.term,
      index: this.log.lastIndex() + 1,
      type: EntryType.Normal,
      data: new Uint8Array(0),
    };
    this.log.append([empty]);
    this.needsBroadcast = true;
  }

  private reset(term: number): void {
    if (term !== this.term) {
      invariant(term > this.term, () => `term must not go backwards (${this.term} -> ${term})`);
      this.term = term;
      this.vote = NONE;
    }
    this.setLead(NONE);
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.cfg.electionTick + (Math.floor(this.cfg.rng() * this.cfg.electionTick) % this.cfg.electionTick);
    this.leadTransferee = NONE;
    this.tracker.resetVotes();
    const last = this.log.lastIndex();
    for (const [id, pr] of this.tracker.progress) {
      const fresh = new Progress(last + 1, pr.isLearner, this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
      if (id === this.id) fresh.match = this.log.persistedIndex();
      this.tracker.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.needsBroadcast = false;
    this.commitBroadcast = false;
    this.dropLeaderReads();
    this.round = 0;
    this.roundSentTick.clear();
    this.confirmedRound = 0;
    this.leaseBaseTick = Number.NEGATIVE_INFINITY;
    this.leaseMinRound = 0;
    this.readRoundInFlight = 0;
  }

  /** Changing leader abandons reads forwarded to the old one: report them. */
  setLead(lead: NodeId): void {
    if (lead !== this.lead && this.forwardedReads.size > 0) {
      for (const ctx of this.forwardedReads.keys()) this.droppedReads.push({ ctx, reason: "stepped-down" });
      this.forwardedReads.clear();
    }
    this.lead = lead;
  }

  /** Leadership is lost: every read waiting on it is reported, never silently lost. */
  private dropLeaderReads(): void {
    for (const r of this.reads.drain()) {
      if (r.from === this.id) this.droppedReads.push({ ctx: r.ctx, reason: "stepped-down" });
      else
        this.send({
          type: "readIndexResp",
          from: this.id,
          to: r.from,
          term: this.term,
          ctx: r.ctx,
          index: 0,
          reject: true,
        });
    }
  }

  // ---------------------------------------------------------------------------
  // Time
  // ---------------------------------------------------------------------------

  tick(): void {
    this.ticks++;
    if (this.role === "leader") this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    this.leaderContactElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.cfg.preVote ? "pre" : "election");
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    this.leaderContactElapsed = 0;
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.checkQuorumActive()) {
        this.cfg.logger?.info(
          { id: this.id, term: this.term },
          "stepping down: no quorum heard within an election timeout",
        );
        this.becomeFollower(this.term, NONE);
        return;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      bcastHeartbeat(this);
      attachWaitingReads(this);
    }
  }

  /** Check-quorum: was a quorum active during the last election timeout? Resets the marks. */
  private checkQuorumActive(): boolean {
    const self = this.tracker.progress.get(this.id);
    if (self) self.recentActive = true;
    const active = this.tracker.quorumActive();
    for (const [id, pr] of this.tracker.progress) if (id !== this.id) pr.recentActive = false;
    return active;
  }

  // ---------------------------------------------------------------------------
  // Elections
  // ---------------------------------------------------------------------------

  /** Start an election if allowed (the local "MsgHup"). */
  hup(kind: CampaignKind): void {
    if (this.role === "leader") return;
    if (!this.promotable()) {
      this.cfg.logger?.debug({ id: this.id }, "not campaigning: not a voter (or a snapshot is pending)");
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.cfg.logger?.warn({ id: this.id }, "not campaigning: committed conf changes are not applied yet");
      return;
    }
    this.campaign(kind);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    let lo = this.log.applied + 1;
    const hi = this.log.committed + 1;
    while (lo < hi) {
      const ents = this.log.slice(lo, hi, this.cfg.maxCommittedSizePerReady);
      if (ents.some((e) => e.type === EntryType.ConfChange)) return true;
      lo += ents.length;
    }
    return false;
  }

  /** Raft §5.2: vote for yourself, ask every voter. With pre-vote, first ask without changing term. */
  campaign(kind: CampaignKind): void {
    let term: number;
    let type: "vote" | "preVote";
    if (kind === "pre") {
      this.becomePreCandidate();
      type = "preVote";
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      type = "vote";
      term = this.term;
    }
    this.tracker.recordVote(this.id, true);
    if (this.tracker.tallyVotes().result === "won") {
      // A single voter wins at once.
      if (kind === "pre") this.campaign("election");
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.tracker.voterIds()) {
      if (id === this.id) continue;
      this.send({ type, from: this.id, to: id, term, lastIndex, lastTerm, transfer: kind === "transfer" });
    }
  }

  /** Raft §5.2, §5.4.1: grant a vote to a candidate whose log is at least as up to date. */
  handleVoteRequest(m: Extract<Message, { type: "vote" | "preVote" }>): void {
    const canVote =
      this.vote === m.from ||
      // Not while we still hear from a leader (stickiness, and the lease we may have
      // acknowledged): another message may have raised our term to the candidate's
      // before its vote request arrived, so step()'s check for higher terms missed it.
      (this.vote === NONE && this.lead === NONE && (m.transfer || !this.inLease())) ||
      // A pre-vote for a future term can be granted even by a node that voted in this term.
      (m.type === "preVote" && m.term > this.term);
    const respType = m.type === "vote" ? "voteResp" : "preVoteResp";
    if (canVote && this.log.isUpToDate(m.lastIndex, m.lastTerm)) {
      // Answer with the request's term: a pre-candidate ignores answers from older terms.
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === "vote") {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  // ---------------------------------------------------------------------------
  // Proposals
  // ---------------------------------------------------------------------------

  /** Checks that this node may accept a proposal now; throws the reason otherwise. */
  checkCanPropose(): void {
    if (this.role !== "leader") throw new NotLeaderError(this.lead);
    if (!this.tracker.progress.has(this.id)) throw new ProposalDroppedError("removed");
    if (this.leadTransferee !== NONE) {
      throw new ProposalDroppedError("transferring-leadership", `to node ${this.leadTransferee}`);
    }
  }

  /** Reserves room for `bytes` of uncommitted data; a leader with nothing uncommitted always accepts one batch. */
  increaseUncommittedSize(bytes: number): boolean {
    if (
      this.uncommittedSize > 0 &&
      bytes > 0 &&
      this.uncommittedSize + bytes > this.cfg.maxUncommittedEntriesSize
    ) {
      return false;
    }
    this.uncommittedSize += bytes;
    return true;
  }

  reduceUncommittedSize(ents: readonly Entry[]): void {
    if (this.uncommittedSize === 0) return;
    let bytes = 0;
    for (const e of ents) bytes += e.data.length;
    this.uncommittedSize = Math.max(0, this.uncommittedSize - bytes);
  }
}
