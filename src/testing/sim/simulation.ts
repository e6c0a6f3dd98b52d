/**
 * The deterministic simulator: a whole Raft cluster in one thread, every
 * choice drawn from one seed, invariants checked after every step, the
 * client history checked for linearizability at the end.
 *
 * A run has two phases. The chaos phase processes `steps` events (ticks,
 * message deliveries, fsync completions, client and fault actions) with the
 * profile's faults on. The liveness phase then stops all faults (heals the
 * network, restarts crashed nodes, stops membership changes) and requires a
 * leader to commit a fresh proposal within `livenessUs` of simulated time,
 * and every member to catch up.
 *
 * Each node follows the Ready contract exactly: `messagesNow` leave at once;
 * the write (snapshot, entries, hard state) completes after a simulated fsync;
 * only then `messages` leave, committed entries are applied in order, read
 * states are released once applied, and advance() is called. Inputs (ticks,
 * messages, proposals) keep arriving while a write is in flight.
 *
 * With asynchronous storage writes (`params.asyncWrites`, drawn per seed) a
 * node instead hands the write to the disk, applies the committed entries and
 * calls advance() at once, and goes on taking Readys while up to
 * `maxWritesInFlight` writes are in flight. Fsyncs complete in the order the
 * writes were issued; as each completes its `messages` leave and persisted()
 * is called. A Ready carrying a snapshot waits for the writes before it and
 * its own fsync, as in the runtime (the snapshot replaces the log before
 * advance()). A crash loses every write in flight, or keeps some of the
 * oldest whole and a torn prefix of the next.
 */

import { type ConfState, EntryType, type Message, type NodeId, type Ready } from "../../raft/types.ts";
import { type HistoryRecord, HistoryRecorder } from "../history.ts";
import { checkKvHistory } from "../linearizability/kv.ts";
import { Prng } from "../prng.ts";
import type { BugSwitches } from "./bugs.ts";
import { Chaos, type ChaosStats, type ChaosWorld } from "./chaos.ts";
import { EventKind, EventQueue, type SimEvent } from "./event-queue.ts";
import { Invariants } from "./invariants.ts";
import { encodeCommand, KvMachine } from "./kv-machine.ts";
import { MAX_NODE_ID, SimNetwork } from "./network.ts";
import { drawParams, MS, type ProfileName, type SimParams } from "./profile.ts";
import { SimNode } from "./sim-node.ts";
import { Workload, type WorkloadStats } from "./workload.ts";

export interface SimOptions {
  readonly seed: number;
  /** Events processed in the chaos phase. */
  readonly steps: number;
  readonly profile?: ProfileName;
  /** 3, 5 or 7 (default: drawn from the seed). */
  readonly voters?: number;
  readonly bugs?: BugSwitches;
  /** Overrides of the drawn parameters. */
  readonly params?: Partial<SimParams>;
  /** Simulated time allowed for a leader to commit once faults stop. Default 30 s. */
  readonly livenessUs?: number;
  /** Check the history for linearizability (default true). */
  readonly checkLinearizability?: boolean;
}

export interface SimResult {
  readonly seed: number;
  readonly params: SimParams;
  readonly steps: number;
  /** All events, both phases. */
  readonly events: number;
  readonly deliveries: number;
  readonly simTimeUs: number;
  /** The first safety or liveness violation, or null. */
  readonly violation: string | null;
  /** Linearizability of the client history (null when not checked). */
  readonly linearizable: boolean | "unknown" | null;
  readonly counterexample: string | null;
  /** Simulated time from "faults stop" to the probe committing (null if it did not). */
  readonly livenessUs: number | null;
  readonly elections: number;
  readonly ops: number;
  readonly workload: WorkloadStats;
  readonly chaos: ChaosStats;
  readonly disk: DiskStats;
  readonly history: readonly HistoryRecord[];
}

/** What the simulated disks did (asynchronous-write counters stay 0 in synchronous mode). */
export interface DiskStats {
  /** Writes issued (Readys that needed a write). */
  writes: number;
  /** Asynchronous writes: the most in flight on one node at once. */
  maxInflight: number;
  /** Asynchronous writes: writes in flight when their node crashed (lost, or kept whole or torn). */
  lostInCrash: number;
  /** Asynchronous writes: crashes that kept some writes in flight whole or torn. */
  tornCrashes: number;
  /** Restarts whose applied index (a durable state machine's) was above the durable commit index. */
  appliedAboveCommit: number;
}

const LIVENESS_DEFAULT_US = 30_000 * MS;
const CATCH_UP_US = 10_000 * MS;
/** Hard cap on events in the liveness phase, in case time stops advancing. */
const LIVENESS_EVENTS_MAX = 5_000_000;

export class Simulation implements ChaosWorld {
  now = 0;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly network: SimNetwork;
  readonly params: SimParams;
  readonly invariants: Invariants;
  readonly history: HistoryRecorder;
  private readonly queue = new EventQueue();
  private readonly workload: Workload;
  private readonly chaos: Chaos;
  private readonly bugs: BugSwitches;
  private readonly seed: number;
  // Independent streams, so that e.g. a change in the workload does not reshuffle the faults.
  private readonly prngDisk: Prng;
  private readonly prngClock: Prng;
  private readonly prngMisc: Prng;
  private nextId: NodeId;
  /** The newest configuration applied anywhere (committed, hence authoritative), and its index. */
  private latestConf: { index: number; cs: ConfState };
  /** The members of `latestConf` (every voter and learner, incoming and outgoing). */
  private memberSet: Set<NodeId>;
  private touched: SimNode[] = [];
  deliveries = 0;
  events = 0;
  readonly disk: DiskStats = {
    writes: 0,
    maxInflight: 0,
    lostInCrash: 0,
    tornCrashes: 0,
    appliedAboveCommit: 0,
  };
  private probe: { node: SimNode; incarnation: number; index: number; term: number } | null = null;
  private probeDoneAt: number | null = null;

  constructor(private readonly opts: SimOptions) {
    const seed = opts.seed;
    this.seed = seed;
    const root = new Prng(seed);
    const stream = (): Prng => new Prng(root.nextUint32());
    this.params = { ...drawParams(stream(), opts.profile ?? "swarm", opts.voters), ...opts.params };
    this.bugs = opts.bugs ?? {};
    this.network = new SimNetwork(stream(), this.params);
    this.prngDisk = stream();
    this.prngClock = stream();
    this.prngMisc = stream();
    const workloadPrng = stream();
    const chaosPrng = stream();
    this.history = new HistoryRecorder({ now: () => this.now });
    this.invariants = new Invariants(this.nodes);
    const p = this.params;
    const ids = Array.from({ length: p.voters + p.learners }, (_, i) => i + 1);
    const cs: ConfState = {
      voters: ids.slice(0, p.voters),
      learners: ids.slice(p.voters),
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    this.latestConf = { index: 1, cs };
    this.memberSet = membersOf(cs);
    for (const id of ids) this.nodes.set(id, new SimNode(id, cs, 0));
    this.nextId = ids.length + 1;
    this.workload = new Workload(this, p, workloadPrng, this.history, this.invariants);
    this.chaos = new Chaos(this, p, chaosPrng);
  }

  // --- SimWorld -------------------------------------------------------------

  schedule(delayUs: number, fn: () => void): void {
    this.queue.push(this.now + Math.max(0, delayUs), EventKind.Call, 0, 0, null, fn);
  }

  afterInput(node: SimNode): void {
    this.touched.push(node);
  }

  coreError(node: SimNode, e: unknown): void {
    const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    this.invariants.fail(`node ${node.id} threw ${msg}`);
  }

  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes.values()) {
      const r = n.raw?.internals;
      if (!n.alive || r?.role !== "leader") continue;
      if (best === null || r.term > best.raw!.internals.term) best = n;
    }
    return best;
  }

  crash(node: SimNode): void {
    if (!node.alive) return;
    this.disk.lostInCrash += node.inflight.length;
    if (node.inflight.length > 0 && this.prngDisk.chance(this.params.tornWriteRate)) {
      this.disk.tornCrashes++;
      // Data reached the disk though no fsync returned: the oldest writes whole, a prefix of the next.
      const whole = this.prngDisk.int(node.inflight.length);
      for (let i = 0; i < whole; i++) this.writeDurable(node, node.inflight[i]!.rd);
      const torn = node.tear(this.prngDisk, node.inflight[whole]!.rd);
      if (torn.length > 0) {
        this.invariants.onEntriesWritten(node, torn);
        this.invariants.onDurableWrite(node, node.durable.hardState.commit, torn);
      }
    }
    const torn = node.crash(this.prngDisk, this.params, this.bugs);
    if (torn.length > 0) {
      this.invariants.onEntriesWritten(node, torn);
      this.invariants.onDurableWrite(node, node.durable.hardState.commit, torn);
    }
    this.workload.onCrash(node);
    if (this.probe?.node === node) this.probe = null;
  }

  restart(node: SimNode): void {
    if (node.alive) return;
    node.start(this.params, this.seed, this.bugs, this.prngClock);
    if (node.sm.applied > node.durable.hardState.commit) this.disk.appliedAboveCommit++;
    this.queue.push(
      this.now + this.prngClock.int(node.tickUs),
      EventKind.Tick,
      node.id,
      node.incarnation,
      null,
      null,
    );
    this.touched.push(node);
  }

  createNode(): SimNode | null {
    if (this.nextId >= MAX_NODE_ID) return null;
    const n = new SimNode(this.nextId++, null, this.now);
    this.nodes.set(n.id, n);
    this.restart(n);
    return n;
  }

  // --- Scripted schedules ---------------------------------------------------

  /**
   * Starts every node without clients or faults, for a scripted schedule
   * (see scenario.ts) driven through {@link runUntil}, the network's blocks,
   * {@link crash}, {@link restart} and the nodes' RawNodes (each input
   * followed by {@link afterInput}). Invariants run after every step as usual.
   */
  boot(): void {
    for (const n of this.nodes.values()) this.restart(n);
    this.flush();
  }

  /**
   * Processes events until `done()` holds (checked after every step), a
   * violation is found, `maxUs` of simulated time passes or nothing is left.
   * Returns whether `done()` holds.
   */
  runUntil(done: () => boolean, maxUs: number): boolean {
    const limit = this.now + maxUs;
    this.flush(); // inputs fed since the last step
    while (!done()) {
      if (this.invariants.violation !== null || this.queue.peekTime() > limit || !this.step()) return done();
    }
    return true;
  }

  // --- Running --------------------------------------------------------------

  run(): SimResult {
    for (const n of this.nodes.values()) this.restart(n);
    this.flush();
    this.workload.start();
    this.chaos.start();
    let steps = 0;
    while (steps < this.opts.steps && this.invariants.violation === null) {
      if (!this.step()) break;
      steps++;
    }
    let livenessUs: number | null = null;
    if (this.invariants.violation === null) livenessUs = this.liveness();
    if (this.invariants.violation === null) this.invariants.finalCheck(this.leader());
    let linearizable: boolean | "unknown" | null = null;
    let counterexample: string | null = null;
    const history = this.history.records();
    if (this.opts.checkLinearizability !== false) {
      const res = checkKvHistory(history, { maxSteps: 20_000_000 });
      linearizable = res.ok;
      if (res.ok === false) counterexample = res.counterexample.rendering;
    }
    return {
      seed: this.seed,
      params: this.params,
      steps,
      events: this.events,
      deliveries: this.deliveries,
      simTimeUs: this.now,
      violation: this.invariants.violation,
      linearizable,
      counterexample,
      livenessUs,
      elections: this.invariants.elections,
      ops: history.length,
      workload: this.workload.stats,
      chaos: this.chaos.stats,
      disk: this.disk,
      history,
    };
  }

  /** Processes one event; false when nothing is left to do. */
  private step(): boolean {
    const ev = this.queue.pop();
    if (ev === undefined) return false;
    this.now = ev.at;
    this.events++;
    try {
      this.dispatch(ev);
      this.flush();
    } catch (e) {
      const node = this.nodes.get(ev.node || ev.msg?.to || 0);
      this.invariants.fail(
        `step at ${this.now}us threw (node ${node?.id ?? "-"}): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
      );
    }
    return true;
  }

  private dispatch(ev: SimEvent): void {
    switch (ev.kind) {
      case EventKind.Tick: {
        const n = this.nodes.get(ev.node)!;
        if (!n.alive || n.incarnation !== ev.incarnation) return;
        n.raw!.tick();
        this.touched.push(n);
        this.queue.push(this.now + n.tickUs, EventKind.Tick, n.id, n.incarnation, null, null);
        return;
      }
      case EventKind.Deliver: {
        const m = ev.msg!;
        const to = this.nodes.get(m.to);
        if (!to?.alive || !this.network.canSend(m.from, m.to)) {
          this.dropped(m);
          return;
        }
        to.raw!.step(m);
        this.deliveries++;
        this.touched.push(to);
        if (m.type === "snapshot") this.reportSnapshot(m, true);
        return;
      }
      case EventKind.Fsync: {
        const n = this.nodes.get(ev.node)!;
        if (!n.alive || n.incarnation !== ev.incarnation) return;
        if (this.params.asyncWrites) this.completeWrites(n);
        else if (n.pending !== null) this.completeReady(n);
        return;
      }
      case EventKind.Call:
        ev.fn!();
        return;
    }
  }

  /** Handles the Readys of every node touched by the current event, then checks invariants. */
  private flush(): void {
    for (let i = 0; i < this.touched.length; i++) {
      const n = this.touched[i]!;
      this.processReady(n);
      this.invariants.observe(n);
    }
    this.touched.length = 0;
  }

  private send(msgs: readonly Message[]): void {
    for (const m of msgs) {
      if (!this.network.canSend(m.from, m.to)) {
        this.dropped(m);
        continue;
      }
      const net = this.network;
      const copies = net.sample();
      if (copies === 0) this.dropped(m);
      else {
        this.queue.push(this.now + net.delay0, EventKind.Deliver, m.to, 0, m, null);
        if (copies === 2) this.queue.push(this.now + net.delay1, EventKind.Deliver, m.to, 0, m, null);
      }
    }
  }

  /** A message was lost: the sender's transport notices some of the time. */
  private dropped(m: Message): void {
    if (m.type === "snapshot") {
      this.reportSnapshot(m, false);
      return;
    }
    const from = this.nodes.get(m.from);
    if (from?.alive && from.raw!.internals.role === "leader" && this.prngMisc.chance(0.1)) {
      from.raw!.reportUnreachable(m.to);
      this.touched.push(from);
    }
  }

  private reportSnapshot(m: Message, ok: boolean): void {
    const from = this.nodes.get(m.from);
    if (!from?.alive) return;
    from.raw!.reportSnapshot(m.to, ok);
    this.touched.push(from);
  }

  private fsyncLatency(): number {
    const p = this.params;
    return p.fsyncMinUs + this.prngDisk.int(Math.max(1, p.fsyncMaxUs - p.fsyncMinUs + 1));
  }

  private processReady(n: SimNode): void {
    if (this.params.asyncWrites) {
      this.processReadyAsync(n);
      return;
    }
    while (n.alive && n.pending === null && n.raw!.hasReady()) {
      const rd = n.raw!.ready();
      n.pending = rd;
      this.disk.writes++;
      this.send(rd.messagesNow);
      // BUG SWITCH: acknowledging before the write is durable.
      if (this.bugs.sendBeforePersist) this.send(rd.messages);
      if (rd.mustSync) {
        this.queue.push(this.now + this.fsyncLatency(), EventKind.Fsync, n.id, n.incarnation, null, null);
        return;
      }
      // Nothing to sync: the write (at most a commit index) goes to the page cache at once.
      this.completeReady(n);
    }
  }

  /** Asynchronous storage writes: issue each Ready's write, apply and advance without waiting for it. */
  private processReadyAsync(n: SimNode): void {
    const p = this.params;
    while (n.alive && n.pending === null && n.inflight.length < p.maxWritesInFlight && n.raw!.hasReady()) {
      const raw = n.raw!;
      const rd = raw.ready();
      this.send(rd.messagesNow);
      // BUG SWITCH: acknowledging before the write is durable.
      if (this.bugs.sendBeforePersist) this.send(rd.messages);
      if (rd.snapshot) {
        // The snapshot replaces the log: it lands after the writes before it, and before advance().
        n.pending = rd;
        this.disk.writes++;
        n.pendingDue = Math.max(n.lastDue, this.now + this.fsyncLatency());
        n.lastDue = n.pendingDue;
        this.queue.push(n.pendingDue, EventKind.Fsync, n.id, n.incarnation, null, null);
        return;
      }
      // A commit-only hard state needs no fsync, but it still lands after the writes before it.
      const due = Math.max(n.lastDue, rd.mustSync ? this.now + this.fsyncLatency() : this.now);
      n.lastDue = due;
      // BUG SWITCH: nothing to sync, so (wrongly) nothing to wait for.
      const sent = this.bugs.asyncUnorderedAcks === true && !rd.mustSync;
      if (sent) this.send(rd.messages);
      n.inflight.push({ rd, due, sent });
      this.disk.writes++;
      if (n.inflight.length > this.disk.maxInflight) this.disk.maxInflight = n.inflight.length;
      n.view.write(rd.entries);
      this.applyAndAdvance(n, rd);
      if (this.bugs.asyncAckOnIssue) {
        // BUG SWITCH: report the write durable (and send its messages) as soon as it is issued.
        this.send(rd.messages);
        raw.persisted(rd);
      }
      if (due > this.now) this.queue.push(due, EventKind.Fsync, n.id, n.incarnation, null, null);
      else this.completeWrites(n);
    }
  }

  /** Asynchronous storage writes: every write whose fsync is done becomes durable, in issue order. */
  private completeWrites(n: SimNode): void {
    const raw = n.raw!;
    let done = 0;
    while (done < n.inflight.length && n.inflight[done]!.due <= this.now) {
      const w = n.inflight[done++]!;
      const rd = w.rd;
      this.writeDurable(n, rd);
      if (!this.bugs.asyncAckOnIssue) {
        if (!this.bugs.sendBeforePersist && !w.sent) this.send(rd.messages);
        raw.persisted(rd);
      }
    }
    if (done > 0) n.inflight.splice(0, done);
    if (n.inflight.length === 0) n.view.clear();
    const rd = n.pending;
    if (rd !== null && n.inflight.length === 0 && n.pendingDue <= this.now) {
      // The snapshot Ready: durable as a whole, then applied and advanced like a synchronous one.
      this.writeDurable(n, rd);
      if (!this.bugs.sendBeforePersist) this.send(rd.messages);
      this.applyAndAdvance(n, rd);
      raw.persisted(rd);
    }
    this.touched.push(n);
  }

  /** The pending write is durable: send, apply, release reads, advance. */
  private completeReady(n: SimNode): void {
    const rd = n.pending!;
    this.writeDurable(n, rd);
    if (!this.bugs.sendBeforePersist) this.send(rd.messages);
    this.applyAndAdvance(n, rd);
  }

  /** `rd`'s snapshot, entries and hard state reach the durable log; the invariants check what was written. */
  private writeDurable(n: SimNode, rd: Ready): void {
    const prevCommit = n.durable.hardState.commit;
    n.persist(rd);
    if (rd.snapshot) {
      n.sm = KvMachine.fromSnapshot(rd.snapshot.data);
      this.invariants.onSnapshotWritten(n, rd.snapshot);
      this.workload.onSnapshotInstalled(n, rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0) this.invariants.onEntriesWritten(n, rd.entries);
    this.invariants.onDurableWrite(n, prevCommit, rd.entries);
  }

  /** Applies `rd`'s committed entries, releases its reads and advances the core. */
  private applyAndAdvance(n: SimNode, rd: Ready): void {
    const raw = n.raw!;
    const committed = raw.internals.log.committed;
    let confApplied = 0;
    for (const e of rd.committedEntries) {
      const res = n.sm.apply(e);
      this.invariants.onApply(n, e, committed);
      this.workload.onApplied(n, e, res);
      if (e.type === EntryType.ConfChange) confApplied = e.index;
      const probe = this.probe;
      if (probe !== null && probe.node === n && probe.index === e.index) {
        if (probe.term === e.term && this.probeDoneAt === null) this.probeDoneAt = this.now;
        else this.probe = null;
      }
    }
    if (rd.readStates.length > 0) this.workload.onReadStates(n, rd.readStates);
    for (const d of rd.droppedReads) this.workload.onReadDropped(n, d.ctx);
    // Commits so far were decided under the configuration before advance() applies new ones.
    this.invariants.observe(n);
    raw.advance();
    n.pending = null;
    if (confApplied > 0) {
      n.snapshotDue = true;
      if (confApplied > this.latestConf.index) this.noteConf(confApplied, raw.confState());
    }
    this.workload.releaseReads(n);
    n.maybeSnapshot(this.params);
    this.touched.push(n);
  }

  /** A newer configuration is committed: members join; removed members are stopped for good. */
  private noteConf(index: number, cs: ConfState): void {
    this.latestConf = { index, cs };
    const members = membersOf(cs);
    this.memberSet = members;
    for (const n of this.nodes.values()) {
      if (members.has(n.id)) n.joined = true;
      else if (n.joined && !n.decommissioned) {
        n.decommissioned = true;
        this.schedule(0, () => this.crash(n));
      }
    }
  }

  private members(): ReadonlySet<NodeId> {
    return this.memberSet;
  }

  /** Faults stop; a leader must commit a new entry in bounded time, and every member must catch up. */
  private liveness(): number | null {
    this.chaos.stop();
    this.workload.stop();
    this.network.heal();
    this.network.setParams({ ...this.params, dropRate: 0, duplicateRate: 0, delayTailRate: 0 });
    const start = this.now;
    const members = this.members();
    for (const n of this.nodes.values()) if (!n.alive && members.has(n.id)) this.restart(n);
    this.flush();
    const tryProbe = (): void => {
      if (this.probeDoneAt !== null) return;
      const l = this.leader();
      if (l && (this.probe === null || this.probe.node !== l || this.probe.incarnation !== l.incarnation)) {
        try {
          const pos = l.raw!.propose([encodeCommand({ op: "noop", key: "" })]);
          this.probe = { node: l, incarnation: l.incarnation, index: pos.firstIndex, term: pos.term };
          this.touched.push(l);
        } catch {
          // Not accepting proposals right now (e.g. transferring): try again shortly.
        }
      }
      this.schedule(20 * MS, tryProbe);
    };
    this.schedule(0, tryProbe);
    const deadline = start + (this.opts.livenessUs ?? LIVENESS_DEFAULT_US);
    let events = 0;
    const until = (done: () => boolean, limit: number): boolean => {
      while (!done() && this.invariants.violation === null && events++ < LIVENESS_EVENTS_MAX) {
        if (this.queue.peekTime() > limit || !this.step()) return done();
      }
      return done();
    };
    if (!until(() => this.probeDoneAt !== null, deadline)) {
      this.invariants.fail(
        `liveness: no proposal committed within ${(deadline - start) / MS} ms after faults stopped ` +
          `(leader: ${this.leader()?.id ?? "none"})`,
      );
      return null;
    }
    const took = this.probeDoneAt! - start;
    const target = this.probe!.index;
    // Membership may still change (a joint configuration being left): check the members of now.
    const live = (): SimNode[] => [...this.nodes.values()].filter((n) => this.members().has(n.id));
    const caughtUp = (): boolean => {
      const members = this.members();
      for (const n of this.nodes.values()) {
        if (members.has(n.id) && !(n.alive && n.sm.applied >= target)) return false;
      }
      return true;
    };
    if (!until(caughtUp, this.now + CATCH_UP_US)) {
      const behind = live()
        .filter((n) => !n.alive || n.sm.applied < target)
        .map((n) => `${n.id}@${n.sm.applied}${n.alive ? "" : " (down)"}`);
      this.invariants.fail(`liveness: members did not catch up to ${target} once faults stopped: ${behind}`);
      return took;
    }
    this.checkReplicasAgree();
    return took;
  }

  /** Replicas that applied the same prefix hold the same data. */
  private checkReplicasAgree(): void {
    const byIndex = new Map<number, { id: NodeId; digest: string }>();
    for (const n of this.nodes.values()) {
      if (!n.alive) continue;
      const d = n.sm.digest();
      const other = byIndex.get(n.sm.applied);
      if (other === undefined) byIndex.set(n.sm.applied, { id: n.id, digest: d });
      else if (other.digest !== d) {
        this.invariants.fail(
          `nodes ${other.id} and ${n.id} applied up to ${n.sm.applied} but hold different data`,
        );
      }
    }
  }
}

function membersOf(cs: ConfState): Set<NodeId> {
  return new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
}

/** Runs one seed. */
export function runSimulation(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}
