/**
 * RawNode: the public face of the pure Raft core. Feed it inputs (tick, step,
 * propose, ...); take its outputs as a {@link Ready}; acknowledge with
 * {@link RawNode.advance}. It does no I/O, reads no clock and draws no
 * randomness of its own: the same inputs always give the same outputs.
 *
 * The contract with the runtime, asserted where it can be:
 *  - Hard state and entries of a Ready are durable before its `messages` are
 *    sent (`messagesNow` may go before: a leader's replication does not depend
 *    on its own write, and the leader counts itself only once it is durable).
 *  - Committed entries are applied in order, exactly once: each Ready hands
 *    out the entries after the previous Ready's, and advance() moves `applied`.
 *  - One Ready at a time: ready() again before advance() is a bug.
 */

import { InvalidArgumentError, invariant, ProposalDroppedError } from "../errors.ts";
import type { RaftConfig } from "./config.ts";
import { bcastAppend, onLeaderPersisted, transferLeadership } from "./leader.ts";
import { applyConfChangeEntry, maybeAutoLeave, proposeConfChange } from "./membership.ts";
import { Raft } from "./raft.ts";
import { type ReadMode, readIndex } from "./reads.ts";
import { step } from "./step.ts";
import { confStateOf } from "./tracker.ts";
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  type MessageType,
  NONE,
  type NodeId,
  type RaftStatus,
  type Ready,
  type SoftState,
} from "./types.ts";

/** Where proposed entries landed; a proposal is lost if a different term later commits at its index. */
export interface ProposalPosition {
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly term: number;
}

/** Leader traffic that does not wait for the leader's own write (Raft thesis §10.2.1). */
const SEND_BEFORE_PERSIST: ReadonlySet<MessageType> = new Set([
  "append",
  "heartbeat",
  "snapshot",
  "timeoutNow",
  "readIndexResp",
]);

export class RawNode {
  private readonly r: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private pending: Ready | null = null;
  /** The last Ready held a commit broadcast back (deferCommitBroadcast): the next one sends it. */
  private commitDeferred = false;
  /** The term and vote known durable (what leader traffic sent before a write may carry). */
  private durableTerm: number;
  private durableVote: NodeId;

  constructor(config: RaftConfig) {
    this.r = new Raft(config);
    this.prevSoft = this.r.softState();
    this.prevHard = this.r.hardState();
    this.durableTerm = this.prevHard.term;
    this.durableVote = this.prevHard.vote;
  }

  get id(): NodeId {
    return this.r.id;
  }

  /** Advances logical time by one tick (election and heartbeat timeouts count ticks). */
  tick(): void {
    this.r.tick();
  }

  /** Feeds a message from a peer. Messages for another node are rejected. */
  step(m: Message): void {
    if (m.to !== this.r.id)
      throw new InvalidArgumentError(`message for node ${m.to} stepped into node ${this.r.id}`);
    if (!Number.isSafeInteger(m.term) || m.term < 0) throw new InvalidArgumentError(`invalid term ${m.term}`);
    step(this.r, m);
  }

  /**
   * Starts an election now (with pre-vote if configured). It overrides leader
   * stickiness: with leases on, a node that acknowledged the leader's lease and
   * campaigns can void it. For tests and tools; applications move leadership
   * with transferLeader.
   */
  campaign(): void {
    this.r.hup(this.r.cfg.preVote ? "pre" : "election");
  }

  /**
   * Appends commands to the leader's log. Throws NotLeaderError (with the
   * leader hint) or ProposalDroppedError (with the reason) when they cannot be.
   */
  propose(data: readonly Uint8Array[]): ProposalPosition {
    const r = this.r;
    r.checkCanPropose();
    if (data.length === 0) throw new InvalidArgumentError("propose needs at least one entry");
    if (data.length > r.cfg.maxProposalEntries) {
      throw new InvalidArgumentError(
        `${data.length} entries in one proposal (max ${r.cfg.maxProposalEntries})`,
      );
    }
    let bytes = 0;
    for (const d of data) bytes += d.length;
    if (!r.increaseUncommittedSize(bytes)) {
      throw new ProposalDroppedError(
        "uncommitted-size-exceeded",
        `${r.uncommittedSize} bytes uncommitted, limit ${r.cfg.maxUncommittedEntriesSize}`,
      );
    }
    const first = r.log.lastIndex() + 1;
    const ents: Entry[] = data.map((d, i) => ({
      term: r.term,
      index: first + i,
      type: EntryType.Normal,
      data: d,
    }));
    r.log.append(ents);
    r.needsBroadcast = true;
    return { firstIndex: first, lastIndex: first + ents.length - 1, term: r.term };
  }

  /** Proposes a membership change (one pending at a time). Throws ConfChangeError if it is invalid now. */
  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    return proposeConfChange(this.r, cc);
  }

  /**
   * Requests a linearizable read. `ctx` must be unique among pending reads; it
   * comes back in a ReadState (serve once applied >= its index) or in
   * droppedReads. "lease" answers at once while the leader lease holds.
   */
  readIndex(ctx: string, mode: ReadMode = "safe"): void {
    readIndex(this.r, ctx, mode);
  }

  /**
   * Forgets a read nobody waits for any more (it timed out): a read forwarded
   * to the leader whose request or answer was lost would otherwise hold its
   * slot among `maxPendingReads` until the leader changes.
   */
  cancelRead(ctx: string): void {
    this.r.forwardedReads.delete(ctx);
  }

  /** The index of a snapshot the core accepted and the runtime has not installed yet, or null. */
  pendingSnapshotIndex(): number | null {
    return this.r.log.unstable.snapshot?.metadata.index ?? null;
  }

  /** Asks the leader to hand leadership to `target` (forwarded if this node is a follower). */
  transferLeader(target: NodeId): void {
    const r = this.r;
    if (r.role === "leader") transferLeadership(r, target);
    else if (r.lead !== NONE)
      r.send({ type: "transferLeader", from: r.id, to: r.lead, term: r.term, target });
    else throw new InvalidArgumentError("no leader known to transfer leadership from");
  }

  /** The transport could not reach `id`: stop pipelining to it until it answers again. */
  reportUnreachable(id: NodeId): void {
    const pr = this.r.role === "leader" ? this.r.tracker.progress.get(id) : undefined;
    if (pr?.state === "replicate") pr.becomeProbe();
  }

  /** The runtime finished (or failed) sending a snapshot to `id`. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    const pr = this.r.role === "leader" ? this.r.tracker.progress.get(id) : undefined;
    if (pr?.state !== "snapshot") return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for a heartbeat response before probing: the follower may be busy installing.
    pr.msgAppFlowPaused = true;
  }

  hasReady(): boolean {
    const r = this.r;
    if (this.pending) return false;
    if (r.needsBroadcast || r.msgs.length > 0 || r.readStates.length > 0 || r.droppedReads.length > 0)
      return true;
    if (r.commitBroadcast && r.role === "leader") return true;
    if (r.log.unstable.hasNextEntries() || r.log.unstable.snapshot) return true;
    if (!softEqual(r.softState(), this.prevSoft) || !hardEqual(r.hardState(), this.prevHard)) return true;
    return r.log.hasNextCommittedEntries();
  }

  ready(): Ready {
    invariant(this.pending === null, "ready() called again before advance()");
    const r = this.r;
    if (r.role !== "leader") r.commitBroadcast = false;
    // Held back at most one Ready, and only one that has entries to apply (see deferCommitBroadcast).
    const deferCommit =
      r.cfg.deferCommitBroadcast &&
      r.commitBroadcast &&
      !r.needsBroadcast &&
      !this.commitDeferred &&
      r.log.hasNextCommittedEntries();
    if ((r.needsBroadcast || r.commitBroadcast) && r.role === "leader" && !deferCommit) bcastAppend(r);
    this.commitDeferred = deferCommit;
    r.needsBroadcast = false;
    const soft = r.softState();
    const hard = r.hardState();
    const committedEntries = r.log.nextCommittedEntries();
    r.reduceUncommittedSize(committedEntries);
    const termOrVoteChanged = hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote;
    // Leader traffic may leave before the write only if the term and vote it
    // carries are already durable (not merely handed to storage).
    const termVoteDurable = hard.term === this.durableTerm && hard.vote === this.durableVote;
    let messages: Message[] = r.msgs;
    let messagesNow: Message[] = [];
    if (r.role === "leader" && termVoteDurable) {
      messagesNow = messages.filter((m) => SEND_BEFORE_PERSIST.has(m.type));
      messages = messages.filter((m) => !SEND_BEFORE_PERSIST.has(m.type));
    }
    r.msgs = [];
    const entries = r.log.unstable.nextEntries();
    // From here these entries are being written: the next Ready starts after them.
    r.log.unstable.acceptInProgress();
    const snapshot = r.log.unstable.snapshot;
    const rd: Ready = {
      softState: softEqual(soft, this.prevSoft) ? null : soft,
      hardState: hardEqual(hard, this.prevHard) ? null : hard,
      entries,
      snapshot,
      committedEntries,
      messages,
      messagesNow,
      readStates: r.readStates,
      droppedReads: r.droppedReads,
      mustSync: entries.length > 0 || termOrVoteChanged || snapshot !== null,
    };
    r.readStates = [];
    r.droppedReads = [];
    this.pending = rd;
    return rd;
  }

  /**
   * Acknowledges the last Ready: its committed entries are applied (membership
   * changes among them take effect here) and its snapshot is installed. In the
   * default synchronous mode it also means its entries and hard state are
   * durable and its messages sent; with `asyncStorageWrites` durability is
   * reported separately by {@link RawNode.persisted}.
   */
  advance(): void {
    const rd = this.pending;
    invariant(rd !== null, "advance() without a pending Ready");
    const r = this.r;
    if (rd.softState) this.prevSoft = rd.softState;
    if (rd.hardState) this.prevHard = rd.hardState;
    if (!r.cfg.asyncStorageWrites) this.markDurable(rd);
    if (rd.snapshot) {
      r.log.unstable.stableSnapTo(rd.snapshot.metadata.index);
      if (rd.snapshot.metadata.index > r.log.applied) r.log.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.committedEntries.length > 0) {
      const last = rd.committedEntries[rd.committedEntries.length - 1]!;
      invariant(last.index > r.log.applied, () => `entry ${last.index} was applied twice`);
      // One at or below configIndex is in the configuration already: a snapshot that covers it
      // was restored since this Ready was made.
      for (const e of rd.committedEntries)
        if (e.type === EntryType.ConfChange && e.index > r.configIndex) applyConfChangeEntry(r, e);
      r.log.appliedTo(last.index);
    }
    if (!r.cfg.asyncStorageWrites && r.role === "leader") onLeaderPersisted(r);
    maybeAutoLeave(r);
    this.pending = null;
  }

  /**
   * Asynchronous storage writes only: the entries and hard state of `rd` (a
   * Ready already advanced) are durable. Call in Ready order; then send
   * `rd.messages`. A leader counts itself toward commit only from here.
   */
  persisted(rd: Ready): void {
    invariant(this.r.cfg.asyncStorageWrites, "persisted() is for asyncStorageWrites mode");
    invariant(this.pending !== rd, "persisted() before advance() of the same Ready");
    this.markDurable(rd);
    if (this.r.role === "leader") onLeaderPersisted(this.r);
  }

  private markDurable(rd: Ready): void {
    if (rd.hardState) {
      this.durableTerm = rd.hardState.term;
      this.durableVote = rd.hardState.vote;
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      this.r.log.unstable.stableTo(last.index, last.term);
    }
  }

  /** The configuration as it stands (to persist with a snapshot taken at the applied index). */
  confState(): ConfState {
    return confStateOf(this.r.tracker.config);
  }

  status(): RaftStatus {
    const r = this.r;
    const progress =
      r.role === "leader"
        ? r.tracker.memberIds().map((id) => {
            const pr = r.tracker.progress.get(id)!;
            return {
              id,
              match: pr.match,
              next: pr.next,
              state: pr.state,
              learner: pr.isLearner,
              recentActive: pr.recentActive,
              inflight: pr.inflights.count,
              pendingSnapshot: pr.pendingSnapshot,
            };
          })
        : [];
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lead: r.lead,
      role: r.role,
      lastIndex: r.log.lastIndex(),
      confState: confStateOf(r.tracker.config),
      leadTransferee: r.leadTransferee,
      progress,
    };
  }

  /** The protocol state behind this node, for white-box tests and the simulator's invariant checks. */
  get internals(): Raft {
    return this.r;
  }
}

function softEqual(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

function hardEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
