/**
 * A running Raft node: one event loop drives the pure core (src/raft/),
 * persists each Ready through a LogStore, talks to peers through a Transport,
 * and applies committed entries to a StateMachine.
 *
 * The loop, in order, for each Ready (the core's contract, see raw-node.ts):
 *   send messagesNow (a leader's appends: replication runs in parallel with
 *   its own write) → hand snapshot/entries/hard state to storage with one sync
 *   (group commit) → apply committed entries → answer proposals and reads →
 *   advance. With asynchronous storage writes (the default) the loop goes on
 *   while the sync runs and the Ready's messages (acknowledgements, votes)
 *   leave once it is durable, in order; otherwise the loop waits for it. The
 *   inputs that arrive meanwhile are batched into the next Ready.
 */

import { EventEmitter } from "node:events";
import {
  ConfChangeError,
  ConfigError,
  InvalidArgumentError,
  invariant,
  NotLeaderError,
  ReadDroppedError,
  StoppedError,
  TimeoutError,
  type TsraftError,
} from "../errors.ts";
import { decodeConfChange } from "../raft/confchange-codec.ts";
import { RawNode } from "../raft/raw-node.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type Message,
  NONE,
  type NodeId,
  type Ready,
  type Role,
} from "../raft/types.ts";
import type { LogStore } from "../storage/log-store.ts";
import type { SnapshotInfo, SnapshotStore, StateMachine } from "../storage/state-machine.ts";
import { MAX_TIMER_MS } from "../transport/rpc.ts";
import { type Logger, silentLogger, type Transport } from "../transport/transport.ts";
import type { NodeConfig } from "./config.ts";
import { MemberRegistry } from "./members.ts";
import { NodeLogReader } from "./node-log-reader.ts";
import { confMembers, Membership } from "./node-membership.ts";
import { Snapshots } from "./node-snapshots.ts";
import { PendingProposals, PendingReads } from "./pending.ts";

/** Ready writes handed to storage and not yet durable, at most (asynchronous storage writes). */
const MAX_WRITES_IN_FLIGHT = 64;

export type ReadConsistency = "linearizable" | "lease" | "eventual";

export interface MemberStatus {
  readonly id: NodeId;
  readonly address: string;
  readonly role: "voter" | "learner";
  /** Leader only: replication progress. */
  readonly match?: number;
  readonly next?: number;
  readonly lag?: number;
  readonly state?: string;
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId;
  readonly leaderAddress: string | undefined;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly firstIndex: number;
  readonly snapshotIndex: number;
  readonly members: readonly MemberStatus[];
  readonly pendingProposals: number;
  readonly pendingReads: number;
}

export interface NodeEvents {
  leaderChange: [{ leader: NodeId; term: number }];
  roleChange: [{ role: Role; term: number }];
  membershipChange: [{ confState: ConfState; index: number }];
  snapshotTaken: [SnapshotInfo];
  snapshotInstalled: [{ index: number; term: number }];
  removed: [];
  fatal: [Error];
}

export interface RaftNodeDeps<R = unknown, Q = unknown, A = unknown> {
  readonly config: NodeConfig;
  readonly logStore: LogStore;
  readonly stateMachine: StateMachine<R, Q, A>;
  readonly snapshotStore: SnapshotStore;
  readonly transport: Transport;
  readonly logger?: Logger;
  /** Where member addresses are persisted (null: memory only). */
  readonly membersFile: string | null;
  /** Seeded randomness for the core (default: Math.random — fine outside simulations). */
  readonly rng?: () => number;
}

type State = "new" | "starting" | "running" | "stopping" | "stopped";

export class RaftNode<R = unknown, Q = unknown, A = unknown> extends EventEmitter<NodeEvents> {
  readonly id: NodeId;
  readonly config: NodeConfig;
  readonly logStore: LogStore;
  readonly stateMachine: StateMachine<R, Q, A>;
  readonly snapshotStore: SnapshotStore;
  readonly transport: Transport;
  readonly logger: Logger;
  readonly members: MemberRegistry;
  /** Created in start(). */
  raw!: RawNode;
  reader!: NodeLogReader;

  private state: State = "new";
  private ticker: NodeJS.Timeout | undefined;
  private loopScheduled = false;
  private looping = false;
  private loopIdle: Promise<void> = Promise.resolve();
  private readonly proposals: PendingProposals<R>;
  private readonly reads: PendingReads<A>;
  /** Highest index applied (state machine or skipped because already in it). */
  appliedIndex = 0;
  private lastLeader: NodeId = NONE;
  private lastRole: Role = "follower";
  private readonly rng: () => number;
  readonly snapshots: Snapshots<R, Q, A>;
  readonly membership: Membership<R, Q, A>;
  private stopped: Promise<void> | null = null;
  /** ready() calls still waiting: stop() fails them. */
  private readonly readyWaiters = new Set<() => void>();
  /** Settles when start() has opened everything (or failed to). */
  private opening: Promise<void> = Promise.resolve();
  /** Asynchronous storage writes: the chain of writes in flight, and how many. */
  private readonly asyncWrites: boolean;
  private writesInFlight: Promise<void> = Promise.resolve();
  private writesPending = 0;
  private confChangesApplied: Entry[] = [];
  /** When the core last ticked (monotonic ms): see catchUpTicks(). */
  private lastTickAt = performance.now();
  /** When a message last came from each peer (monotonic ms): is a learner alive to promote? */
  private readonly heardFrom = new Map<NodeId, number>();

  constructor(deps: RaftNodeDeps<R, Q, A>) {
    super();
    this.config = deps.config;
    this.id = deps.config.nodeId;
    this.logStore = deps.logStore;
    this.stateMachine = deps.stateMachine;
    this.snapshotStore = deps.snapshotStore;
    this.transport = deps.transport;
    this.logger = deps.logger ?? silentLogger;
    this.rng = deps.rng ?? Math.random;
    this.asyncWrites = deps.config.raft.asyncStorageWrites;
    this.members = new MemberRegistry(deps.membersFile);
    const l = deps.config.limits;
    if (l.maxCommandBytes > deps.logStore.capabilities.maxEntryBytes) {
      throw new ConfigError(
        "limits.maxCommandBytes",
        `${l.maxCommandBytes} exceeds what the ${deps.logStore.capabilities.backend} log store holds per entry (${deps.logStore.capabilities.maxEntryBytes})`,
      );
    }
    this.proposals = new PendingProposals(l.maxPendingProposals, l.proposalTimeoutMs);
    this.reads = new PendingReads(l.maxPendingReads, l.proposalTimeoutMs, this.id, (ctx) =>
      this.raw.cancelRead(ctx),
    );
    this.snapshots = new Snapshots(this);
    this.membership = new Membership(this);
  }

  // ---------------------------------------------------------------------------
  // Lifecycle
  // ---------------------------------------------------------------------------

  /** Opens storage, recovers, starts the peer server and the ticker. */
  async start(): Promise<void> {
    if (this.state === "stopping" || this.state === "stopped") throw new StoppedError();
    if (this.state !== "new")
      throw new InvalidArgumentError(`the node was started already (it is ${this.state})`);
    this.state = "starting";
    let opened = (): void => {};
    this.opening = new Promise<void>((resolve) => {
      opened = resolve;
    });
    try {
      await this.open();
    } finally {
      opened();
    }
    this.lastTickAt = performance.now();
    this.ticker = setInterval(() => this.onTick(), this.config.raft.tickMs);
    this.schedule();
    this.logger.info({ nodeId: this.id, applied: this.appliedIndex }, "node started");
    try {
      await this.membership.joinIfAsked();
    } catch (e) {
      // Not admitted: close what was opened (storage lock, listener) rather than leave a node
      // running that belongs to no cluster.
      await this.stop().catch(() => {});
      throw e;
    }
  }

  /** Storage, recovery, the core and the transport: everything start() does before running. */
  private async open(): Promise<void> {
    await this.logStore.open();
    await this.snapshotStore.open();
    await this.stateMachine.open();
    await this.members.load();
    await this.snapshots.recover();
    this.reader = new NodeLogReader(this.logStore, () => this.snapshots.latestForCore());
    await this.membership.bootstrapIfNew();
    const cfg = this.config;
    this.raw = new RawNode({
      id: this.id,
      storage: this.reader,
      rng: this.rng,
      electionTick: cfg.raft.electionTicks,
      heartbeatTick: cfg.raft.heartbeatTicks,
      preVote: cfg.raft.preVote,
      checkQuorum: cfg.raft.checkQuorum,
      leaseTicks: cfg.raft.leaseTicks,
      maxSizePerMsg: cfg.raft.maxSizePerMsgBytes,
      maxInflightMsgs: cfg.raft.maxInflightMsgs,
      maxInflightBytes: cfg.raft.maxInflightBytes,
      maxUncommittedEntriesSize: cfg.raft.maxUncommittedBytes,
      maxPendingReads: cfg.limits.maxPendingReads,
      asyncStorageWrites: cfg.raft.asyncStorageWrites,
      deferCommitBroadcast: cfg.raft.deferCommitBroadcast,
      // Committed entries are applied while the local write may still be in flight; the
      // state machine's own applied index (not the core's) decides what a replay skips.
      applyUnpersisted: cfg.raft.asyncStorageWrites,
      logger: this.logger,
    });
    // The state machine may be ahead of the log's compaction point: replay skips what it has.
    this.appliedIndex = this.raw.status().applied;
    for (const [id, address] of this.members.entries())
      if (id !== this.id) this.transport.addPeer(id, address);
    this.transport.onMessage((m) => this.onMessage(m));
    this.transport.onUnreachable((peer) => {
      if (this.state === "running") this.raw.reportUnreachable(peer);
    });
    this.snapshots.registerHandlers();
    this.membership.registerHandlers();
    await this.transport.start();
    this.state = "running";
  }

  /** Starts the node (storage, recovery, peer server); resolves with the node itself, for chaining. */
  async startRpcServer(): Promise<this> {
    await this.start();
    return this;
  }

  /** The address peers reach this node at (the bound port when listening on port 0). */
  advertisedAddress(): string {
    const bound = (this.transport as { listenAddress?: () => string }).listenAddress?.();
    return this.config.advertise || bound || this.config.listen;
  }

  /** Resolves once a leader is known (and, for a joining node, it was admitted). */
  ready(timeoutMs = this.config.limits.readyTimeoutMs): Promise<void> {
    if (this.state === "new") {
      return Promise.reject(
        new InvalidArgumentError("ready() before startRpcServer(): start the node first"),
      );
    }
    if (this.state === "starting") {
      // Still opening storage: wait for it (a failed start rejects start() with its reason).
      return this.opening.then(() =>
        this.state === "starting"
          ? Promise.reject(new StoppedError("node (it failed to start)"))
          : this.ready(timeoutMs),
      );
    }
    if (this.state !== "running") return Promise.reject(new StoppedError());
    if (this.raw.status().lead !== NONE) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (e?: Error) => {
        clearTimeout(timer);
        this.off("leaderChange", onLeader);
        this.readyWaiters.delete(cancel);
        if (e) reject(e);
        else resolve();
      };
      const timer = setTimeout(
        () => done(new TimeoutError(`waiting for a leader on node ${this.id}`, timeoutMs)),
        timeoutMs,
      );
      const onLeader = ({ leader }: { leader: NodeId }) => {
        if (leader !== NONE) done();
      };
      // stop() answers it at once: its timer would keep the process alive.
      const cancel = () => done(new StoppedError());
      this.readyWaiters.add(cancel);
      this.on("leaderChange", onLeader);
    });
  }

  /** Runs until `signal` aborts (or the node is removed), then shuts down gracefully. */
  async run(signal: AbortSignal): Promise<void> {
    if (this.state !== "running") throw new StoppedError();
    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
      this.once("removed", () => resolve());
      this.once("fatal", () => resolve());
    });
    await this.stop();
  }

  /**
   * Graceful shutdown: a leader hands leadership to the most up-to-date voter
   * first (bounded by shutdownTimeoutMs), then everything is synced and closed.
   */
  stop(): Promise<void> {
    if (!this.stopped) this.stopped = this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    // Asked to stop while starting: let storage and the transport finish opening, then close
    // them (a join still retrying is cut short: stopping ends its loop).
    if (this.state === "starting") await this.opening;
    if (this.state === "running" && this.raw.status().role === "leader") {
      const budget = Math.floor(this.config.limits.shutdownTimeoutMs / 2);
      await this.transferLeadership(undefined, budget).catch((e: unknown) => {
        this.logger.warn({ err: String(e) }, "leader transfer before shutdown failed");
      });
    }
    this.state = "stopping";
    for (const cancel of [...this.readyWaiters]) cancel();
    clearInterval(this.ticker);
    this.membership.stop();
    await this.loopIdle;
    await this.writesInFlight.catch(() => {});
    const err = new StoppedError();
    this.proposals.failAll(err);
    this.reads.failAll(err);
    await this.snapshots.stop();
    await this.transport.close().catch(() => {});
    await this.logStore
      .close()
      .catch((e: unknown) => this.logger.error({ err: String(e) }, "closing log store"));
    await this.stateMachine.close().catch(() => {});
    await this.snapshotStore.close().catch(() => {});
    this.state = "stopped";
    this.logger.info({ nodeId: this.id }, "node stopped");
  }

  get running(): boolean {
    return this.state === "running";
  }

  // ---------------------------------------------------------------------------
  // Client API
  // ---------------------------------------------------------------------------

  /** Replicates a command; resolves with the state machine's result once applied. */
  propose(command: Uint8Array): Promise<R> {
    // Not an async function: its promise would wrap the waiter's in two more
    // microtask hops and three more objects, per write.
    let pos: ReturnType<RawNode["propose"]>;
    try {
      this.checkRunning();
      // Larger would not fit a message to the followers: it could never commit.
      if (command.length > this.config.limits.maxCommandBytes) {
        throw new InvalidArgumentError(
          `command of ${command.length} bytes exceeds limits.maxCommandBytes (${this.config.limits.maxCommandBytes})`,
        );
      }
      this.proposals.checkRoom();
      pos = this.raw.propose([command]);
    } catch (e) {
      return Promise.reject(e instanceof NotLeaderError ? this.notLeader() : e);
    }
    this.schedule();
    return this.proposals.wait(pos.lastIndex, pos.term);
  }

  /** Reads through the state machine at the requested consistency. */
  async read(query: Q, opts: { consistency?: ReadConsistency } = {}): Promise<A> {
    this.checkRunning();
    const consistency = opts.consistency ?? "linearizable";
    if (consistency === "eventual") return await this.stateMachine.read(query);
    if (consistency !== "linearizable" && consistency !== "lease") {
      throw new InvalidArgumentError(`unknown read consistency ${String(consistency)}`);
    }
    const { ctx, promise } = this.reads.add(() => this.stateMachine.read(query));
    try {
      if (consistency === "lease") this.catchUpTicks(false);
      this.raw.readIndex(ctx, consistency === "lease" ? "lease" : "safe");
    } catch (e) {
      this.reads.fail(
        ctx,
        e instanceof ReadDroppedError && e.reason === "no-leader" ? this.notLeader() : (e as Error),
      );
    }
    this.schedule();
    return promise;
  }

  /**
   * Adds `id` as a learner. A learner already there at that address: nothing
   * to do. A voter is refused (demoting one takes proposeConfChange), as is a
   * member at another address (remove it first): an "add" must not cut a
   * voter off.
   */
  addLearner(id: NodeId, address: string): Promise<ConfState> {
    try {
      this.checkRunning();
      const is = this.membership.kindOf(id, address);
      if (is === "voter") throw new ConfChangeError(`node ${id} is a voter already`);
      if (is === "learner") return Promise.resolve(this.raw.confState());
    } catch (e) {
      return Promise.reject(e);
    }
    return this.membership.change({ type: ConfChangeType.AddLearner, nodeId: id }, address);
  }

  /** Makes `id` a voter: a learner is promoted; a node not yet a member needs its `address`. */
  promote(id: NodeId, address?: string): Promise<ConfState> {
    try {
      this.checkRunning();
      if (this.membership.kindOf(id, address) === "voter") return Promise.resolve(this.raw.confState());
    } catch (e) {
      return Promise.reject(e);
    }
    return this.membership.change(
      { type: ConfChangeType.AddNode, nodeId: id },
      address ?? this.members.get(id) ?? "",
    );
  }

  removeNode(id: NodeId): Promise<ConfState> {
    return this.membership.change({ type: ConfChangeType.RemoveNode, nodeId: id }, "");
  }

  /** Proposes a raw membership change (joint consensus for several at once). */
  proposeConfChange(cc: ConfChange): Promise<ConfState> {
    return this.membership.propose(cc);
  }

  /** Hands leadership to `target` (default: the most up-to-date voter); resolves when it leads. */
  async transferLeadership(target?: NodeId, timeoutMs = this.config.limits.shutdownTimeoutMs): Promise<void> {
    this.checkRunning();
    const st = this.raw.status();
    if (st.role !== "leader") throw this.notLeader();
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMER_MS) {
      throw new InvalidArgumentError(`timeoutMs must be an integer in 1..${MAX_TIMER_MS}, got ${timeoutMs}`);
    }
    const to = target ?? this.membership.bestTransferTarget();
    if (to === undefined) throw new InvalidArgumentError("no other voter to transfer leadership to");
    // Already there: nothing to wait for (no other node's leadership will be announced).
    if (to === this.id) return;
    this.raw.transferLeader(to);
    this.schedule();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("leaderChange", onChange);
        reject(new TimeoutError(`leader transfer to ${to}`, timeoutMs));
      }, timeoutMs);
      const onChange = ({ leader }: { leader: NodeId }) => {
        if (leader === this.id || leader === NONE) return;
        clearTimeout(timer);
        this.off("leaderChange", onChange);
        resolve();
      };
      this.on("leaderChange", onChange);
    });
  }

  /** Takes a snapshot now (compacting the log behind it). */
  snapshot(): Promise<SnapshotInfo> {
    this.checkRunning();
    return this.snapshots.request();
  }

  status(): NodeStatus {
    const st = this.raw.status();
    const cs = st.confState;
    const learners = new Set([...cs.learners, ...cs.learnersNext]);
    const ids = [...new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners])].sort((a, b) => a - b);
    const prog = new Map(st.progress.map((p) => [p.id, p]));
    return {
      id: this.id,
      role: st.role,
      term: st.term,
      leader: st.lead,
      leaderAddress: this.members.get(st.lead),
      commit: st.commit,
      applied: this.appliedIndex,
      lastIndex: st.lastIndex,
      firstIndex: this.logStore.firstIndex(),
      snapshotIndex: this.snapshots.latestIndex(),
      members: ids.map((id) => {
        const p = prog.get(id);
        return {
          id,
          address: this.members.get(id) ?? "",
          role: learners.has(id) ? "learner" : "voter",
          ...(p
            ? { match: p.match, next: p.next, lag: Math.max(0, st.commit - p.match), state: p.state }
            : {}),
        };
      }),
      pendingProposals: this.proposals.size,
      pendingReads: this.reads.size,
    };
  }

  notLeader(): NotLeaderError {
    const lead = this.raw.status().lead;
    return new NotLeaderError(lead, this.members.get(lead));
  }

  private checkRunning(): void {
    if (this.state !== "running") throw new StoppedError();
  }

  // ---------------------------------------------------------------------------
  // The loop
  // ---------------------------------------------------------------------------

  private onTick(): void {
    if (this.state !== "running") return;
    this.catchUpTicks(true);
    // Monotonic: a wall clock stepped back (NTP) must not hold timeouts off, nor one stepped forward fire them.
    const now = performance.now();
    this.proposals.expire(now);
    this.reads.expire(now);
    this.membership.onTick();
    this.snapshots.onTick();
    this.schedule();
  }

  /**
   * Ticks the core once per `tickMs` of real time since the last tick (`atLeastOne`: the
   * timer's own tick). A timer does not catch up after the event loop stalled (a long GC, a
   * blocking call): the core's clock would lag real time, and a leader's lease outlive the
   * followers' patience; a lease read catches up first for the same reason. Without leases
   * the timer ticks once per call, as before: a stalled node then times out later, never
   * sooner (a leader back from a stall does not step down before reading its followers' acks).
   */
  private catchUpTicks(atLeastOne: boolean): void {
    if (this.config.raft.leaseTicks === 0) {
      if (atLeastOne) this.raw.tick();
      return;
    }
    const tickMs = this.config.raft.tickMs;
    const now = performance.now();
    let n = Math.floor((now - this.lastTickAt) / tickMs);
    if (atLeastOne) n = Math.max(n, 1);
    if (n <= 0) return;
    const max = 2 * this.config.raft.electionTicks;
    if (n > max) {
      // Far behind: enough ticks to end any lease and election timeout; start afresh.
      n = max;
      this.lastTickAt = now;
    } else {
      this.lastTickAt = Math.max(this.lastTickAt + n * tickMs, now - tickMs);
    }
    for (let i = 0; i < n; i++) this.raw.tick();
  }

  private onMessage(m: Message): void {
    if (this.state !== "running") return;
    this.heardFrom.set(m.from, performance.now());
    try {
      this.raw.step(m);
    } catch (e) {
      // A malformed message from a peer is its problem, never a reason to crash.
      this.logger.warn({ from: m.from, type: m.type, err: String(e) }, "message rejected");
      return;
    }
    this.schedule();
  }

  /** Steps a message that arrived by another path (a snapshot assembled from chunks). */
  stepLocal(m: Message): void {
    this.onMessage(m);
  }

  /**
   * Runs the loop once the current callback is done (a microtask): the inputs
   * of one callback (the messages of one socket read, the proposals answered by
   * one batch) make one Ready, and a follower's write starts without waiting
   * for the rest of the event-loop turn.
   */
  schedule(): void {
    if (this.loopScheduled || this.state === "stopped") return;
    this.loopScheduled = true;
    queueMicrotask(() => {
      this.loopScheduled = false;
      if (this.looping) return;
      this.loopIdle = this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (this.state === "running" || this.state === "stopping") {
        if (this.raw.hasReady()) await this.handleReady(this.raw.ready());
        else if (this.snapshots.dueWithoutReady()) this.snapshots.startDue();
        else break;
      }
    } catch (e) {
      await this.fatal(e as Error);
    } finally {
      this.looping = false;
    }
    // Inputs that arrived while the last Ready was being written.
    if (this.state === "running" && this.raw.hasReady()) this.schedule();
  }

  private async handleReady(rd: Ready): Promise<void> {
    // Bound the writes in flight (asynchronous writes): beyond it, wait for them (storage is
    // the bottleneck anyway). Wait here, before this Ready joins the chain: its own link waits
    // for its advance(), below, so waiting on a chain that holds it would never end.
    if (this.asyncWrites && this.writesPending >= MAX_WRITES_IN_FLIGHT) await this.writesInFlight;
    this.send(rd.messagesNow);
    if (rd.snapshot) {
      // A snapshot replaces the log: let the writes it supersedes land first.
      await this.writesInFlight;
      await this.snapshots.install(rd.snapshot);
    }
    const writes: Promise<void>[] = [];
    if (rd.entries.length > 0) writes.push(this.logStore.append(rd.entries));
    if (rd.hardState) writes.push(this.logStore.saveHardState(rd.hardState));
    // A commit-index-only change needs no fsync: a lost commit index is recomputed after a restart.
    if (rd.mustSync) writes.push(this.logStore.sync());
    let markAdvanced = (): void => {};
    let advancedOk = false;
    let membersBefore: Set<NodeId> | null = null;
    let leaderBefore = false;
    if (this.asyncWrites) {
      // The write proceeds while this loop goes on to apply and take the next Ready; its
      // messages leave once it (and every write before it) is durable, and not before the
      // core took the Ready back with advance().
      this.writesPending++;
      const written = Promise.all(writes);
      // Its failure reaches fatal() through the chain; but a link behind an earlier failed one
      // never runs, and an unhandled rejection would end the whole process.
      written.catch(() => {});
      const advanced = new Promise<void>((resolve) => {
        markAdvanced = resolve;
      });
      this.writesInFlight = this.writesInFlight.then(async () => {
        await written;
        await advanced;
        this.writesPending--;
        // A Ready the loop gave up on (it failed before advance(): fail-stop) sends nothing.
        if (this.state === "stopped" || !advancedOk) return;
        this.send(rd.messages);
        this.raw.persisted(rd);
        this.schedule();
      });
      this.writesInFlight.catch((e: unknown) => void this.fatal(e as Error));
    } else {
      await Promise.all(writes);
      this.send(rd.messages);
    }
    try {
      if (rd.softState) this.onSoftState(rd.softState.leader, rd.softState.role);
      if (rd.committedEntries.length > 0) await this.apply(rd.committedEntries);
      for (const rs of rd.readStates) this.reads.confirmed(rs.ctx, rs.index);
      for (const d of rd.droppedReads) this.reads.dropped(d.ctx, d.reason);
      this.reads.serve(this.appliedIndex);
      // Who leaves is who is in the configuration before the core applies this batch's
      // changes and not after (entering a joint configuration removes no one yet).
      if (this.confChangesApplied.length > 0) {
        membersBefore = confMembers(this.raw.confState());
        // A leader that removes itself steps down in advance(): it still tells the others.
        leaderBefore = this.raw.status().role === "leader";
      }
      this.raw.advance();
      advancedOk = true;
    } finally {
      // Always: a write waiting for this (its messages, or its abandonment) must not wait forever.
      markAdvanced();
    }
    // The core applied the membership changes in advance(): report the configuration they made.
    for (const e of this.confChangesApplied) {
      const cs = this.raw.confState();
      this.membership.onApplied(e.index, e.term, cs);
      this.emit("membershipChange", { confState: cs, index: e.index });
    }
    this.confChangesApplied = [];
    if (membersBefore) {
      const after = confMembers(this.raw.confState());
      for (const id of membersBefore) if (!after.has(id)) this.membership.onRemoved(id, leaderBefore);
      void this.members
        .persist()
        .catch((err: unknown) => this.logger.error({ err: String(err) }, "persisting members"));
    }
    this.membership.settleUpTo(this.appliedIndex, "was applied as another entry");
    this.membership.afterApply(this.appliedIndex);
    this.snapshots.startDue();
  }

  /**
   * Sends a Ready's messages and writes them out at once: the loop may handle
   * several Readies before it yields, and a follower should not wait for that.
   */
  private send(msgs: readonly Message[]): void {
    if (msgs.length === 0) return;
    const plain: Message[] = [];
    for (const m of msgs) {
      if (m.type === "snapshot") this.snapshots.send(m);
      else plain.push(m);
    }
    this.transport.send(plain);
    this.transport.flush?.();
  }

  private async apply(entries: readonly Entry[]): Promise<void> {
    // What the state machine has applied before (a replay after a restart) is a prefix.
    const smApplied = this.stateMachine.lastApplied().index;
    let first = 0;
    while (first < entries.length && entries[first]!.index <= smApplied) first++;
    const fresh = first === 0 ? entries : entries.slice(first);
    const results = fresh.length > 0 ? await this.stateMachine.apply(fresh) : [];
    invariant(
      results.length === fresh.length,
      "state machine returned a result count unlike the entry count",
    );
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.type === EntryType.ConfChange) this.onConfChangeApplied(e);
      this.proposals.applied(e.index, e.term, (i >= first ? results[i - first] : undefined) as R);
      this.snapshots.noteApplied(e);
    }
    this.appliedIndex = entries[entries.length - 1]!.index;
  }

  private onConfChangeApplied(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const address = new TextDecoder().decode(cc.context);
    // A single addition carries the new member's address. Removals are taken from the
    // configuration the batch leaves (handleReady), which also persists the members once: a
    // node removed by a joint change is still an outgoing voter until the joint config is left.
    const ch = cc.changes[0];
    if (cc.changes.length === 1 && ch && ch.type !== ConfChangeType.RemoveNode && address) {
      this.members.set(ch.nodeId, address);
      if (ch.nodeId !== this.id) this.transport.addPeer(ch.nodeId, address);
    }
    this.confChangesApplied.push(e);
  }

  /** @internal When a message last came from `id` (monotonic ms), or undefined. */
  lastHeardFrom(id: NodeId): number | undefined {
    return this.heardFrom.get(id);
  }

  /** A snapshot from the leader replaced the state: proposals it covers can no longer be matched. */
  afterSnapshotInstall(index: number): void {
    this.appliedIndex = index;
    this.proposals.supersededUpTo(index);
    this.membership.settleUpTo(index, "was covered by a snapshot; outcome unknown");
  }

  private onSoftState(leader: NodeId, role: Role): void {
    const term = this.raw.status().term;
    if (leader !== this.lastLeader) {
      this.lastLeader = leader;
      this.logger.info({ nodeId: this.id, leader, term }, "leader changed");
      this.emit("leaderChange", { leader, term });
    }
    if (role !== this.lastRole) {
      this.lastRole = role;
      this.emit("roleChange", { role, term });
    }
  }

  /**
   * @internal Fail-stop on a storage failure (also from background snapshot
   * writes): everything pending fails with `e`, "fatal" is emitted, and the
   * node stops (no leader transfer: it cannot write).
   */
  async fatal(e: Error): Promise<void> {
    // Already stopped (a background write failing late): nothing is left to stop, and the
    // node must not come back to life as "stopping".
    if (this.state === "stopped") {
      this.logger.warn({ nodeId: this.id, err: String(e) }, "failure after stop; ignored");
      return;
    }
    // Persistence failed (disk full, I/O error): continuing could acknowledge
    // what is not durable. Fail-stop; a restart recovers from the durable state.
    this.logger.error(
      { nodeId: this.id, err: String(e), code: (e as TsraftError).code },
      "fatal: stopping node",
    );
    this.state = "stopping";
    this.proposals.failAll(e);
    this.reads.failAll(e);
    this.membership.failAll(e);
    this.snapshots.failRequests(e);
    this.emit("fatal", e);
    // And stop, whether or not anyone calls stop() or run(): a leader that kept ticking would
    // keep its followers from electing a healthy one while it refuses every write.
    void this.stop().catch((err: unknown) =>
      this.logger.error({ err: String(err) }, "stopping after a failure"),
    );
  }
}
