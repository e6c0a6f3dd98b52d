/**
 * One inbound connection: a peer → this node. Validates the handshake, then
 * decodes Raft messages and RPC requests; answers requests on the same
 * connection. Anything malformed closes the connection (a length-prefixed
 * stream cannot be resynchronised) and is logged; it never throws upward.
 */

import type net from "node:net";
import { ProtocolError } from "../errors.ts";
import type { Message, NodeId } from "../raft/types.ts";
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameDecoder,
  MAX_HANDSHAKE_FRAME_BYTES,
  PROTOCOL_VERSION,
  type RequestFrame,
} from "./frame.ts";
import type { ResolvedTcpOptions } from "./options.ts";
import { RPC_BUSY, type RpcServer, safeText } from "./rpc.ts";
import type { PeerMetrics } from "./transport.ts";

export interface InboundHost {
  readonly options: ResolvedTcpOptions;
  readonly rpc: RpcServer;
  metrics(peer: NodeId): PeerMetrics;
  deliver(message: Message): void;
  /** A handshake succeeded: the host may retire an older connection from the same peer. */
  onAuthenticated(conn: InboundConnection): void;
  onClosed(conn: InboundConnection): void;
}

export class InboundConnection {
  /** 0 until the handshake succeeds. */
  peer: NodeId = 0;
  private readonly decoder: FrameDecoder;
  private handlersRunning = 0;
  private closed = false;
  private readonly handshakeTimer: NodeJS.Timeout;
  readonly remote: string;

  constructor(
    private readonly host: InboundHost,
    private readonly socket: net.Socket,
  ) {
    const o = host.options;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    // Until the dialer has identified itself, only handshake-sized frames.
    this.decoder = new FrameDecoder(Math.min(o.maxFrameBytes, MAX_HANDSHAKE_FRAME_BYTES));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    this.handshakeTimer = setTimeout(() => this.abort("handshake timed out"), o.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.abort(`socket error: ${err.message}`, "debug"));
    socket.on("close", () => this.abort("closed by peer", "debug"));
    // Responses waiting in the socket: stop reading until the peer drains them.
    socket.on("drain", () => socket.resume());
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.decoder.push(chunk, (body) => {
        if (this.closed) return;
        if (this.peer !== 0) this.host.metrics(this.peer).bytesReceived += body.length + 4;
        this.onFrame(decodeFrame(body));
      });
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (err instanceof ProtocolError) this.abort(`protocol error: ${msg}`, "error");
      else this.abort(`internal error: ${msg}`, "error");
    }
  }

  private onFrame(frame: Frame): void {
    if (this.peer === 0) {
      this.onHandshake(frame);
      return;
    }
    if (frame.kind === "message") {
      const m = frame.message;
      // A connection speaks for the node that authenticated on it, to us only.
      if (m.from !== this.peer || m.to !== this.host.options.nodeId) {
        throw new ProtocolError(
          `message from ${m.from} to ${m.to} on the connection of node ${this.peer} to node ${this.host.options.nodeId}`,
        );
      }
      this.host.metrics(this.peer).messagesReceived++;
      this.host.deliver(m);
      return;
    }
    if (frame.kind === "request") {
      this.onRequest(frame);
      return;
    }
    throw new ProtocolError(`unexpected ${frame.kind} frame on an inbound connection`);
  }

  private onHandshake(frame: Frame): void {
    const o = this.host.options;
    if (frame.kind !== "hello") throw new ProtocolError(`expected a handshake, got a ${frame.kind} frame`);
    let reason: string | null = null;
    let message = "";
    if (frame.version !== PROTOCOL_VERSION) {
      reason = "protocol-version-mismatch";
      message = `protocol version ${frame.version} is not supported (this node speaks ${PROTOCOL_VERSION})`;
    } else if (frame.clusterId !== o.clusterId) {
      reason = "cluster-id-mismatch";
      message = `cluster id "${frame.clusterId}" does not match this node's cluster "${o.clusterId}"`;
    } else if (frame.to !== o.nodeId) {
      reason = "node-id-mismatch";
      message = `dialed node ${frame.to} but reached node ${o.nodeId}`;
    } else if (frame.from === 0 || frame.from === o.nodeId) {
      reason = "invalid-node-id";
      message = `invalid dialer node id ${frame.from}`;
    }
    if (reason !== null) {
      o.logger.warn(
        { remote: this.remote, from: frame.from, clusterId: frame.clusterId, reason },
        `refused connection: ${message}`,
      );
      this.clearHandshakeTimer();
      this.closed = true;
      this.socket.end(encodeFrame({ kind: "refuse", reason, message }));
      // end() lets the refusal reach the dialer; destroy bounds how long we wait.
      setTimeout(() => this.socket.destroy(), o.closeTimeoutMs).unref();
      this.host.onClosed(this);
      return;
    }
    this.clearHandshakeTimer();
    this.decoder.setMaxFrameBytes(o.maxFrameBytes);
    this.peer = frame.from;
    this.socket.write(encodeFrame({ kind: "helloOk", version: PROTOCOL_VERSION, nodeId: o.nodeId }));
    o.logger.debug({ remote: this.remote, peer: this.peer }, "accepted connection from peer");
    this.host.onAuthenticated(this);
  }

  private onRequest(frame: RequestFrame): void {
    const o = this.host.options;
    const m = this.host.metrics(this.peer);
    if (this.handlersRunning >= o.maxConcurrentHandlers) {
      this.respond({
        kind: "response",
        id: frame.id,
        ok: false,
        code: RPC_BUSY,
        message: `too many concurrent requests (limit ${o.maxConcurrentHandlers})`,
      });
      return;
    }
    this.handlersRunning++;
    m.requestsServed++;
    void this.host.rpc
      .dispatch(frame.id, frame.payload, { from: this.peer, method: frame.method })
      .then((resp) => {
        this.handlersRunning--;
        if (resp.ok && resp.payload.length + 64 > o.maxFrameBytes) {
          this.respond({
            kind: "response",
            id: frame.id,
            ok: false,
            code: "TSRAFT_ERR_RESOURCE_EXHAUSTED",
            message: `response of ${resp.payload.length} bytes exceeds maxFrameBytes (${o.maxFrameBytes})`,
          });
          return;
        }
        this.respond(resp);
      })
      .catch((err: unknown) => {
        // dispatch() answers every handler failure itself; reaching here is a bug in it.
        o.logger.error({ err: safeText(err), peer: this.peer }, "RPC dispatch failed; closing");
        this.abort("internal error in RPC dispatch", "error");
      });
  }

  private respond(frame: Frame): void {
    if (this.closed) return;
    const buf = encodeFrame(frame);
    this.host.metrics(this.peer).bytesSent += buf.length;
    if (!this.socket.write(buf) && this.socket.writableLength > this.host.options.maxQueueBytes) {
      // Bound memory: a peer that does not read its responses stops being read.
      this.socket.pause();
    }
  }

  private clearHandshakeTimer(): void {
    clearTimeout(this.handshakeTimer);
  }

  /** Closes the connection, logging why at `level`. */
  abort(reason: string, level: "debug" | "info" | "warn" | "error" = "warn"): void {
    if (this.closed) return;
    this.closed = true;
    this.clearHandshakeTimer();
    this.host.options.logger[level](
      { remote: this.remote, peer: this.peer, reason },
      "closing inbound connection",
    );
    this.socket.destroy();
    this.host.onClosed(this);
  }

  /** Graceful close: lets written responses flush, then destroys after `timeoutMs`. */
  async end(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clearHandshakeTimer();
    const socket = this.socket;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      socket.once("close", () => resolve());
      socket.end();
    });
    clearTimeout(timer);
    socket.destroy();
    this.host.onClosed(this);
  }
}
