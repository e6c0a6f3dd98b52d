/**
 * Options of the TCP transport, with validated defaults. Every queue, frame,
 * retry and wait has a bound here, named with its unit last.
 */

import type { SecureContextOptions } from "node:tls";
import { ConfigError } from "../errors.ts";
import type { NodeId } from "../raft/types.ts";
import { MAX_NAME_BYTES } from "./frame.ts";
import { type Logger, silentLogger } from "./transport.ts";

export interface TlsOptions {
  /** PEM private key and certificate this node presents (server side, and client side for mTLS). */
  readonly key: SecureContextOptions["key"];
  readonly cert: SecureContextOptions["cert"];
  /** CA(s) that peers' certificates must chain to. */
  readonly ca: SecureContextOptions["ca"];
  /** mTLS: require and verify a client certificate on inbound connections. Default true. */
  readonly requireClientCert?: boolean;
}

export interface TcpTransportOptions {
  readonly nodeId: NodeId;
  /** Connections from nodes of another cluster are refused at the handshake. */
  readonly clusterId: string;
  /** "host:port" to listen on ("127.0.0.1:0" picks a free port; see `listenAddress()`). */
  readonly listen: string;
  readonly logger?: Logger;
  readonly tls?: TlsOptions;
  /** Largest frame accepted or sent (header excluded). Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** Frames queued per peer before new ones are dropped. Default 4096. */
  readonly maxQueueMessages?: number;
  /** Bytes queued per peer before new frames are dropped. Default 64 MiB. */
  readonly maxQueueBytes?: number;
  /** Frames coalesced into one socket write, at most this many bytes (one frame may exceed it). Default 1 MiB. */
  readonly maxWriteBytes?: number;
  /** Default 3000. */
  readonly connectTimeoutMs?: number;
  /** Time a new connection has to complete the handshake. Default 3000. */
  readonly handshakeTimeoutMs?: number;
  /** First reconnect delay; doubles per failed attempt up to the max, with jitter. Default 50. */
  readonly reconnectBackoffBaseMs?: number;
  /** Default 2000. */
  readonly reconnectBackoffMaxMs?: number;
  /** `close()` waits at most this long for queued frames to flush. Default 2000. */
  readonly closeTimeoutMs?: number;
  /** RPC requests this node may have in flight, across peers. Default 1024. */
  readonly maxOutstandingRequests?: number;
  /** RPC handlers running at once per inbound connection; more are refused. Default 256. */
  readonly maxConcurrentHandlers?: number;
  /** Inbound connections held at once (handshaking or established). Default 1024. */
  readonly maxInboundConnections?: number;
  /** Source of jitter in [0, 1). Default Math.random (injectable for deterministic tests). */
  readonly random?: () => number;
}

export type ResolvedTcpOptions = Required<Omit<TcpTransportOptions, "tls">> & {
  readonly tls: TlsOptions | undefined;
};

export const TCP_DEFAULTS = Object.freeze({
  maxFrameBytes: 16 * 1024 * 1024,
  maxQueueMessages: 4096,
  maxQueueBytes: 64 * 1024 * 1024,
  maxWriteBytes: 1024 * 1024,
  connectTimeoutMs: 3000,
  handshakeTimeoutMs: 3000,
  reconnectBackoffBaseMs: 50,
  reconnectBackoffMaxMs: 2000,
  closeTimeoutMs: 2000,
  maxOutstandingRequests: 1024,
  maxConcurrentHandlers: 256,
  maxInboundConnections: 1024,
});

function int(key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ConfigError(key, `must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

/** Parses "host:port" or "[v6]:port". */
export function parseAddress(address: string, key = "address"): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  if (!m) throw new ConfigError(key, `expected "host:port", got ${JSON.stringify(address)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(key, `port ${port} is out of range`);
  return { host: (m[1] ?? m[2])!, port };
}

export function validateClusterId(clusterId: unknown): string {
  if (typeof clusterId !== "string" || clusterId.length === 0) {
    throw new ConfigError("clusterId", "must be a non-empty string");
  }
  if (Buffer.byteLength(clusterId) > MAX_NAME_BYTES) {
    throw new ConfigError("clusterId", `must be at most ${MAX_NAME_BYTES} bytes`);
  }
  return clusterId;
}

export function validateNodeId(id: unknown, key = "nodeId"): NodeId {
  return int(key, id, 1, Number.MAX_SAFE_INTEGER);
}

export function resolveTcpOptions(o: TcpTransportOptions): ResolvedTcpOptions {
  const d = TCP_DEFAULTS;
  /** An integer option: given, or its default; within [min, max]. */
  const opt = (key: keyof typeof TCP_DEFAULTS, min: number, max: number) =>
    int(key, o[key] ?? d[key], min, max);
  const r: ResolvedTcpOptions = {
    nodeId: validateNodeId(o.nodeId),
    clusterId: validateClusterId(o.clusterId),
    listen: o.listen,
    logger: o.logger ?? silentLogger,
    tls: o.tls,
    maxFrameBytes: opt("maxFrameBytes", 1024, 0xffffffff),
    maxQueueMessages: opt("maxQueueMessages", 1, 1e7),
    maxQueueBytes: opt("maxQueueBytes", 1024, 2 ** 40),
    maxWriteBytes: opt("maxWriteBytes", 1024, 2 ** 30),
    connectTimeoutMs: opt("connectTimeoutMs", 1, 600_000),
    handshakeTimeoutMs: opt("handshakeTimeoutMs", 1, 600_000),
    reconnectBackoffBaseMs: opt("reconnectBackoffBaseMs", 1, 600_000),
    reconnectBackoffMaxMs: opt("reconnectBackoffMaxMs", 1, 3_600_000),
    closeTimeoutMs: opt("closeTimeoutMs", 0, 600_000),
    maxOutstandingRequests: opt("maxOutstandingRequests", 1, 1e6),
    maxConcurrentHandlers: opt("maxConcurrentHandlers", 1, 1e6),
    maxInboundConnections: opt("maxInboundConnections", 1, 1e6),
    random: o.random ?? Math.random,
  };
  parseAddress(r.listen, "listen");
  if (r.reconnectBackoffBaseMs > r.reconnectBackoffMaxMs) {
    throw new ConfigError("reconnectBackoffBaseMs", "must not exceed reconnectBackoffMaxMs");
  }
  if (r.maxQueueBytes < r.maxFrameBytes) {
    // Otherwise a maximal frame could never be queued, so never be sent.
    throw new ConfigError("maxQueueBytes", `must be at least maxFrameBytes (${r.maxFrameBytes})`);
  }
  if (r.tls && (!r.tls.key || !r.tls.cert || !r.tls.ca)) {
    throw new ConfigError("tls", "key, cert and ca are all required");
  }
  return r;
}

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, "equal jitter". */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  // Half fixed, half random: spreads reconnect storms yet never retries at once.
  return Math.round(exp / 2 + (random() * exp) / 2);
}
