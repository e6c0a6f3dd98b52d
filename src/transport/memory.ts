/**
 * An in-process network: MemoryNetwork is the hub, MemoryTransport one node's
 * endpoint with the same contract as TcpTransport. Used for in-process
 * clusters and tests, with hooks to drop, delay and partition for fault
 * injection.
 *
 * Delivery is always asynchronous (never inside `send`), so the runtime sees
 * the same re-entrancy as over TCP. By default every message goes through the
 * binary codec, so the receiver owns its copy and the codec is exercised.
 */

import { ConfigError, InvalidArgumentError, PeerUnreachableError, StoppedError } from "../errors.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { decodeMessage, encodeMessage } from "./codec.ts";
import { validateClusterId, validateNodeId } from "./options.ts";
import { MetricsTable, RpcClient, RpcServer, validateMethod, validateRequestOptions } from "./rpc.ts";
import {
  dispatchMessage,
  dispatchUnreachable,
  emptyPeerMetrics,
  type Logger,
  type MessageHandler,
  type PeerMetrics,
  type PeerStatus,
  type RequestOptions,
  type RpcHandler,
  silentLogger,
  type Transport,
  type UnreachableHandler,
  type UnreachableReason,
} from "./transport.ts";

/** What a fault hook decides for one message: deliver now, drop, or deliver after a delay (may reorder). */
export type FaultDecision = "deliver" | "drop" | { readonly delayMs: number };
export type FaultHook = (message: Message) => FaultDecision;

export interface MemoryNetworkOptions {
  readonly clusterId?: string;
  readonly logger?: Logger;
  /** Messages in flight per link (from → to) before new ones are dropped. Default 4096. */
  readonly maxInflightMessages?: number;
  /** RPC requests a node may have in flight. Default 1024. */
  readonly maxOutstandingRequests?: number;
  /** Pass messages through the codec (default true). Off: receivers share the sender's objects. */
  readonly encode?: boolean;
}

export class MemoryNetwork {
  readonly clusterId: string;
  readonly logger: Logger;
  readonly maxInflightMessages: number;
  readonly maxOutstandingRequests: number;
  readonly encode: boolean;
  private readonly endpoints = new Map<string, MemoryTransport>();
  private readonly blocked = new Set<string>();
  private fault: FaultHook | null = null;

  constructor(options: MemoryNetworkOptions = {}) {
    this.clusterId = validateClusterId(options.clusterId ?? "memory");
    this.logger = options.logger ?? silentLogger;
    this.maxInflightMessages = options.maxInflightMessages ?? 4096;
    this.maxOutstandingRequests = options.maxOutstandingRequests ?? 1024;
    this.encode = options.encode ?? true;
    for (const k of ["maxInflightMessages", "maxOutstandingRequests"] as const) {
      if (!Number.isSafeInteger(this[k]) || this[k] < 1)
        throw new ConfigError(k, "must be a positive integer");
    }
  }

  /** Creates node `nodeId`'s endpoint, reachable at `address` (default "mem://<id>") once started. */
  transport(nodeId: NodeId, options: { address?: string; clusterId?: string } = {}): MemoryTransport {
    validateNodeId(nodeId);
    return new MemoryTransport(
      this,
      nodeId,
      options.address ?? `mem://${nodeId}`,
      options.clusterId ?? this.clusterId,
    );
  }

  /** Sets (or clears, with null) the hook consulted for every message. */
  setFaultHook(hook: FaultHook | null): void {
    this.fault = hook;
  }

  /** Cuts every link between group `a` and group `b`, both directions (messages and RPCs). */
  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a)
      for (const y of b) {
        this.blocked.add(`${x}>${y}`);
        this.blocked.add(`${y}>${x}`);
      }
  }

  /** Cuts one direction only. */
  block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  /** @internal */
  register(t: MemoryTransport): void {
    if (this.endpoints.has(t.address))
      throw new InvalidArgumentError(`address ${t.address} is already in use`);
    this.endpoints.set(t.address, t);
  }

  /** @internal */
  unregister(t: MemoryTransport): void {
    if (this.endpoints.get(t.address) === t) this.endpoints.delete(t.address);
  }

  /** @internal Resolves `address` to a live endpoint that accepts `from`, or says why not. */
  route(from: MemoryTransport, to: NodeId, address: string): MemoryTransport | UnreachableReason {
    const target = this.endpoints.get(address);
    if (!target || target.nodeId !== to) return "not-connected";
    if (target.clusterId !== from.clusterId) {
      this.logger.warn(
        { from: from.nodeId, to, clusterId: from.clusterId, expected: target.clusterId },
        "refused: cluster id mismatch",
      );
      return "handshake-refused";
    }
    if (this.blocked.has(`${from.nodeId}>${to}`)) return "not-connected";
    return target;
  }

  /** @internal */
  decide(m: Message): FaultDecision {
    return this.fault ? this.fault(m) : "deliver";
  }
}

export class MemoryTransport implements Transport {
  private readonly peerMap = new Map<NodeId, string>();
  private readonly inflight = new Map<NodeId, number>();
  private readonly messageHandlers = new Set<MessageHandler>();
  private readonly unreachableHandlers = new Set<UnreachableHandler>();
  private readonly metricsTable = new MetricsTable(emptyPeerMetrics);
  private readonly rpcServer: RpcServer;
  private readonly rpcClient: RpcClient;
  private state: "new" | "running" | "closed" = "new";

  constructor(
    private readonly network: MemoryNetwork,
    readonly nodeId: NodeId,
    readonly address: string,
    readonly clusterId: string,
  ) {
    this.rpcServer = new RpcServer(network.logger);
    this.rpcClient = new RpcClient(network.maxOutstandingRequests, (p) => this.metricsTable.get(p));
  }

  async start(): Promise<void> {
    if (this.state !== "new") throw new InvalidArgumentError(`transport cannot start: it is ${this.state}`);
    this.network.register(this);
    this.state = "running";
  }

  private report(peer: NodeId, reason: UnreachableReason): void {
    this.metricsTable.get(peer).messagesDropped++;
    dispatchUnreachable(this.unreachableHandlers, peer, reason, this.network.logger);
  }

  send(messages: readonly Message[]): void {
    if (this.state !== "running") return;
    for (const m of messages) {
      const address = this.peerMap.get(m.to);
      if (address === undefined) {
        this.report(m.to, "unknown-peer");
        continue;
      }
      const target = this.network.route(this, m.to, address);
      if (typeof target === "string") {
        this.report(m.to, target);
        continue;
      }
      const n = this.inflight.get(m.to) ?? 0;
      if (n >= this.network.maxInflightMessages) {
        this.report(m.to, "queue-full");
        continue;
      }
      const decision = this.network.decide(m);
      if (decision === "drop") {
        // A silent drop, like a lossy network: the sender is not told.
        this.metricsTable.get(m.to).messagesDropped++;
        continue;
      }
      const bytes = this.network.encode ? encodeMessage(m) : null;
      const metrics = this.metricsTable.get(m.to);
      metrics.messagesSent++;
      metrics.bytesSent += bytes?.length ?? 0;
      this.inflight.set(m.to, n + 1);
      const deliver = () => {
        this.inflight.set(m.to, (this.inflight.get(m.to) ?? 1) - 1);
        target.receive(bytes ? decodeMessage(bytes) : m, bytes?.length ?? 0);
      };
      if (decision === "deliver") setImmediate(deliver);
      else setTimeout(deliver, decision.delayMs);
    }
  }

  /** @internal */
  receive(m: Message, bytes: number): void {
    if (this.state !== "running") return;
    const metrics = this.metricsTable.get(m.from);
    metrics.messagesReceived++;
    metrics.bytesReceived += bytes;
    dispatchMessage(this.messageHandlers, m, this.network.logger);
  }

  onMessage(handler: MessageHandler): () => void {
    this.messageHandlers.add(handler);
    return () => this.messageHandlers.delete(handler);
  }

  onUnreachable(handler: UnreachableHandler): () => void {
    this.unreachableHandlers.add(handler);
    return () => this.unreachableHandlers.delete(handler);
  }

  addPeer(id: NodeId, address: string): void {
    if (!Number.isSafeInteger(id) || id <= 0 || id === this.nodeId) {
      throw new InvalidArgumentError(`invalid peer id ${id}`);
    }
    if (this.state === "closed") throw new StoppedError("transport");
    this.peerMap.set(id, address);
  }

  removePeer(id: NodeId): void {
    this.peerMap.delete(id);
    this.rpcClient.failPeer(id, () => new PeerUnreachableError(id, "peer removed"));
  }

  request(peer: NodeId, method: string, payload: Uint8Array, options: RequestOptions): Promise<Uint8Array> {
    try {
      validateMethod(method);
      validateRequestOptions(options);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.state !== "running") return Promise.reject(new StoppedError("transport"));
    const address = this.peerMap.get(peer);
    if (address === undefined)
      return Promise.reject(new PeerUnreachableError(peer, "unknown peer (addPeer first)"));
    return this.rpcClient.call(peer, method, options, (id) => {
      const target = this.network.route(this, peer, address);
      if (typeof target === "string") throw new PeerUnreachableError(peer, target);
      const copy = payload.slice();
      setImmediate(() => {
        void target.serve(this.nodeId, id, method, copy).then((resp) => {
          // The caller may have gone away, or the link been cut, meanwhile.
          if (this.state !== "running") return;
          if (typeof this.network.route(target, this.nodeId, this.address) === "string") return;
          const owned = resp.ok ? { ...resp, payload: resp.payload.slice() } : resp;
          setImmediate(() => this.rpcClient.settle(peer, owned));
        });
      });
    });
  }

  /** @internal */
  async serve(from: NodeId, id: number, method: string, payload: Uint8Array) {
    this.metricsTable.get(from).requestsServed++;
    return this.rpcServer.dispatch(id, payload, { from, method });
  }

  handle(method: string, handler: RpcHandler): void {
    this.rpcServer.register(method, handler);
  }

  peers(): readonly PeerStatus[] {
    return [...this.peerMap].map(([id, address]) => {
      const route = this.state === "running" ? this.network.route(this, id, address) : "not-connected";
      return {
        id,
        address,
        state: this.state === "closed" ? "closed" : typeof route === "string" ? "backoff" : "connected",
        queuedMessages: this.inflight.get(id) ?? 0,
        queuedBytes: 0,
        lastError: typeof route === "string" ? route : undefined,
      };
    });
  }

  metrics(): ReadonlyMap<NodeId, Readonly<PeerMetrics>> {
    return this.metricsTable.snapshot();
  }

  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    this.network.unregister(this);
    this.rpcClient.stop();
  }
}
