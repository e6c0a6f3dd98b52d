/**
 * Simulated clients of the KV state machine. Each client runs one operation
 * at a time over a small key set (so operations conflict), records it in the
 * history with simulated invocation and response times, and:
 *  - sends writes to the node it believes leads, following NotLeaderError
 *    hints; a write is acknowledged when that node applies the proposal's
 *    (index, term), and failed only when a different term is applied at its
 *    index (then it can never commit: the certain case). A crash, a snapshot
 *    jumping over the index or a timeout leave the outcome unknown.
 *  - reads through ReadIndex ("safe") or the leader lease ("lease"), served
 *    once the local state machine has applied the read index; sometimes at a
 *    follower, which forwards the request to the leader.
 */

import {
  NotLeaderError,
  ProposalDroppedError,
  ReadDroppedError,
  ResourceExhaustedError,
} from "../../errors.ts";
import type { Entry, NodeId, ReadState } from "../../raft/types.ts";
import type { HistoryRecorder } from "../history.ts";
import type { Prng } from "../prng.ts";
import type { Invariants } from "./invariants.ts";
import { encodeCommand, type KvCommand, type KvResult } from "./kv-machine.ts";
import type { SimParams } from "./profile.ts";
import type { SimNode } from "./sim-node.ts";
import type { SimWorld } from "./world.ts";

type OpKind = "get" | "put" | "cas" | "delete";

interface ClientOp {
  readonly handle: number;
  readonly client: Client;
  readonly kind: OpKind;
  readonly key: string;
  readonly command: KvCommand | null;
  readonly mode: "safe" | "lease";
  attempts: number;
  /** A propose() succeeded somewhere: from now on the write may take effect. */
  proposed: boolean;
  done: boolean;
}

interface Client {
  readonly id: number;
  leader: NodeId;
  seq: number;
  /** Values this client saw or wrote per key, so cas has a fair chance to match. */
  readonly recent: Map<string, string[]>;
}

interface WriteWait {
  readonly op: ClientOp;
  readonly term: number;
}

interface ReadWait {
  readonly op: ClientOp;
  readonly node: NodeId;
  index: number;
}

export interface WorkloadStats {
  ok: number;
  fail: number;
  unknown: number;
  leaseReads: number;
}

/** Retry delays: a client that hit a dead end (no leader, dropped, crashed) waits before trying again. */
const BACKOFF_MIN_US = 1_000;
const BACKOFF_MAX_US = 64_000;

export class Workload {
  private readonly clients: Client[] = [];
  private ids: NodeId[] = [];
  private stopped = false;
  /** node -> index -> the write waiting for that index to be applied there. */
  private readonly writes = new Map<NodeId, Map<number, WriteWait>>();
  /** Reads waiting for a ReadState, by ctx. */
  private readonly readsByCtx = new Map<string, ReadWait>();
  /** node -> reads whose index is known, waiting for the state machine to apply it. */
  private readonly readsApplying = new Map<NodeId, ReadWait[]>();
  readonly stats: WorkloadStats = { ok: 0, fail: 0, unknown: 0, leaseReads: 0 };

  constructor(
    private readonly world: SimWorld,
    private readonly params: SimParams,
    private readonly prng: Prng,
    private readonly history: HistoryRecorder,
    private readonly invariants: Invariants,
  ) {}

  start(): void {
    const ids = this.nodeIds();
    for (let i = 0; i < this.params.clients; i++) {
      const c: Client = { id: i + 1, leader: this.prng.pick(ids), seq: 0, recent: new Map() };
      this.clients.push(c);
      this.world.schedule(this.prng.int(this.params.thinkMaxUs), () => this.issue(c));
    }
  }

  /** No new operations (those in flight still finish or time out). */
  stop(): void {
    this.stopped = true;
  }

  private issue(c: Client): void {
    if (this.stopped) return;
    const key = `k${this.prng.int(this.params.keys)}`;
    const roll = this.prng.next();
    const w = (roll - this.params.readRate) / (1 - this.params.readRate);
    const kind: OpKind = roll < this.params.readRate ? "get" : w < 0.5 ? "put" : w < 0.83 ? "cas" : "delete";
    const value = `v${c.id}.${++c.seq}`;
    const seen = c.recent.get(key) ?? [];
    let command: KvCommand | null = null;
    let handle: number;
    if (kind === "put") {
      command = { op: "put", key, value };
      handle = this.history.invoke(c.id, "put", key, value);
    } else if (kind === "delete") {
      command = { op: "delete", key };
      handle = this.history.invoke(c.id, "delete", key, null);
    } else if (kind === "cas") {
      const expected = seen.length === 0 || this.prng.chance(0.2) ? null : this.prng.pick(seen);
      command = { op: "cas", key, expected, value };
      handle = this.history.invoke(c.id, "cas", key, { expected, new: value });
    } else {
      handle = this.history.invoke(c.id, "get", key, null);
    }
    if (kind === "put" || kind === "cas") c.recent.set(key, [...seen.slice(-3), value]);
    const lease = this.params.leaseTicks > 0 && this.prng.chance(0.5);
    const op: ClientOp = {
      handle,
      client: c,
      kind,
      key,
      command,
      mode: lease ? "lease" : "safe",
      attempts: 0,
      proposed: false,
      done: false,
    };
    this.world.schedule(this.params.opTimeoutUs, () => this.timeout(op));
    this.attempt(op);
  }

  /** Every node id, in creation order (nodes are only ever added, so a cached copy stays valid until one is). */
  private nodeIds(): readonly NodeId[] {
    if (this.ids.length !== this.world.nodes.size) this.ids = [...this.world.nodes.keys()];
    return this.ids;
  }

  private next(c: Client): void {
    this.world.schedule(1 + this.prng.int(this.params.thinkMaxUs), () => this.issue(c));
  }

  private retry(op: ClientOp): void {
    // Exponential backoff with full jitter, as a real client does during an outage.
    const cap = Math.min(BACKOFF_MAX_US, BACKOFF_MIN_US * 2 ** Math.min(op.attempts, 10));
    this.world.schedule(BACKOFF_MIN_US + this.prng.int(cap), () => this.attempt(op));
  }

  private pickNode(op: ClientOp): SimNode | undefined {
    const c = op.client;
    // Each retry after a dead end tries another node, like a client walking its endpoint list.
    if (op.attempts > 1 && this.prng.chance(0.3)) c.leader = this.prng.pick(this.nodeIds());
    if (op.kind === "get" && this.prng.chance(this.params.followerReadRate)) {
      return this.world.nodes.get(this.prng.pick(this.nodeIds()));
    }
    return this.world.nodes.get(c.leader);
  }

  private attempt(op: ClientOp): void {
    if (op.done) return;
    op.attempts++;
    const node = this.pickNode(op);
    if (!node?.alive || node.raw === null) {
      op.client.leader = this.prng.pick(this.nodeIds());
      this.retry(op);
      return;
    }
    if (op.command) this.propose(op, node, op.command);
    else this.read(op, node);
  }

  private propose(op: ClientOp, node: SimNode, command: KvCommand): void {
    const raw = node.raw!;
    const r = raw.internals;
    if (r.role !== "leader") {
      // What propose() would throw (NotLeaderError with the leader hint), without paying for the
      // exception's stack trace on the hot path.
      this.notLeader(op, r.lead);
      return;
    }
    try {
      const pos = raw.propose([encodeCommand(command)]);
      op.proposed = true;
      let m = this.writes.get(node.id);
      if (!m) {
        m = new Map();
        this.writes.set(node.id, m);
      }
      m.set(pos.firstIndex, { op, term: pos.term });
    } catch (e) {
      if (e instanceof NotLeaderError) {
        this.notLeader(op, e.leaderId);
        return;
      }
      if (e instanceof ProposalDroppedError) {
        this.retry(op);
        return;
      }
      this.world.coreError(node, e);
      return;
    }
    this.world.afterInput(node);
  }

  private notLeader(op: ClientOp, hint: NodeId): void {
    op.client.leader = hint !== 0 ? hint : this.prng.pick(this.nodeIds());
    this.retry(op);
  }

  private read(op: ClientOp, node: SimNode): void {
    const raw = node.raw!;
    const r = raw.internals;
    if (r.role !== "leader" && r.lead === 0) {
      // What readIndex() would throw (ReadDroppedError "no-leader"), without the exception.
      this.retry(op);
      return;
    }
    const ctx = `${op.handle}.${op.attempts}`;
    try {
      raw.readIndex(ctx, op.mode);
      this.readsByCtx.set(ctx, { op, node: node.id, index: 0 });
      // Served from the lease at once (no heartbeat round): check it is sound right now.
      if (op.mode === "lease" && raw.internals.readStates.some((rs) => rs.ctx === ctx)) {
        this.stats.leaseReads++;
        this.invariants.onLeaseRead(node);
      }
    } catch (e) {
      if (e instanceof ReadDroppedError || e instanceof ResourceExhaustedError) {
        const lead = r.lead;
        if (lead !== 0) op.client.leader = lead;
        this.retry(op);
        return;
      }
      this.world.coreError(node, e);
      return;
    }
    this.world.afterInput(node);
  }

  private complete(
    op: ClientOp,
    status: "ok" | "fail" | "unknown",
    output: string | boolean | null = null,
  ): void {
    if (op.done) return;
    op.done = true;
    if (status === "ok") {
      this.history.ok(op.handle, output);
      this.stats.ok++;
      if (op.kind === "get" && typeof output === "string") {
        const seen = op.client.recent.get(op.key) ?? [];
        op.client.recent.set(op.key, [...seen.slice(-3), output]);
      }
    } else if (status === "fail") {
      this.history.fail(op.handle);
      this.stats.fail++;
    } else {
      this.history.unknown(op.handle);
      this.stats.unknown++;
    }
    this.next(op.client);
  }

  private timeout(op: ClientOp): void {
    if (op.done) return;
    // A write never proposed anywhere cannot take effect; anything else might have.
    this.complete(op, op.command && op.proposed ? "unknown" : op.command ? "fail" : "unknown");
  }

  /** `node` applied `e` (result `res`). */
  onApplied(node: SimNode, e: Entry, res: KvResult): void {
    const m = this.writes.get(node.id);
    if (m === undefined || m.size === 0) return;
    const w = m.get(e.index);
    if (w === undefined) return;
    m.delete(e.index);
    if (e.term === w.term) {
      if (!w.op.done) this.invariants.acked.push({ index: e.index, term: e.term });
      this.complete(w.op, "ok", w.op.kind === "cas" ? res : null);
    } else {
      // Another entry is committed at this index, so ours (same index, other term) never can be.
      this.complete(w.op, "fail");
    }
  }

  /** `node` installed a snapshot up to `index`: writes waiting at or below it can no longer be told apart. */
  onSnapshotInstalled(node: SimNode, index: number): void {
    const m = this.writes.get(node.id);
    if (m) {
      for (const [i, w] of m) {
        if (i > index) continue;
        m.delete(i);
        this.complete(w.op, "unknown");
      }
    }
    this.releaseReads(node);
  }

  onReadStates(node: SimNode, states: readonly ReadState[]): void {
    for (const s of states) {
      const w = this.readsByCtx.get(s.ctx);
      if (w === undefined || w.node !== node.id) continue;
      this.readsByCtx.delete(s.ctx);
      w.index = s.index;
      let q = this.readsApplying.get(node.id);
      if (!q) {
        q = [];
        this.readsApplying.set(node.id, q);
      }
      q.push(w);
    }
  }

  onReadDropped(node: SimNode, ctx: string): void {
    const w = this.readsByCtx.get(ctx);
    if (w === undefined || w.node !== node.id) return;
    this.readsByCtx.delete(ctx);
    this.retry(w.op);
  }

  /** Serves reads whose index the state machine has reached. */
  releaseReads(node: SimNode): void {
    const q = this.readsApplying.get(node.id);
    if (!q || q.length === 0) return;
    const applied = node.sm.applied;
    const keep: ReadWait[] = [];
    for (const w of q) {
      if (w.op.done) continue;
      if (w.index <= applied) this.complete(w.op, "ok", node.sm.get(w.op.key));
      else keep.push(w);
    }
    this.readsApplying.set(node.id, keep);
  }

  /** A node crashed: its waiting writes have unknown outcome; its reads are retried elsewhere. */
  onCrash(node: SimNode): void {
    const m = this.writes.get(node.id);
    if (m) {
      for (const w of m.values()) this.complete(w.op, "unknown");
      m.clear();
    }
    for (const [ctx, w] of this.readsByCtx) {
      if (w.node !== node.id) continue;
      this.readsByCtx.delete(ctx);
      this.retry(w.op);
    }
    const q = this.readsApplying.get(node.id);
    if (q) {
      for (const w of q) if (!w.op.done) this.retry(w.op);
      this.readsApplying.delete(node.id);
    }
  }
}
