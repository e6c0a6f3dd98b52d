/**
 * The Transport contract the runtime (src/node/) drives. Two implementations
 * honour it: TcpTransport (real peers) and MemoryTransport (in-process
 * clusters and tests).
 *
 * Semantics the runtime can rely on:
 * - `send` never blocks and never throws because a peer is down: a message
 *   that cannot be queued is dropped, counted, and the peer is reported via
 *   `onUnreachable` (the runtime then calls the core's `reportUnreachable`;
 *   Raft retransmits, so a drop is never a safety problem).
 * - Messages to one peer are delivered in the order they were sent, or not at
 *   all; there is no ordering across peers.
 * - Inbound messages are delivered one at a time to `onMessage` handlers; a
 *   message's `from` has been checked to be the authenticated peer and `to`
 *   to be this node.
 * - `request` is a small request/response RPC for node-level calls (join,
 *   proposal forwarding, snapshot chunks). Payloads are opaque bytes; each
 *   call is bounded in size (the frame limit), time (`timeoutMs`) and number
 *   (`maxOutstandingRequests`).
 */

import type { Message, NodeId } from "../raft/types.ts";

/** A pino-compatible logger: `logger.warn({ peer: 2 }, "connection lost")`. */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const noop = (): void => {};
export const silentLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop });

export type MessageHandler = (message: Message) => void;
/** Why a peer was reported unreachable (for logs and metrics; Raft only needs the id). */
export type UnreachableReason =
  | "queue-full"
  | "not-connected"
  | "connection-lost"
  | "handshake-refused"
  | "unknown-peer"
  | "message-too-large";
export type UnreachableHandler = (peer: NodeId, reason: UnreachableReason) => void;

/**
 * Hands a message to every handler. One that throws is logged and the rest
 * still run: a handler bug must not take a connection (and every peer's
 * traffic on it) down.
 */
export function dispatchMessage(handlers: Iterable<MessageHandler>, m: Message, logger: Logger): void {
  for (const h of handlers) {
    try {
      h(m);
    } catch (err) {
      logger.error({ err, type: m.type, from: m.from }, "message handler threw");
    }
  }
}

/** Tells every handler a peer is unreachable; one that throws is logged and the rest still run. */
export function dispatchUnreachable(
  handlers: Iterable<UnreachableHandler>,
  peer: NodeId,
  reason: UnreachableReason,
  logger: Logger,
): void {
  for (const h of handlers) {
    try {
      h(peer, reason);
    } catch (err) {
      logger.error({ err, peer }, "unreachable handler threw");
    }
  }
}

export interface RequestOptions {
  /** Rejects with TimeoutError after this long. */
  readonly timeoutMs: number;
  /** Rejects with the signal's reason when aborted. */
  readonly signal?: AbortSignal;
}

export interface RpcContext {
  /** The authenticated node id of the caller. */
  readonly from: NodeId;
  readonly method: string;
}

/**
 * Serves one RPC method. Resolve with the response payload; throw (or reject
 * with) a TsraftError to send its `code` and `message` to the caller, where it
 * surfaces as a RemoteError with the same code.
 */
export type RpcHandler = (payload: Uint8Array, ctx: RpcContext) => Uint8Array | Promise<Uint8Array>;

/** Counters per peer. Plain numbers, monotonically increasing, for the runtime to export. */
export interface PeerMetrics {
  messagesSent: number;
  bytesSent: number;
  messagesReceived: number;
  bytesReceived: number;
  messagesDropped: number;
  /** Successful handshakes on the outbound connection. */
  connects: number;
  /** Outbound connections lost or failed (including refused handshakes). */
  connectFailures: number;
  requestsSent: number;
  requestsFailed: number;
  requestsServed: number;
}

export function emptyPeerMetrics(): PeerMetrics {
  return {
    messagesSent: 0,
    bytesSent: 0,
    messagesReceived: 0,
    bytesReceived: 0,
    messagesDropped: 0,
    connects: 0,
    connectFailures: 0,
    requestsSent: 0,
    requestsFailed: 0,
    requestsServed: 0,
  };
}

export type PeerState = "connecting" | "connected" | "backoff" | "closed";

export interface PeerStatus {
  readonly id: NodeId;
  readonly address: string;
  readonly state: PeerState;
  /** Messages and bytes waiting to be written. */
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** The last connection error, if the peer is not connected. */
  readonly lastError: string | undefined;
}

export interface Transport {
  /** This node's id. */
  readonly nodeId: NodeId;
  /** Starts listening / joins the network. Resolves once inbound connections are accepted. */
  start(): Promise<void>;
  /** Queues messages for their `to` peers. Never blocks; never throws for a down peer. */
  send(messages: readonly Message[]): void;
  /**
   * Optional: writes what `send` queued now instead of at the end of this
   * event-loop turn. A runtime that handles several Readies in one turn calls
   * it after each Ready's messages, trading some coalescing for latency.
   */
  flush?(): void;
  /** Registers an inbound message handler; returns a function that unregisters it. */
  onMessage(handler: MessageHandler): () => void;
  /** Registers a handler called when a message to a peer was dropped or its connection failed. */
  onUnreachable(handler: UnreachableHandler): () => void;
  /** Adds (or re-addresses) a peer. Idempotent for the same address. */
  addPeer(id: NodeId, address: string): void;
  /** Removes a peer, dropping whatever is queued for it. Unknown ids are ignored. */
  removePeer(id: NodeId): void;
  /** Calls `method` on `peer` and resolves with its response payload. */
  request(peer: NodeId, method: string, payload: Uint8Array, options: RequestOptions): Promise<Uint8Array>;
  /** Registers the handler of `method` (one per method; replaces any earlier one). */
  handle(method: string, handler: RpcHandler): void;
  /** Peers as currently known, with their connection state. */
  peers(): readonly PeerStatus[];
  /** Per-peer counters (a snapshot copy). */
  metrics(): ReadonlyMap<NodeId, Readonly<PeerMetrics>>;
  /**
   * Stops: flushes what is queued (bounded by the implementation's close
   * timeout), rejects outstanding requests with StoppedError, closes
   * connections. Idempotent.
   */
  close(): Promise<void>;
}
