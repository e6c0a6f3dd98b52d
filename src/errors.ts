/**
 * The one catalogue of tsraft's errors. Every error is a class with a stable
 * `code` (like undici's `UND_ERR_*`), so callers can branch on `err.code`
 * without parsing messages.
 */

import type { DropReason, NodeId } from "./raft/types.ts";

export class TsraftError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A configuration value is missing, of the wrong type, out of range or unsafe. */
export class ConfigError extends TsraftError {
  readonly key: string;
  constructor(key: string, reason: string) {
    super("TSRAFT_ERR_CONFIG", `invalid config "${key}": ${reason}`);
    this.key = key;
  }
}

/** A request that only the leader can serve reached a node that is not the leader. */
export class NotLeaderError extends TsraftError {
  /** The leader this node knows of (0 when none is known). */
  readonly leaderId: NodeId;
  /** The leader's address, when the runtime knows it. */
  readonly leaderAddress: string | undefined;
  constructor(leaderId: NodeId, leaderAddress?: string) {
    super(
      "TSRAFT_ERR_NOT_LEADER",
      leaderId === 0
        ? "not the leader, and no leader is known"
        : `not the leader; the leader is node ${leaderId}${leaderAddress ? ` at ${leaderAddress}` : ""}`,
    );
    this.leaderId = leaderId;
    this.leaderAddress = leaderAddress;
  }
}

/** A proposal (or membership change) was not accepted, or was abandoned before it committed. */
export class ProposalDroppedError extends TsraftError {
  readonly reason: DropReason;
  constructor(reason: DropReason, detail?: string) {
    super("TSRAFT_ERR_PROPOSAL_DROPPED", `proposal dropped: ${reason}${detail ? ` (${detail})` : ""}`);
    this.reason = reason;
  }
}

/** A read could not be served at the requested consistency. */
export class ReadDroppedError extends TsraftError {
  readonly reason: DropReason;
  constructor(reason: DropReason, detail?: string) {
    super("TSRAFT_ERR_READ_DROPPED", `read dropped: ${reason}${detail ? ` (${detail})` : ""}`);
    this.reason = reason;
  }
}

/** A membership change is malformed or not allowed in the current configuration. */
export class ConfChangeError extends TsraftError {
  constructor(message: string) {
    super("TSRAFT_ERR_CONF_CHANGE", message);
  }
}

/** An argument is out of range or malformed. */
export class InvalidArgumentError extends TsraftError {
  constructor(message: string) {
    super("TSRAFT_ERR_INVALID_ARGUMENT", message);
  }
}

/** The requested log index is older than the compaction point. */
export class CompactedError extends TsraftError {
  readonly index: number;
  constructor(index: number, firstIndex: number) {
    super("TSRAFT_ERR_COMPACTED", `log index ${index} is compacted (first index is ${firstIndex})`);
    this.index = index;
  }
}

/** The requested log index is beyond the end of the log. */
export class UnavailableError extends TsraftError {
  readonly index: number;
  constructor(index: number, lastIndex: number) {
    super("TSRAFT_ERR_UNAVAILABLE", `log index ${index} is unavailable (last index is ${lastIndex})`);
    this.index = index;
  }
}

/** A snapshot is being created; try again later. */
export class SnapshotTemporarilyUnavailableError extends TsraftError {
  constructor() {
    super("TSRAFT_ERR_SNAPSHOT_UNAVAILABLE", "snapshot is temporarily unavailable");
  }
}

/** Stored data failed an integrity check. Never silently skipped. */
export class CorruptionError extends TsraftError {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, detail: string) {
    super("TSRAFT_ERR_CORRUPTION", `corrupt data in ${file} at offset ${offset}: ${detail}`);
    this.file = file;
    this.offset = offset;
  }
}

/** A storage operation failed (disk full, I/O error, closed store, ...). */
export class StorageError extends TsraftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("TSRAFT_ERR_STORAGE", message, options);
  }
}

/** The data directory is already in use by another process. */
export class LockedError extends TsraftError {
  readonly path: string;
  constructor(path: string, holder?: string) {
    super("TSRAFT_ERR_LOCKED", `data directory ${path} is locked${holder ? ` by ${holder}` : ""}`);
    this.path = path;
  }
}

/** A bounded queue is full: the caller should back off and retry. */
export class ResourceExhaustedError extends TsraftError {
  constructor(what: string, limit: number) {
    super("TSRAFT_ERR_RESOURCE_EXHAUSTED", `${what} is full (limit ${limit})`);
  }
}

/** An operation did not complete in time. */
export class TimeoutError extends TsraftError {
  constructor(what: string, timeoutMs: number) {
    super("TSRAFT_ERR_TIMEOUT", `${what} timed out after ${timeoutMs} ms`);
  }
}

/** A peer sent bytes that are not a valid frame or message. */
export class ProtocolError extends TsraftError {
  constructor(message: string) {
    super("TSRAFT_ERR_PROTOCOL", message);
  }
}

/** A peer connection was refused at the handshake (cluster id, node id or protocol version). */
export class HandshakeError extends TsraftError {
  constructor(message: string) {
    super("TSRAFT_ERR_HANDSHAKE", message);
  }
}

/** The node or component was stopped. */
export class StoppedError extends TsraftError {
  constructor(what = "node") {
    super("TSRAFT_ERR_STOPPED", `${what} is stopped`);
  }
}

/** An internal invariant does not hold: a bug, never a user error. */
export class InvariantError extends TsraftError {
  constructor(message: string) {
    super("TSRAFT_ERR_INVARIANT", `invariant violated: ${message}`);
  }
}

/** Asserts an internal invariant (TigerBeetle style: assertions stay on in production). */
export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === "function" ? message() : message);
}

/** A peer could not be reached (not connected, connection lost, or refused at the handshake). */
export class PeerUnreachableError extends TsraftError {
  readonly peer: NodeId;
  constructor(peer: NodeId, reason: string) {
    super("TSRAFT_ERR_PEER_UNREACHABLE", `peer ${peer} is unreachable: ${reason}`);
    this.peer = peer;
  }
}

/**
 * A remote procedure failed on the peer. `code` is the remote error's own code
 * (e.g. `TSRAFT_ERR_NOT_LEADER`), so callers branch on it as if it were local.
 */
export class RemoteError extends TsraftError {
  readonly peer: NodeId;
  readonly method: string;
  constructor(peer: NodeId, method: string, code: string, message: string) {
    super(code, `${method} on peer ${peer} failed: ${message}`);
    this.peer = peer;
    this.method = method;
  }
}

/** A recorded history (JSON lines) is malformed. */
export class HistoryFormatError extends TsraftError {
  /** 1-based line number in the input, or 0 when not tied to a line. */
  readonly line: number;
  constructor(line: number, reason: string) {
    super("TSRAFT_ERR_HISTORY_FORMAT", line > 0 ? `history line ${line}: ${reason}` : `history: ${reason}`);
    this.line = line;
  }
}
