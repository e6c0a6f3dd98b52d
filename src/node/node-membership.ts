/**
 * Membership on a running node: founding a cluster, joining one as a learner
 * (through any member, forwarded to the leader), promoting caught-up learners
 * by a configurable rule, and removing nodes (the removed node shuts down).
 */

import { setTimeout as sleep } from "node:timers/promises";
import {
  ConfChangeError,
  InvalidArgumentError,
  NotLeaderError,
  ProposalDroppedError,
  StoppedError,
  TimeoutError,
  TsraftError,
} from "../errors.ts";
import { encodeConfChange } from "../raft/confchange-codec.ts";
import {
  type ConfChange,
  type ConfChangeSingle,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  NONE,
  type NodeId,
} from "../raft/types.ts";
import type { RaftNode } from "./raft-node.ts";
import { decodeWithBody, encodeWithBody, num, RPC_JOIN, RPC_REMOVED, str } from "./wire.ts";

const JOIN_RPC_TIMEOUT_MS = 10_000;

/** The error of a change whose index went to another entry (or whose outcome cannot be known). */
const dropped = (why: string) => (index: number) =>
  new ProposalDroppedError("stepped-down", `index ${index} ${why}`);

interface Waiter {
  readonly term: number;
  readonly deadlineMs: number;
  resolve(cs: ConfState): void;
  reject(e: Error): void;
}

export class Membership<R, Q, A> {
  private readonly node: RaftNode<R, Q, A>;
  private readonly waiters = new Map<number, Waiter>();
  /** Learners seen caught up, and since when (ms). */
  private readonly caughtUpSince = new Map<NodeId, number>();
  private promoting = false;
  /** This node's removal was applied; see afterApply(). */
  private selfRemovalPending = false;
  private stopped = false;

  constructor(node: RaftNode<R, Q, A>) {
    this.node = node;
  }

  /**
   * A founding member with an empty log writes the initial configuration as
   * committed entries 1..n of term 1 — the same bytes on every founder, so
   * they agree without an election (the way etcd bootstraps).
   */
  async bootstrapIfNew(): Promise<void> {
    const n = this.node;
    const store = n.logStore;
    const founders = Object.entries(n.config.initialCluster)
      .map(([id, addr]) => [Number(id), addr] as const)
      .sort((a, b) => a[0] - b[0]);
    if (founders.length === 0) return;
    if (store.lastIndex() !== 0 || store.hardState().term !== 0 || store.snapshotMetadata().index !== 0)
      return;
    const enc = new TextEncoder();
    const entries: Entry[] = founders.map(([id, addr], i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({
        changes: [{ type: ConfChangeType.AddNode, nodeId: id }],
        transition: "auto",
        context: enc.encode(addr),
      }),
    }));
    for (const [id, addr] of founders) n.members.set(id, addr);
    await n.members.persist();
    await store.append(entries);
    await store.saveHardState({ term: 1, vote: NONE, commit: entries.length });
    await store.sync();
    n.logger.info({ members: founders.map(([id]) => id) }, "bootstrapped a new cluster");
  }

  /** A node started with `join` asks the cluster to add it as a learner, retrying until admitted. */
  async joinIfAsked(): Promise<void> {
    const n = this.node;
    const targets = Object.entries(n.config.join);
    if (targets.length === 0) return;
    if (n.raw.status().confState.voters.length > 0 || n.logStore.lastIndex() > 0) return; // already a member
    const address = n.advertisedAddress();
    const deadline = performance.now() + n.config.limits.readyTimeoutMs;
    for (const [id, addr] of targets) n.transport.addPeer(Number(id), addr);
    let lastErr: unknown;
    for (let attempt = 0; performance.now() < deadline && !this.stopped; attempt++) {
      const [id] = targets[attempt % targets.length]!;
      try {
        const resp = await n.transport.request(Number(id), RPC_JOIN, encodeWithBody({ id: n.id, address }), {
          timeoutMs: JOIN_RPC_TIMEOUT_MS,
        });
        const answer = decodeWithBody(resp).header;
        if (typeof answer.admittedAt === "number" && Number.isSafeInteger(answer.admittedAt)) {
          n.members.admittedAt = Math.max(0, answer.admittedAt);
        }
        // Durable before anything is replicated here: a restart must still know where its
        // membership began.
        await this.learnMembers(answer.members);
        n.logger.info({ via: Number(id) }, "joined the cluster as a learner");
        return;
      } catch (e) {
        // Refused for good (the id is a member at another address): no retry will change it.
        if (e instanceof TsraftError && e.code === "TSRAFT_ERR_CONF_CHANGE") throw e;
        lastErr = e;
        await sleep(Math.min(1000, 100 * 2 ** Math.min(attempt, 4)));
      }
    }
    throw new TimeoutError(
      `joining the cluster (last error: ${String(lastErr)})`,
      n.config.limits.readyTimeoutMs,
    );
  }

  private learnMembers(members: unknown): Promise<void> {
    const n = this.node;
    if (typeof members === "object" && members !== null) {
      for (const [id, addr] of Object.entries(members as Record<string, unknown>)) {
        if (typeof addr !== "string" || !/^[1-9]\d*$/.test(id)) continue;
        n.members.set(Number(id), addr);
        if (Number(id) !== n.id) n.transport.addPeer(Number(id), addr);
      }
    }
    return n.members.persist();
  }

  registerHandlers(): void {
    const n = this.node;
    n.transport.handle(RPC_JOIN, async (payload) => {
      const { header } = decodeWithBody(payload);
      const id = num(header, "id");
      const address = str(header, "address");
      const st = n.raw.status();
      if (st.role !== "leader") {
        if (st.lead === NONE || st.lead === n.id) throw new NotLeaderError(NONE);
        // Any member can be asked: pass it on to the leader.
        return n.transport.request(st.lead, RPC_JOIN, payload, { timeoutMs: JOIN_RPC_TIMEOUT_MS });
      }
      // Refuses an id that is a member at another address (kindOf throws).
      this.kindOf(id, address);
      if (!this.isMember(id)) await this.change({ type: ConfChangeType.AddLearner, nodeId: id }, address);
      // At or above the entry that admitted it: the joiner ignores removals of its id before it
      // (a node that reuses a removed node's id replays that removal on its way there).
      return encodeWithBody({ members: n.members.toRecord(), admittedAt: n.raw.status().commit });
    });
    n.transport.handle(RPC_REMOVED, (_payload, ctx) => {
      const stillMember = this.isMember(n.id);
      const lead = n.raw.status().lead;
      // The leader that removed us says so (we may not have applied it yet), or we know it already.
      // A node that reuses a removed node's id must not be shut down by anyone else's stale word.
      if (stillMember && ctx.from !== lead) {
        n.logger.warn(
          { by: ctx.from, leader: lead },
          "ignored a removal notice: not from the leader, and still a member",
        );
        return new Uint8Array(0);
      }
      n.logger.info({ by: ctx.from, stillMember }, "told that this node was removed");
      this.selfRemoved();
      return new Uint8Array(0);
    });
  }

  /** One-change membership update; resolves with the configuration once applied. */
  change(single: ConfChangeSingle, address: string): Promise<ConfState> {
    if (!Number.isSafeInteger(single.nodeId) || single.nodeId <= 0) {
      return Promise.reject(new InvalidArgumentError(`invalid node id ${single.nodeId}`));
    }
    if (single.type !== ConfChangeType.RemoveNode && !/^[^\s:]+:\d{1,5}$/.test(address)) {
      return Promise.reject(new InvalidArgumentError(`node ${single.nodeId} needs an address host:port`));
    }
    return this.propose({
      changes: [single],
      transition: "auto",
      context: new TextEncoder().encode(address),
    });
  }

  async propose(cc: ConfChange): Promise<ConfState> {
    const n = this.node;
    if (!n.running) throw new StoppedError();
    let pos: { index: number; term: number };
    try {
      pos = n.raw.proposeConfChange(cc);
    } catch (e) {
      throw e instanceof NotLeaderError ? n.notLeader() : e;
    }
    // Waiters at or above this index belong to a term this node lost and regained
    // leadership since: their entries were cut from its log, never to commit.
    this.failWaiters((i) => i >= pos.index, dropped(`was replaced in term ${pos.term}`));
    n.schedule();
    const deadlineMs = performance.now() + n.config.limits.proposalTimeoutMs;
    return new Promise<ConfState>((resolve, reject) => {
      this.waiters.set(pos.index, { term: pos.term, deadlineMs, resolve, reject });
    });
  }

  /**
   * Entries up to `index` are applied (or covered by a snapshot): a waiter
   * still here lost its index to an entry that is not its change (a new
   * leader's), or cannot learn its outcome.
   */
  settleUpTo(index: number, why: string): void {
    if (this.waiters.size > 0) this.failWaiters((i) => i <= index, dropped(why));
  }

  /** A ConfChange entry was applied (after the core took it in, in advance()). */
  onApplied(index: number, term: number, cs: ConfState): void {
    const w = this.waiters.get(index);
    if (!w) return;
    this.waiters.delete(index);
    if (w.term === term) w.resolve(cs);
    else w.reject(new ProposalDroppedError("stepped-down", `index ${index} committed in term ${term}`));
  }

  /** `id` left the configuration; `asLeader`: this node led when the change was applied. */
  onRemoved(id: NodeId, asLeader: boolean): void {
    const n = this.node;
    this.caughtUpSince.delete(id);
    if (id === n.id) {
      // Decided once applied catches up with the commit: a node that reuses a removed node's
      // id replays that old removal before the entry that added it back.
      this.selfRemovalPending = true;
      return;
    }
    if (asLeader) {
      // Tell the removed node (best effort), then forget it.
      void n.transport
        .request(id, RPC_REMOVED, new Uint8Array(0), { timeoutMs: 2000 })
        .catch(() => {})
        .finally(() => {
          if (n.running && !this.isMember(id)) n.transport.removePeer(id);
        });
    } else {
      // Unless a later entry (applied by then) added it back.
      setTimeout(() => {
        if (n.running && !this.isMember(id)) n.transport.removePeer(id);
      }, 2000).unref();
    }
    n.members.delete(id);
  }

  /**
   * After each applied batch: a removal of this node that is still the last
   * word once everything committed is applied shuts the node down.
   */
  afterApply(applied: number): void {
    if (!this.selfRemovalPending) return;
    const n = this.node;
    // The local commit index is clamped to the entries received so far: a joiner catching up
    // in batches can be "caught up" right after an old removal of its id, so it also waits
    // for the index it was admitted at.
    if (applied < Math.max(n.raw.status().commit, n.members.admittedAt)) return;
    this.selfRemovalPending = false;
    if (this.isMember(n.id)) {
      n.logger.info({ applied }, "an earlier removal of this node id was followed by its re-admission");
      return;
    }
    this.selfRemoved();
  }

  /** In the configuration as applied (incoming or outgoing, voter or learner). */
  private isMember(id: NodeId): boolean {
    return confMembers(this.node.raw.confState()).has(id);
  }

  /**
   * What `id` is in the applied configuration (a voter of the incoming
   * config, a learner, or null); a member at another address than `address`
   * is a ConfChangeError (remove it first).
   */
  kindOf(id: NodeId, address: string | undefined): "voter" | "learner" | null {
    const cs = this.node.raw.confState();
    const at = this.node.members.get(id);
    if (address && at !== undefined && at !== address && confMembers(cs).has(id)) {
      throw new ConfChangeError(
        `node ${id} is a member at ${at}, not ${address}: remove it first to move it`,
      );
    }
    if (cs.voters.includes(id)) return "voter";
    return cs.learners.includes(id) || cs.learnersNext.includes(id) ? "learner" : null;
  }

  private selfRemoved(): void {
    if (this.stopped) return;
    this.stopped = true;
    // Let the current Ready finish, then shut down (run(), if waiting, resolves with it).
    setImmediate(() => {
      this.node.emit("removed");
      void this.node
        .stop()
        .catch((e: unknown) => this.node.logger.error({ err: String(e) }, "stopping after removal"));
    });
  }

  /** Leader: promote learners that stayed within `promoteWithinEntries` of the commit for `promoteAfterMs`. */
  onTick(): void {
    const n = this.node;
    const now = performance.now();
    this.failWaiters(
      (_i, w) => w.deadlineMs <= now,
      (i) => new TimeoutError(`membership change at index ${i}`, n.config.limits.proposalTimeoutMs),
    );
    const rule = n.config.membership;
    if (!rule.autoPromote || this.promoting) return;
    const st = n.raw.status();
    if (st.role !== "leader") {
      this.caughtUpSince.clear();
      return;
    }
    // A learner must also be heard from: one that went silent keeps a match index that looks
    // caught up, and promoting it would count a dead voter (a single voter would lose quorum).
    const liveWithinMs = n.config.raft.electionTicks * n.config.raft.tickMs;
    for (const p of st.progress) {
      if (!p.learner) continue;
      const heard = n.lastHeardFrom(p.id);
      // Still probing or receiving a snapshot is not caught up, however short the log is.
      if (
        p.state !== "replicate" ||
        st.commit - p.match > rule.promoteWithinEntries ||
        heard === undefined ||
        now - heard > liveWithinMs
      ) {
        this.caughtUpSince.delete(p.id);
        continue;
      }
      const since = this.caughtUpSince.get(p.id) ?? now;
      this.caughtUpSince.set(p.id, since);
      if (now - since < rule.promoteAfterMs) continue;
      this.promoting = true;
      n.logger.info({ learner: p.id, match: p.match, commit: st.commit }, "promoting caught-up learner");
      n.promote(p.id)
        .catch((e: unknown) => {
          // A pending conf change or a leader change: the next tick tries again.
          if (!(e instanceof TsraftError))
            n.logger.warn({ learner: p.id, err: String(e) }, "promotion failed");
        })
        .finally(() => {
          this.promoting = false;
          this.caughtUpSince.delete(p.id);
        });
      return;
    }
  }

  /** The voter being replicated to with the most of the log, to hand leadership to. */
  bestTransferTarget(): NodeId | undefined {
    const st = this.node.raw.status();
    const voters = new Set(st.confState.voters);
    let best: { id: NodeId; match: number } | undefined;
    for (const p of st.progress) {
      // A peer not being replicated to (down, unreachable, catching up) could not take over.
      if (p.id === st.id || !voters.has(p.id) || p.state !== "replicate") continue;
      if (!best || p.match > best.match) best = { id: p.id, match: p.match };
    }
    return best?.id;
  }

  /** Fails the waiters `which` picks, each with the error `why` makes for its index. */
  private failWaiters(which: (index: number, w: Waiter) => boolean, why: (index: number) => Error): void {
    for (const [i, w] of this.waiters) {
      if (!which(i, w)) continue;
      this.waiters.delete(i);
      w.reject(why(i));
    }
  }

  stop(): void {
    this.failAll(new StoppedError());
  }

  /** Stops joining and promoting; pending changes fail with `e` (a storage failure, or stopping). */
  failAll(e: Error): void {
    this.stopped = true;
    for (const w of this.waiters.values()) w.reject(e);
    this.waiters.clear();
  }
}

/** Every node in a configuration: voters and learners, incoming and outgoing. */
export function confMembers(cs: ConfState): Set<NodeId> {
  return new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]);
}
