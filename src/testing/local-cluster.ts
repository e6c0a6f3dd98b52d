/**
 * A cluster of pure Raft cores in one thread, exchanging messages through
 * in-memory queues: no I/O, no clock. The core's tests and benchmark drive it
 * step by step; it follows the Ready contract exactly as a runtime must
 * (persist, then send, apply in order, advance).
 */

import type { RaftConfig } from "../raft/config.ts";
import { MemoryRaftLog } from "../raft/memory-log.ts";
import { RawNode } from "../raft/raw-node.ts";
import type { ConfState, DroppedRead, Entry, Message, NodeId, ReadState, Ready } from "../raft/types.ts";
import { Prng } from "./prng.ts";

export type NodeOptions = Partial<Omit<RaftConfig, "id" | "storage" | "rng">>;

export interface LocalNode {
  readonly id: NodeId;
  raw: RawNode;
  readonly storage: MemoryRaftLog;
  /** Every committed entry applied, in order. */
  readonly applied: Entry[];
  readonly readStates: ReadState[];
  readonly droppedReads: DroppedRead[];
  /** Asynchronous storage writes handed out but not yet durable, oldest first. */
  readonly inflight: Ready[];
}

export class LocalCluster {
  readonly nodes = new Map<NodeId, LocalNode>();
  /** Messages in flight, in send order. */
  queue: Message[] = [];
  /** Links that drop messages: "from->to". */
  private readonly cut = new Set<string>();
  private readonly options: NodeOptions;
  private readonly seed: number;
  /** Called for every message delivered (transcripts print them). */
  onDeliver: ((m: Message) => void) | null = null;
  /** Called for every message dropped by a cut link or addressed to an unknown node. */
  onDrop: ((m: Message) => void) | null = null;
  /** When false, message payloads are not retained in applied[] (benchmarks). */
  keepApplied = true;

  constructor(ids: readonly NodeId[], options: NodeOptions = {}, seed = 1) {
    this.options = options;
    this.seed = seed;
    const cs: ConfState = {
      voters: ids,
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    for (const id of ids) this.addNode(id, cs);
  }

  /** Adds a node with an empty log (a new member) or with the given initial configuration. */
  addNode(id: NodeId, cs?: ConfState, options: NodeOptions = {}): LocalNode {
    const storage = new MemoryRaftLog(cs);
    const node: LocalNode = {
      id,
      storage,
      raw: this.makeRaw(id, storage, options),
      applied: [],
      readStates: [],
      droppedReads: [],
      inflight: [],
    };
    this.nodes.set(id, node);
    return node;
  }

  private makeRaw(id: NodeId, storage: MemoryRaftLog, options: NodeOptions): RawNode {
    // Each node draws from its own stream: one node's draws never shift another's.
    const rng = new Prng(this.seed * 7919 + id);
    return new RawNode({ ...this.options, ...options, id, storage, rng: () => rng.next() });
  }

  node(id: NodeId): LocalNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Restarts a node from its durable state only (the memory log holds exactly what was persisted). */
  restart(id: NodeId, options: NodeOptions = {}): void {
    const n = this.node(id);
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
    // A crash loses the writes that were still in flight.
    n.inflight.length = 0;
    n.raw = this.makeRaw(id, n.storage, {
      ...options,
      applied: n.applied.length ? n.applied[n.applied.length - 1]!.index : 0,
    });
  }

  /** Handles one node's Ready if it has one: persist, send, apply, advance. */
  processReady(id: NodeId): boolean {
    const n = this.node(id);
    if (!n.raw.hasReady()) return false;
    const rd = n.raw.ready();
    for (const m of rd.messagesNow) this.queue.push(m);
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      if (this.keepApplied) n.applied.length = 0;
    }
    const async = n.raw.internals.cfg.asyncStorageWrites;
    if (async) {
      // The write completes later (persistOne): its messages wait for it.
      n.inflight.push(rd);
    } else {
      n.storage.append(rd.entries);
      if (rd.hardState) n.storage.setHardState(rd.hardState);
      for (const m of rd.messages) this.queue.push(m);
    }
    if (this.keepApplied) for (const e of rd.committedEntries) n.applied.push(e);
    else if (rd.committedEntries.length > 0)
      n.applied[0] = rd.committedEntries[rd.committedEntries.length - 1]!;
    for (const s of rd.readStates) n.readStates.push(s);
    for (const d of rd.droppedReads) n.droppedReads.push(d);
    n.raw.advance();
    return true;
  }

  /**
   * Asynchronous storage writes: completes the oldest write in flight on `id`
   * (it becomes durable, its messages leave, the core is told). Returns
   * whether there was one.
   */
  persistOne(id: NodeId): boolean {
    const n = this.node(id);
    const rd = n.inflight.shift();
    if (!rd) return false;
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) this.queue.push(m);
    n.raw.persisted(rd);
    return true;
  }

  /** Delivers every queued message once (new ones wait for the next call). Returns how many. */
  deliverAll(filter?: (m: Message) => boolean): number {
    const batch = this.queue;
    this.queue = [];
    let delivered = 0;
    for (const m of batch) {
      if (filter && !filter(m)) {
        this.queue.push(m);
        continue;
      }
      if (this.cut.has(`${m.from}->${m.to}`) || !this.nodes.has(m.to)) {
        this.onDrop?.(m);
        continue;
      }
      this.onDeliver?.(m);
      this.node(m.to).raw.step(m);
      delivered++;
    }
    return delivered;
  }

  /** Runs Ready handling and delivery until nothing moves. */
  stabilize(maxRounds = 10_000): void {
    for (let i = 0; i < maxRounds; i++) {
      let moved = false;
      for (const id of [...this.nodes.keys()].sort((a, b) => a - b)) {
        moved = this.processReady(id) || moved;
        while (this.persistOne(id)) moved = true;
      }
      moved = this.deliverAll() > 0 || moved;
      if (!moved) return;
    }
    throw new Error(`cluster did not stabilize within ${maxRounds} rounds`);
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.node(id).raw.tick();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) for (const node of this.nodes.values()) node.raw.tick();
  }

  /** Elects `id` (campaign, then stabilize). */
  elect(id: NodeId): void {
    this.node(id).raw.campaign();
    this.stabilize();
  }

  leader(): NodeId {
    let lead = 0;
    for (const n of this.nodes.values()) {
      if (n.raw.status().role === "leader") {
        const t = n.raw.status().term;
        if (lead === 0 || t > this.node(lead).raw.status().term) lead = n.id;
      }
    }
    return lead;
  }

  /** Drops messages from a to b (one direction). */
  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}->${to}`);
  }

  /** Drops all messages to and from `id`. */
  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cutLink(id, other);
      this.cutLink(other, id);
    }
  }

  /** Splits the cluster into groups that cannot talk to each other. */
  partition(...groups: readonly (readonly NodeId[])[]): void {
    for (const a of groups)
      for (const b of groups) if (a !== b) for (const x of a) for (const y of b) this.cutLink(x, y);
  }

  heal(): void {
    this.cut.clear();
  }
}
