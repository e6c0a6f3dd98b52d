/**
 * The TCP transport: one listening socket for inbound connections, one
 * outbound connection per peer (A dials B for A→B traffic; B's replies to A
 * travel on B's own connection to A, except RPC responses, which return on
 * the request's connection).
 */

import net from "node:net";
import tls from "node:tls";
import {
  ConfigError,
  InvalidArgumentError,
  PeerUnreachableError,
  ResourceExhaustedError,
  StoppedError,
} from "../errors.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { messageSize } from "./codec.ts";
import { encodeFrame, encodeMessageFrame, FRAME_HEADER_BYTES } from "./frame.ts";
import {
  parseAddress,
  type ResolvedTcpOptions,
  resolveTcpOptions,
  type TcpTransportOptions,
} from "./options.ts";
import { MetricsTable, RpcClient, RpcServer, validateMethod, validateRequestOptions } from "./rpc.ts";
import { InboundConnection } from "./tcp-inbound.ts";
import { OutboundPeer, type PeerHost } from "./tcp-peer.ts";
import {
  dispatchMessage,
  dispatchUnreachable,
  emptyPeerMetrics,
  type MessageHandler,
  type PeerMetrics,
  type PeerStatus,
  type RequestOptions,
  type RpcHandler,
  type Transport,
  type UnreachableHandler,
  type UnreachableReason,
} from "./transport.ts";

type Lifecycle = "new" | "starting" | "running" | "closing" | "closed";

export class TcpTransport implements Transport {
  readonly nodeId: NodeId;
  readonly options: ResolvedTcpOptions;
  readonly rpc: RpcServer;
  private readonly rpcClient: RpcClient;
  private readonly metricsTable = new MetricsTable(emptyPeerMetrics);
  private readonly peerMap = new Map<NodeId, OutboundPeer>();
  private readonly inbound = new Set<InboundConnection>();
  private readonly inboundByPeer = new Map<NodeId, InboundConnection>();
  private readonly messageHandlers = new Set<MessageHandler>();
  private readonly unreachableHandlers = new Set<UnreachableHandler>();
  private server: net.Server | null = null;
  /** The TCP sockets under inbound TLS connections: close() cuts those still in their TLS handshake. */
  private readonly tlsSockets = new Set<net.Socket>();
  private lifecycle: Lifecycle = "new";
  private closing: Promise<void> | null = null;
  private readonly peerHost: PeerHost;

  constructor(options: TcpTransportOptions) {
    this.options = resolveTcpOptions(options);
    this.nodeId = this.options.nodeId;
    this.rpc = new RpcServer(this.options.logger);
    this.rpcClient = new RpcClient(this.options.maxOutstandingRequests, (p) => this.metricsTable.get(p));
    this.peerHost = {
      options: this.options,
      metrics: (p) => this.metricsTable.get(p),
      reportUnreachable: (p, r) => this.reportUnreachable(p, r),
      onResponse: (p, f) => this.rpcClient.settle(p, f),
      onConnectionLost: (p, reason) =>
        this.rpcClient.failPeer(p, () => new PeerUnreachableError(p, `connection lost (${reason})`)),
    };
  }

  /** The address actually bound (useful with port 0). Only after `start()`. */
  listenAddress(): string {
    const a = this.server?.address();
    if (!a || typeof a === "string") throw new StoppedError("transport (not listening)");
    return a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  async start(): Promise<void> {
    if (this.lifecycle !== "new")
      throw new InvalidArgumentError(`transport cannot start: it is ${this.lifecycle}`);
    this.lifecycle = "starting";
    const o = this.options;
    const { host, port } = parseAddress(o.listen, "listen");
    const onSocket = (socket: net.Socket) => this.accept(socket);
    const server = o.tls
      ? tls.createServer(
          {
            key: o.tls.key,
            cert: o.tls.cert,
            ca: o.tls.ca,
            requestCert: o.tls.requireClientCert ?? true,
            rejectUnauthorized: o.tls.requireClientCert ?? true,
            // A client that never completes TLS is cut off like one that never says hello.
            handshakeTimeout: o.handshakeTimeoutMs,
          },
          onSocket,
        )
      : net.createServer(onSocket);
    if (o.tls) {
      server.on("connection", (raw: net.Socket) => {
        this.tlsSockets.add(raw);
        raw.once("close", () => this.tlsSockets.delete(raw));
      });
    }
    server.maxConnections = o.maxInboundConnections;
    // A TLS failure is the dialer's problem; log it once here, never crash.
    server.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
      o.logger.warn(
        { remote: `${socket.remoteAddress}:${socket.remotePort}`, err: err.message },
        "TLS handshake failed",
      );
      // Node leaves the socket open after some of these (a handshake timeout): nothing more can come of it.
      socket.destroy();
    });
    server.on("error", (err) => o.logger.error({ err: err.message }, "transport server error"));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      // close() before the port is bound: the listen callback never comes.
      const onClose = () => reject(new StoppedError("transport"));
      const onError = (e: NodeJS.ErrnoException) =>
        reject(new ConfigError("listen", `cannot listen on ${host}:${port}: ${e.code ?? e.message}`));
      server.once("error", onError);
      server.once("close", onClose);
      server.listen({ host, port }, () => {
        server.off("error", onError);
        server.off("close", onClose);
        resolve();
      });
    });
    if (this.lifecycle !== "starting") throw new StoppedError("transport");
    this.lifecycle = "running";
    o.logger.info({ nodeId: this.nodeId, listen: this.listenAddress(), tls: !!o.tls }, "transport listening");
    for (const p of this.peerMap.values()) p.connect();
  }

  private accept(socket: net.Socket): void {
    if (this.lifecycle !== "running") {
      socket.destroy();
      return;
    }
    const conn: InboundConnection = new InboundConnection(
      {
        options: this.options,
        rpc: this.rpc,
        metrics: (p) => this.metricsTable.get(p),
        deliver: (m) => this.deliver(m),
        onAuthenticated: (c) => {
          // A reconnecting peer's old connection may be half-open: retire it.
          const old = this.inboundByPeer.get(c.peer);
          this.inboundByPeer.set(c.peer, c);
          old?.abort("superseded by a new connection from the same peer", "debug");
        },
        onClosed: (c) => {
          this.inbound.delete(c);
          if (this.inboundByPeer.get(c.peer) === c) this.inboundByPeer.delete(c.peer);
        },
      },
      socket,
    );
    this.inbound.add(conn);
  }

  private deliver(m: Message): void {
    dispatchMessage(this.messageHandlers, m, this.options.logger);
  }

  private reportUnreachable(peer: NodeId, reason: UnreachableReason): void {
    dispatchUnreachable(this.unreachableHandlers, peer, reason, this.options.logger);
  }

  send(messages: readonly Message[]): void {
    if (this.lifecycle === "closing" || this.lifecycle === "closed") return;
    const o = this.options;
    for (const m of messages) {
      const peer = this.peerMap.get(m.to);
      const metrics = this.metricsTable.get(m.to);
      let dropped: UnreachableReason | null;
      let size = 0;
      try {
        size = peer ? messageSize(m) : 0;
      } catch (err) {
        // An unencodable message is a caller bug; it must not break the batch.
        o.logger.error({ err, peer: m.to, type: m.type }, "cannot encode message; dropped");
        metrics.messagesDropped++;
        continue;
      }
      if (!peer) dropped = "unknown-peer";
      else if (1 + size > o.maxFrameBytes) {
        o.logger.error(
          { peer: m.to, type: m.type, bytes: 1 + size, maxFrameBytes: o.maxFrameBytes },
          "message exceeds maxFrameBytes; dropped (lower the core's max message size)",
        );
        dropped = "message-too-large";
      } else {
        let frame: Buffer;
        try {
          frame = encodeMessageFrame(m, size);
        } catch (err) {
          o.logger.error({ err, peer: m.to, type: m.type }, "cannot encode message; dropped");
          metrics.messagesDropped++;
          continue;
        }
        dropped = peer.enqueue(frame, true);
      }
      if (dropped !== null) {
        metrics.messagesDropped++;
        this.reportUnreachable(m.to, dropped);
      }
    }
  }

  onMessage(handler: MessageHandler): () => void {
    this.messageHandlers.add(handler);
    return () => this.messageHandlers.delete(handler);
  }

  onUnreachable(handler: UnreachableHandler): () => void {
    this.unreachableHandlers.add(handler);
    return () => this.unreachableHandlers.delete(handler);
  }

  flush(): void {
    for (const peer of this.peerMap.values()) peer.flushNow();
  }

  addPeer(id: NodeId, address: string): void {
    if (!Number.isSafeInteger(id) || id <= 0 || id === this.nodeId) {
      throw new InvalidArgumentError(`invalid peer id ${id}`);
    }
    parseAddress(address, `peer ${id} address`);
    if (this.lifecycle === "closing" || this.lifecycle === "closed") throw new StoppedError("transport");
    const existing = this.peerMap.get(id);
    if (existing?.address === address) return;
    if (existing) void existing.close(false);
    const peer = new OutboundPeer(this.peerHost, id, address);
    this.peerMap.set(id, peer);
    if (this.lifecycle === "running") peer.connect();
  }

  removePeer(id: NodeId): void {
    const peer = this.peerMap.get(id);
    if (!peer) return;
    this.peerMap.delete(id);
    void peer.close(false);
    this.inboundByPeer.get(id)?.abort("peer removed", "info");
  }

  request(peer: NodeId, method: string, payload: Uint8Array, options: RequestOptions): Promise<Uint8Array> {
    try {
      validateMethod(method);
      validateRequestOptions(options);
      if (!(payload instanceof Uint8Array)) throw new InvalidArgumentError("payload must be a Uint8Array");
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.lifecycle === "closing" || this.lifecycle === "closed") {
      return Promise.reject(new StoppedError("transport"));
    }
    const p = this.peerMap.get(peer);
    if (!p) return Promise.reject(new PeerUnreachableError(peer, "unknown peer (addPeer first)"));
    return this.rpcClient.call(peer, method, options, (id) => {
      const frame = encodeFrame({ kind: "request", id, method, payload });
      if (frame.length - FRAME_HEADER_BYTES > this.options.maxFrameBytes) {
        throw new ResourceExhaustedError(
          `request payload of ${payload.length} bytes: frame`,
          this.options.maxFrameBytes,
        );
      }
      const dropped = p.enqueue(frame, false);
      if (dropped === "queue-full") {
        throw new ResourceExhaustedError(`send queue of peer ${peer}`, this.options.maxQueueMessages);
      }
      if (dropped !== null) throw p.unreachableError();
    });
  }

  handle(method: string, handler: RpcHandler): void {
    this.rpc.register(method, handler);
  }

  peers(): readonly PeerStatus[] {
    return [...this.peerMap.values()].map((p) => p.status());
  }

  metrics(): ReadonlyMap<NodeId, Readonly<PeerMetrics>> {
    return this.metricsTable.snapshot();
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const o = this.options;
    this.lifecycle = "closing";
    this.rpcClient.stop();
    const server = this.server;
    const serverClosed = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    // Flush outbound queues first (bounded by closeTimeoutMs each, concurrently).
    await Promise.all([...this.peerMap.values()].map((p) => p.close(true)));
    await Promise.all([...this.inbound].map((c) => c.end(o.closeTimeoutMs)));
    // What is left never finished its TLS handshake: nothing to flush.
    for (const raw of this.tlsSockets) raw.destroy();
    await serverClosed;
    this.peerMap.clear();
    this.messageHandlers.clear();
    this.unreachableHandlers.clear();
    this.lifecycle = "closed";
    o.logger.info({ nodeId: this.nodeId }, "transport closed");
  }
}
