/**
 * The request/response bookkeeping shared by both transports: the client side
 * (ids, timeouts, the bound on outstanding calls) and the server side
 * (method registry, turning handler failures into wire errors). Moving bytes
 * is the transport's job.
 */

import {
  InvalidArgumentError,
  RemoteError,
  ResourceExhaustedError,
  StoppedError,
  TimeoutError,
  TsraftError,
} from "../errors.ts";
import type { NodeId } from "../raft/types.ts";
import { MAX_NAME_BYTES, type ResponseFrame } from "./frame.ts";
import type { Logger, PeerMetrics, RequestOptions, RpcContext, RpcHandler } from "./transport.ts";

/** Codes a transport itself puts in error responses. */
export const RPC_NO_HANDLER = "TSRAFT_ERR_RPC_NO_HANDLER";
export const RPC_INTERNAL = "TSRAFT_ERR_RPC_INTERNAL";
export const RPC_BUSY = "TSRAFT_ERR_RESOURCE_EXHAUSTED";

interface Pending {
  readonly peer: NodeId;
  readonly method: string;
  readonly resolve: (payload: Uint8Array) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly cleanup: () => void;
}

export function validateMethod(method: string): void {
  if (typeof method !== "string" || method.length === 0 || Buffer.byteLength(method) > MAX_NAME_BYTES) {
    throw new InvalidArgumentError(
      `RPC method must be a non-empty string of at most ${MAX_NAME_BYTES} bytes`,
    );
  }
}

/** The longest delay a Node timer keeps (a longer one fires after 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function validateRequestOptions(o: RequestOptions): void {
  if (!o || !Number.isSafeInteger(o.timeoutMs) || o.timeoutMs <= 0 || o.timeoutMs > MAX_TIMER_MS) {
    throw new InvalidArgumentError(
      `request timeoutMs must be an integer in [1, ${MAX_TIMER_MS}], got ${safeText(o?.timeoutMs)}`,
    );
  }
}

/** Text for any value (a thrown one, an option), even one String() cannot convert (a null-prototype object). */
export function safeText(err: unknown): string {
  if (err instanceof Error) return err.message;
  try {
    return String(err);
  } catch {
    return `unprintable ${typeof err} thrown`;
  }
}

export class RpcClient {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stopped = false;

  constructor(
    private readonly maxOutstanding: number,
    private readonly metrics: (peer: NodeId) => PeerMetrics,
  ) {}

  get outstanding(): number {
    return this.pending.size;
  }

  /**
   * Registers a call and returns its id and promise. `send(id)` must hand the
   * request to the wire; if it throws, the call fails with that error.
   */
  call(
    peer: NodeId,
    method: string,
    options: RequestOptions,
    send: (id: number) => void,
  ): Promise<Uint8Array> {
    if (this.stopped) return Promise.reject(new StoppedError("transport"));
    if (this.pending.size >= this.maxOutstanding) {
      return Promise.reject(new ResourceExhaustedError("outstanding RPC requests", this.maxOutstanding));
    }
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    const id = this.nextId;
    // Ids only need to be unique among outstanding calls; wrap well before 2^53.
    this.nextId = this.nextId >= 2 ** 48 ? 1 : this.nextId + 1;
    const m = this.metrics(peer);
    m.requestsSent++;
    return new Promise<Uint8Array>((resolve, reject) => {
      const signal = options.signal;
      const onAbort = () =>
        this.fail(id, signal!.reason instanceof Error ? signal!.reason : new Error("aborted"));
      const timer = setTimeout(
        () => this.fail(id, new TimeoutError(`${method} on peer ${peer}`, options.timeoutMs)),
        options.timeoutMs,
      );
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, { peer, method, resolve, reject, timer, cleanup });
      try {
        send(id);
      } catch (err) {
        this.fail(id, err instanceof Error ? err : new Error(safeText(err)));
      }
    });
  }

  /** Settles the call a response belongs to; a response for an unknown id (timed out) is ignored. */
  settle(from: NodeId, frame: ResponseFrame): void {
    const p = this.pending.get(frame.id);
    if (!p || p.peer !== from) return;
    this.pending.delete(frame.id);
    p.cleanup();
    if (frame.ok) p.resolve(frame.payload);
    else {
      this.metrics(p.peer).requestsFailed++;
      p.reject(new RemoteError(p.peer, p.method, frame.code, frame.message));
    }
  }

  fail(id: number, err: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.cleanup();
    this.metrics(p.peer).requestsFailed++;
    p.reject(err);
  }

  /** Fails every call to `peer` (its connection is gone, so their responses can never arrive). */
  failPeer(peer: NodeId, err: () => Error): void {
    for (const [id, p] of this.pending) if (p.peer === peer) this.fail(id, err());
  }

  stop(): void {
    this.stopped = true;
    for (const id of [...this.pending.keys()]) this.fail(id, new StoppedError("transport"));
  }
}

export class RpcServer {
  private readonly handlers = new Map<string, RpcHandler>();

  constructor(private readonly logger: Logger) {}

  register(method: string, handler: RpcHandler): void {
    validateMethod(method);
    if (typeof handler !== "function") throw new InvalidArgumentError("RPC handler must be a function");
    this.handlers.set(method, handler);
  }

  /** Runs the handler of `method`; always resolves with the response frame to send back. */
  async dispatch(id: number, payload: Uint8Array, ctx: RpcContext): Promise<ResponseFrame> {
    const handler = this.handlers.get(ctx.method);
    if (!handler) {
      return {
        kind: "response",
        id,
        ok: false,
        code: RPC_NO_HANDLER,
        message: `no handler for "${ctx.method}"`,
      };
    }
    try {
      const out = await handler(payload, ctx);
      if (!(out instanceof Uint8Array))
        throw new TypeError(`handler of "${ctx.method}" returned a non-Uint8Array`);
      return { kind: "response", id, ok: true, payload: out };
    } catch (err) {
      if (err instanceof TsraftError)
        return { kind: "response", id, ok: false, code: err.code, message: err.message };
      // Not one of ours: a bug in the handler. Log it here, where the stack is.
      const message = safeText(err);
      this.logger.error(
        { err: err instanceof Error ? err : message, method: ctx.method, from: ctx.from },
        "RPC handler failed",
      );
      return { kind: "response", id, ok: false, code: RPC_INTERNAL, message };
    }
  }
}

/** Per-peer counters, created on first use. */
export class MetricsTable {
  private readonly table = new Map<NodeId, PeerMetrics>();

  constructor(private readonly create: () => PeerMetrics) {}

  get(peer: NodeId): PeerMetrics {
    let m = this.table.get(peer);
    if (!m) {
      m = this.create();
      this.table.set(peer, m);
    }
    return m;
  }

  snapshot(): ReadonlyMap<NodeId, Readonly<PeerMetrics>> {
    const out = new Map<NodeId, PeerMetrics>();
    for (const [k, v] of this.table) out.set(k, { ...v });
    return out;
  }
}
