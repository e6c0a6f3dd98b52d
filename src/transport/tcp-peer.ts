/**
 * One outbound connection: this node → one peer. Owns the peer's bounded send
 * queue, the dial/handshake/reconnect cycle and write coalescing.
 *
 * States: connecting (dialing or handshaking; frames queue up) → connected
 * (frames flush) → on failure backoff (frames are dropped at once: the peer is
 * known down and Raft will retry) → connecting ... → closed.
 */

import net from "node:net";
import tls from "node:tls";
import { HandshakeError, PeerUnreachableError, ProtocolError } from "../errors.ts";
import type { NodeId } from "../raft/types.ts";
import {
  decodeFrame,
  encodeFrame,
  FrameDecoder,
  MAX_HANDSHAKE_FRAME_BYTES,
  PROTOCOL_VERSION,
  type ResponseFrame,
} from "./frame.ts";
import { backoffDelayMs, parseAddress, type ResolvedTcpOptions } from "./options.ts";
import type { PeerMetrics, PeerState, PeerStatus, UnreachableReason } from "./transport.ts";

/** What a peer connection needs from its transport. */
export interface PeerHost {
  readonly options: ResolvedTcpOptions;
  metrics(peer: NodeId): PeerMetrics;
  reportUnreachable(peer: NodeId, reason: UnreachableReason): void;
  onResponse(peer: NodeId, frame: ResponseFrame): void;
  /** The connection dropped: calls waiting for responses on it can no longer succeed. */
  onConnectionLost(peer: NodeId, reason: string): void;
}

interface QueuedFrame {
  readonly buf: Buffer;
  /** Raft messages count towards the message metrics; RPC frames do not. */
  readonly isMessage: boolean;
}

export class OutboundPeer {
  state: PeerState = "connecting";
  private socket: net.Socket | null = null;
  private handshaken = false;
  /** The current connection's frame decoder. */
  private decoder: FrameDecoder | null = null;
  private queue: QueuedFrame[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private flushScheduled = false;
  private attempts = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastError: string | undefined;
  private readonly host: string;
  private readonly port: number;

  constructor(
    private readonly owner: PeerHost,
    readonly id: NodeId,
    readonly address: string,
  ) {
    const a = parseAddress(address);
    this.host = a.host;
    this.port = a.port;
  }

  status(): PeerStatus {
    return {
      id: this.id,
      address: this.address,
      state: this.state,
      queuedMessages: this.queue.length - this.queueHead,
      queuedBytes: this.queuedBytes,
      lastError: this.lastError,
    };
  }

  get connected(): boolean {
    return this.state === "connected";
  }

  /** Queues an encoded frame. Returns the reason it was dropped, or null if queued. */
  enqueue(buf: Buffer, isMessage: boolean): UnreachableReason | null {
    const o = this.owner.options;
    if (this.state === "backoff" || this.state === "closed") return "not-connected";
    if (
      this.queue.length - this.queueHead >= o.maxQueueMessages ||
      this.queuedBytes + buf.length > o.maxQueueBytes
    ) {
      return "queue-full";
    }
    this.queue.push({ buf, isMessage });
    this.queuedBytes += buf.length;
    if (this.state === "connected") this.scheduleFlush();
    return null;
  }

  /** Starts dialing (first time, or after a backoff). */
  connect(): void {
    if (this.state === "closed" || this.socket) return;
    this.state = "connecting";
    const o = this.owner.options;
    const onReady = () => this.onTransportReady();
    const socket = o.tls
      ? tls.connect(
          { host: this.host, port: this.port, key: o.tls.key, cert: o.tls.cert, ca: o.tls.ca },
          onReady,
        )
      : net.connect({ host: this.host, port: this.port }, onReady);
    this.socket = socket;
    this.handshaken = false;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    // One timer covers connect + TLS + handshake, each bounded by its option.
    this.setTimer(o.connectTimeoutMs + o.handshakeTimeoutMs, () =>
      this.fail(socket, `connect/handshake to ${this.address} timed out`),
    );
    // Until the peer has answered the handshake, only handshake-sized frames.
    const decoder = new FrameDecoder(Math.min(o.maxFrameBytes, MAX_HANDSHAKE_FRAME_BYTES));
    this.decoder = decoder;
    socket.on("data", (chunk: Buffer) => {
      try {
        decoder.push(chunk, (body) => this.onFrame(socket, body));
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        o.logger.error(
          { peer: this.id, address: this.address, err: msg },
          "protocol error from peer; closing",
        );
        this.fail(socket, msg);
      }
    });
    socket.on("error", (err) => this.fail(socket, err.message));
    socket.on("close", () => this.fail(socket, "connection closed by peer"));
    socket.on("drain", () => this.scheduleFlush());
  }

  private onTransportReady(): void {
    const o = this.owner.options;
    this.socket?.write(
      encodeFrame({
        kind: "hello",
        version: PROTOCOL_VERSION,
        clusterId: o.clusterId,
        from: o.nodeId,
        to: this.id,
      }),
    );
  }

  private onFrame(socket: net.Socket, body: Buffer): void {
    if (socket !== this.socket) return;
    const frame = decodeFrame(body);
    if (!this.handshaken) {
      if (frame.kind === "refuse") {
        const err = new HandshakeError(
          `peer ${this.id} at ${this.address} refused us: ${frame.reason}: ${frame.message}`,
        );
        this.owner.options.logger.error({ peer: this.id, reason: frame.reason }, err.message);
        this.fail(socket, err.message, "handshake-refused");
        return;
      }
      if (frame.kind !== "helloOk") throw new ProtocolError(`expected handshake reply, got ${frame.kind}`);
      if (frame.version !== PROTOCOL_VERSION || frame.nodeId !== this.id) {
        const msg = `peer at ${this.address} answered as node ${frame.nodeId} v${frame.version}, expected node ${this.id} v${PROTOCOL_VERSION}`;
        this.owner.options.logger.error({ peer: this.id }, msg);
        this.fail(socket, msg, "handshake-refused");
        return;
      }
      this.handshaken = true;
      this.decoder?.setMaxFrameBytes(this.owner.options.maxFrameBytes);
      this.state = "connected";
      this.attempts = 0;
      this.lastError = undefined;
      this.clearTimer();
      this.owner.metrics(this.id).connects++;
      this.owner.options.logger.info({ peer: this.id, address: this.address }, "connected to peer");
      this.scheduleFlush();
      return;
    }
    if (frame.kind !== "response")
      throw new ProtocolError(`unexpected ${frame.kind} frame on an outbound connection`);
    this.owner.metrics(this.id).bytesReceived += body.length + 4;
    this.owner.onResponse(this.id, frame);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.state !== "connected") return;
    this.flushScheduled = true;
    // setImmediate, not nextTick: everything sent during this turn of the event
    // loop (all the Readys processed in it) goes out in one write.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes what is queued now rather than at the end of this event-loop turn. */
  flushNow(): void {
    if (this.queueHead < this.queue.length) this.flush();
  }

  /** Writes queued frames, coalesced up to maxWriteBytes per write, until the socket pushes back. */
  private flush(): void {
    const socket = this.socket;
    if (!socket || this.state !== "connected") return;
    const o = this.owner.options;
    const m = this.owner.metrics(this.id);
    while (this.queueHead < this.queue.length && !socket.writableNeedDrain) {
      const batch: Buffer[] = [];
      let bytes = 0;
      while (this.queueHead < this.queue.length) {
        const f = this.queue[this.queueHead]!;
        if (batch.length > 0 && bytes + f.buf.length > o.maxWriteBytes) break;
        batch.push(f.buf);
        bytes += f.buf.length;
        if (f.isMessage) m.messagesSent++;
        this.queueHead++;
      }
      this.queuedBytes -= bytes;
      m.bytesSent += bytes;
      socket.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch, bytes));
    }
    this.compactQueue();
  }

  private compactQueue(): void {
    // Drop consumed slots in bulk: shift() per frame would be O(n^2).
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private dropQueue(reason: UnreachableReason): void {
    const n = this.queue.length - this.queueHead;
    if (n === 0) return;
    let messages = 0;
    for (let i = this.queueHead; i < this.queue.length; i++) if (this.queue[i]!.isMessage) messages++;
    this.owner.metrics(this.id).messagesDropped += messages;
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    if (messages > 0) this.owner.reportUnreachable(this.id, reason);
  }

  private fail(socket: net.Socket, reason: string, kind: UnreachableReason = "connection-lost"): void {
    if (socket !== this.socket) return;
    this.socket = null;
    socket.destroy();
    this.clearTimer();
    const wasConnected = this.state === "connected";
    this.lastError = reason;
    this.owner.metrics(this.id).connectFailures++;
    this.owner.onConnectionLost(this.id, reason);
    if (this.state === "closed") return;
    this.owner.options.logger[wasConnected ? "warn" : "debug"](
      { peer: this.id, address: this.address, reason },
      wasConnected ? "connection to peer lost" : "could not connect to peer",
    );
    this.dropQueue(kind);
    // Always tell Raft: it moves the peer to probe and stops streaming into the void.
    this.owner.reportUnreachable(this.id, kind);
    this.state = "backoff";
    const o = this.owner.options;
    // A refused handshake is a configuration problem: retry slowly until someone fixes it.
    const delay =
      kind === "handshake-refused"
        ? o.reconnectBackoffMaxMs
        : backoffDelayMs(this.attempts++, o.reconnectBackoffBaseMs, o.reconnectBackoffMaxMs, o.random);
    this.setTimer(delay, () => this.connect());
  }

  private setTimer(ms: number, fn: () => void): void {
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = null;
      fn();
    }, ms);
    // Timers of a transport must never keep the process alive on their own.
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * Closes the connection. With `flush`, hands every queued frame to the
   * socket (memory is already bounded by the queue limits) and waits, up to
   * the close timeout, for the socket to finish writing.
   */
  async close(flush: boolean): Promise<void> {
    if (this.state === "closed") return;
    const wasConnected = this.state === "connected";
    this.state = "closed";
    this.clearTimer();
    const socket = this.socket;
    // Detach first: events from the closing socket must not trigger a reconnect.
    this.socket = null;
    const o = this.owner.options;
    const m = this.owner.metrics(this.id);
    if (flush && wasConnected && socket && !socket.destroyed) {
      const rest = this.queue.slice(this.queueHead);
      for (const f of rest) if (f.isMessage) m.messagesSent++;
      m.bytesSent += this.queuedBytes;
      this.queue = [];
      this.queueHead = 0;
      this.queuedBytes = 0;
      if (rest.length > 0) socket.write(Buffer.concat(rest.map((f) => f.buf)));
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          o.logger.warn({ peer: this.id, timeoutMs: o.closeTimeoutMs }, "flush on close timed out");
          resolve();
        }, o.closeTimeoutMs);
        socket.once("close", () => resolve());
        socket.once("error", () => resolve());
        socket.end(() => resolve());
      });
      clearTimeout(timer);
    }
    const left = this.queue.length - this.queueHead;
    if (left > 0) {
      let messages = 0;
      for (let i = this.queueHead; i < this.queue.length; i++) if (this.queue[i]!.isMessage) messages++;
      m.messagesDropped += messages;
      this.queue = [];
      this.queueHead = 0;
      this.queuedBytes = 0;
    }
    socket?.destroy();
    this.owner.onConnectionLost(this.id, "peer removed or transport closed");
  }

  /** The error a request gets when this peer cannot take it. */
  unreachableError(): PeerUnreachableError {
    return new PeerUnreachableError(this.id, this.lastError ?? this.state);
  }
}
