/**
 * One simulated server: a durable log (a {@link MemoryRaftLog} that only ever
 * holds what a write made durable), the pure core reading it, a KV state
 * machine, and the writes in flight: in synchronous mode at most one (the
 * Ready being persisted, `pending`); with asynchronous storage writes a queue
 * of them (`inflight`), completing in order, plus possibly a Ready carrying a
 * snapshot that waits for them (`pending`).
 *
 * Durability model: a Ready's snapshot, entries and hard state reach the
 * durable log only when its simulated fsync completes. A crash before that
 * loses them, or (a torn write) keeps a strict prefix of its entries; with
 * asynchronous writes, a crash loses every write in flight, or (torn) keeps
 * some of the oldest whole and a strict prefix of the next one's entries. A
 * commit-only hard state is written without fsync (`mustSync` false) and may
 * be lost on crash; so may anything else a Ready wrote without one (entries,
 * a term or vote: only a core that gets `mustSync` wrong writes them so) —
 * a crash may take the disk back to its state at the last fsync. The state machine is volatile (it restarts from the
 * durable snapshot and the core hands the committed entries after it back)
 * unless `params.durableApply`: then it survives crashes and its applied
 * index, possibly above the durable commit index, is passed to the core.
 */

import type { RaftConfig } from "../../raft/config.ts";
import { MemoryRaftLog, type MemoryRaftLogState } from "../../raft/memory-log.ts";
import { RawNode } from "../../raft/raw-node.ts";
import type { ConfState, Entry, HardState, NodeId, Ready } from "../../raft/types.ts";
import { Prng } from "../prng.ts";
import { type BugSwitches, patchCore } from "./bugs.ts";
import { chainHash, KvMachine } from "./kv-machine.ts";
import { PageCacheLog } from "./page-cache.ts";
import type { SimParams } from "./profile.ts";

/** The bootstrap snapshot every initial member starts from (index 1, term 1), carrying the configuration. */
export const BOOTSTRAP_INDEX = 1;

/** A write handed to the disk and not yet durable (asynchronous storage writes). */
export interface InflightWrite {
  readonly rd: Ready;
  /** Simulated time its fsync completes. */
  readonly due: number;
  /** Its `messages` already left (only under a bug switch). */
  readonly sent: boolean;
}

export class SimNode {
  readonly id: NodeId;
  readonly durable: MemoryRaftLog;
  /** Asynchronous writes: what the core reads (the durable log plus the writes in flight). */
  readonly view: PageCacheLog;
  raw: RawNode | null = null;
  sm = new KvMachine();
  alive = false;
  /** Bumped on every crash: events scheduled by an earlier incarnation are void. */
  incarnation = 0;
  /**
   * The Ready being persisted (its fsync event is scheduled); no other Ready is
   * taken meanwhile. With asynchronous writes only a Ready with a snapshot is
   * held here (the snapshot must be installed before advance()).
   */
  pending: Ready | null = null;
  /** Asynchronous writes: when the pending snapshot Ready's fsync completes. */
  pendingDue = 0;
  /** Asynchronous writes: Readys already advanced whose writes are in flight, oldest first. */
  readonly inflight: InflightWrite[] = [];
  /** Asynchronous writes: when the newest write handed to the disk completes (fsyncs complete in order). */
  lastDue = 0;
  /** Tick period of the current incarnation (clock drift is drawn per incarnation). */
  tickUs = 0;
  /** The commit index of the last hard state written with fsync. */
  private syncedCommit = 0;
  /** Whether the durable hard state includes an unsynced commit-only update. */
  private unsynced = false;
  /** Hard state before the last term/vote change (for the forget-vote bug switch). */
  private previousHard: HardState;
  /** The durable state at the last fsync, while writes made since without one could be lost. */
  private beforeUnsynced: MemoryRaftLogState | null = null;
  /** Set after a membership change is applied: snapshot soon so new members can catch up from it. */
  snapshotDue = false;
  /** Removed from the configuration and stopped for good. */
  decommissioned = false;
  /** Has appeared in a leader's configuration (until then a removal means nothing). */
  joined: boolean;
  /** Commit index last observed in this incarnation (monotonic within one). */
  lastCommit = 0;
  readonly createdAt: number;

  constructor(id: NodeId, confState: ConfState | null, createdAt: number) {
    this.id = id;
    this.createdAt = createdAt;
    if (confState) {
      this.durable = new MemoryRaftLog(confState);
      const sm = new KvMachine();
      sm.applied = BOOTSTRAP_INDEX;
      sm.chain = chainHash(0, BOOTSTRAP_INDEX, 1);
      this.durable.applySnapshot({
        metadata: { index: BOOTSTRAP_INDEX, term: 1, confState },
        data: sm.snapshot(),
      });
      this.durable.setHardState({ term: 1, vote: 0, commit: BOOTSTRAP_INDEX });
      this.syncedCommit = BOOTSTRAP_INDEX;
      this.joined = true;
    } else {
      // A new member starts empty and learns everything from the leader's snapshot.
      this.durable = new MemoryRaftLog();
      this.joined = false;
    }
    this.previousHard = this.durable.hardState;
    this.view = new PageCacheLog(this.durable);
  }

  /** Starts (or restarts) from durable state only. */
  start(params: SimParams, seed: number, bugs: BugSwitches, clock: Prng): void {
    // A durable state machine survives a crash (it is never behind the durable snapshot: it made
    // every local snapshot and was replaced by every installed one).
    if (
      !params.durableApply ||
      this.incarnation === 0 ||
      this.sm.applied < this.durable.snapshot().metadata.index
    )
      this.sm = KvMachine.fromSnapshot(this.durable.snapshot().data);
    const rng = new Prng(seed * 7919 + this.id * 104729 + this.incarnation);
    const cfg: RaftConfig = {
      id: this.id,
      storage: params.asyncWrites ? this.view : this.durable,
      rng: () => rng.next(),
      electionTick: params.electionTick,
      heartbeatTick: params.heartbeatTick,
      preVote: params.preVote,
      checkQuorum: params.checkQuorum,
      leaseTicks: params.leaseTicks,
      maxSizePerMsg: params.maxSizePerMsg,
      maxInflightMsgs: params.maxInflightMsgs,
      applied: this.sm.applied,
      asyncStorageWrites: params.asyncWrites,
      deferCommitBroadcast: params.deferCommitBroadcast,
      applyUnpersisted: params.asyncWrites && params.applyUnpersisted,
    };
    this.raw = new RawNode(cfg);
    patchCore(this.raw, bugs);
    this.alive = true;
    this.pending = null;
    this.inflight.length = 0;
    this.view.clear();
    this.lastDue = 0;
    this.lastCommit = this.raw.internals.log.committed;
    const drift = (clock.next() * 2 - 1) * params.clockDrift;
    this.tickUs = Math.max(1, Math.round(params.tickUs * (1 + drift)));
  }

  /**
   * Makes a Ready durable, in the contract's order: snapshot, entries, hard
   * state. Returns nothing; the caller checks invariants on what was written.
   */
  persist(rd: Ready): void {
    const old = this.durable.hardState;
    const termOrVote =
      rd.hardState !== null && (old.term !== rd.hardState.term || old.vote !== rd.hardState.vote);
    if (!rd.mustSync && (rd.entries.length > 0 || rd.snapshot !== null || termOrVote)) {
      // Written without an fsync: until the next one, a crash may undo it (and what follows it).
      this.beforeUnsynced ??= this.durable.saveState();
    }
    if (rd.snapshot) this.durable.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) this.durable.append(rd.entries);
    if (rd.hardState) {
      if (termOrVote) this.previousHard = old;
      this.durable.setHardState(rd.hardState);
    }
    if (rd.mustSync) {
      this.syncedCommit = this.durable.hardState.commit;
      this.unsynced = false;
      this.beforeUnsynced = null;
    } else if (rd.hardState) {
      this.unsynced = true;
    }
  }

  /**
   * Stops the node. Returns the entries a torn write left durable (a strict
   * prefix of the pending Ready's), which the caller must check like any write.
   * Asynchronous writes still in flight are lost: the caller makes any that
   * survive (whole or torn) durable first, through {@link persist} and
   * {@link tear}.
   */
  crash(prng: Prng, params: SimParams, bugs: BugSwitches): Entry[] {
    let torn: Entry[] = [];
    const rd = this.pending;
    if (rd && !rd.snapshot && rd.entries.length > 1 && prng.chance(params.tornWriteRate)) {
      torn = this.tear(prng, rd);
    }
    if (this.beforeUnsynced && prng.chance(params.loseUnsyncedRate)) {
      // Writes the core said needed no fsync did not reach the disk.
      this.durable.restoreState(this.beforeUnsynced);
      this.syncedCommit = Math.min(this.syncedCommit, this.durable.hardState.commit);
    }
    this.beforeUnsynced = null;
    // A restart resumes applying after the durable snapshot, so the commit index never drops below it.
    const floor = Math.max(this.durable.firstIndex() - 1, this.durable.snapshot().metadata.index);
    if (this.unsynced && prng.chance(params.loseUnsyncedRate)) {
      this.durable.setHardState({ ...this.durable.hardState, commit: Math.max(this.syncedCommit, floor) });
    }
    if (bugs.forgetVote) {
      // BUG SWITCH: the last term/vote change was never really durable.
      const commit = Math.min(Math.max(this.previousHard.commit, floor), this.durable.lastIndex());
      this.durable.setHardState({ ...this.previousHard, commit: Math.max(commit, floor) });
    }
    this.unsynced = false;
    this.pending = null;
    this.inflight.length = 0;
    this.view.clear();
    this.raw = null;
    this.alive = false;
    this.incarnation++;
    return torn;
  }

  /** A torn write: a strict prefix of `rd`'s entries reached the disk, and nothing else of it. */
  tear(prng: Prng, rd: Ready): Entry[] {
    if (rd.snapshot || rd.entries.length < 2) return [];
    const torn = rd.entries.slice(0, 1 + prng.int(rd.entries.length - 1));
    this.durable.append(torn);
    return torn;
  }

  /** Takes a local snapshot at the applied index and compacts the log (no Ready may be pending). */
  maybeSnapshot(params: SimParams): void {
    const raw = this.raw;
    if (!raw || this.pending) return;
    const snapIndex = this.durable.snapshot().metadata.index;
    const applied = this.sm.applied;
    if (applied <= snapIndex || applied > this.durable.lastIndex()) return;
    if (!this.snapshotDue && applied - snapIndex < params.snapshotEvery) return;
    this.snapshotDue = false;
    // Taking a snapshot syncs what it covers: there is no going back past it.
    this.beforeUnsynced = null;
    this.durable.createSnapshot(applied, raw.confState(), this.sm.snapshot());
    const compactTo = applied - params.compactKeep;
    if (compactTo > this.durable.firstIndex() - 1) this.durable.compact(compactTo);
  }
}
