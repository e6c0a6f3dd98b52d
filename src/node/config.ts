/**
 * A node's configuration: one schema with defaults, loaded from a file (TOML
 * or JSON), `TSRAFT_*` environment variables and explicit overrides, in that
 * order, and validated up front — including combinations that would be
 * unsafe (a lease that could outlive an election timeout).
 */

import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseToml } from "smol-toml";
import { ConfigError } from "../errors.ts";
import { MAX_TIMER_MS } from "../transport/rpc.ts";
import { checkAddress, defaultsOf, fromEnv, merge, type Schema, validate } from "./config-schema.ts";

export const NODE_CONFIG_SCHEMA = {
  nodeId: { type: "int", min: 1, doc: "this node's id (a positive integer, unique in the cluster)" },
  clusterId: { type: "string", default: "tsraft", doc: "peers with another cluster id are refused" },
  listen: { type: "string", default: "127.0.0.1:0", doc: "host:port for peer traffic (port 0 picks one)" },
  advertise: { type: "string", default: "", doc: "host:port peers dial (default: the listen address)" },
  dataDir: {
    type: "string",
    default: "",
    doc: "where the log and snapshots live (required for file storage)",
  },
  initialCluster: {
    type: "peers",
    default: {},
    doc: "the founding members, id=host:port,... (including this node); empty when joining",
  },
  join: {
    type: "peers",
    default: {},
    doc: "existing members to join through, id=host:port,... (the node starts as a learner)",
  },
  raft: {
    tickMs: { type: "int", default: 100, min: 1, max: 60_000, doc: "one logical tick" },
    electionTicks: { type: "int", default: 10, min: 2, max: 10_000, doc: "election timeout in ticks" },
    heartbeatTicks: { type: "int", default: 1, min: 1, max: 10_000, doc: "heartbeat interval in ticks" },
    preVote: { type: "bool", default: true, doc: "pre-vote before campaigning" },
    checkQuorum: { type: "bool", default: true, doc: "a leader without a quorum steps down" },
    leaseTicks: {
      type: "int",
      default: 0,
      min: 0,
      doc: "leader lease for lease reads, in ticks (0 = off; at most electionTicks - 2)",
    },
    maxSizePerMsgBytes: {
      type: "int",
      default: 1024 * 1024,
      min: 1,
      // With one entry of limits.maxCommandBytes over it, an append still fits the 16 MiB peer frame.
      max: 8 * 1024 * 1024,
      doc: "entry bytes per append message, each entry counted with 24 bytes of encoding (one larger entry still goes alone)",
    },
    maxInflightMsgs: {
      type: "int",
      default: 256,
      min: 1,
      max: 65_536,
      doc: "append messages in flight per peer",
    },
    maxInflightBytes: {
      type: "int",
      default: 32 * 1024 * 1024,
      min: 0,
      doc: "entry bytes in flight per peer (0 = no limit)",
    },
    maxUncommittedBytes: {
      type: "int",
      default: 64 * 1024 * 1024,
      min: 1,
      doc: "uncommitted entry bytes on the leader",
    },
    asyncStorageWrites: {
      type: "bool",
      default: true,
      doc: "overlap log writes with replication and apply (messages still wait for their fsync; committed entries apply before the local fsync)",
    },
    deferCommitBroadcast: {
      type: "bool",
      default: true,
      doc: "tell followers of a new commit index with the appends of the proposals that applying brings (at most one Ready later)",
    },
  },
  snapshot: {
    policy: {
      type: "enum",
      values: ["entries", "bytes", "interval", "disabled"],
      default: "entries",
      doc: "when to snapshot: every N entries, every N log bytes, every N ms, or never (on demand only)",
    },
    entries: {
      type: "int",
      default: 10_000,
      min: 1,
      doc: "entries applied since the last snapshot (policy=entries)",
    },
    logBytes: {
      type: "int",
      default: 64 * 1024 * 1024,
      min: 1,
      doc: "log bytes since the last snapshot (policy=bytes)",
    },
    intervalMs: {
      type: "int",
      default: 60_000,
      min: 1,
      max: MAX_TIMER_MS,
      doc: "time from the end of one snapshot to the start of the next (policy=interval)",
    },
    keepTailEntries: { type: "int", default: 1000, min: 0, doc: "entries kept in the log behind a snapshot" },
    chunkBytes: {
      type: "int",
      default: 1024 * 1024,
      min: 1024,
      // A chunk and its header fit the 16 MiB peer frame.
      max: 8 * 1024 * 1024,
      doc: "snapshot transfer chunk",
    },
    bandwidthBytesPerSec: { type: "int", default: 0, min: 0, doc: "snapshot transfer limit (0 = unlimited)" },
    keep: { type: "int", default: 2, min: 1, max: 100, doc: "snapshots kept on disk" },
  },
  membership: {
    autoPromote: { type: "bool", default: true, doc: "promote caught-up learners to voters automatically" },
    promoteWithinEntries: {
      type: "int",
      default: 100,
      min: 0,
      doc: "a learner this close to the commit index ...",
    },
    promoteAfterMs: {
      type: "int",
      default: 1000,
      min: 0,
      max: MAX_TIMER_MS,
      doc: "... for this long is promoted",
    },
  },
  limits: {
    maxPendingProposals: {
      type: "int",
      default: 10_000,
      min: 1,
      doc: "proposals waiting to apply; beyond, fail fast",
    },
    maxPendingReads: { type: "int", default: 10_000, min: 1, doc: "reads waiting; beyond, fail fast" },
    maxCommandBytes: {
      type: "int",
      // etcd's default request limit (--max-request-bytes).
      default: 1536 * 1024,
      min: 1,
      // An append carrying it (with up to raft.maxSizePerMsgBytes of others) fits the 16 MiB peer frame.
      max: 8 * 1024 * 1024,
      doc: "largest command propose() accepts; larger ones fail with InvalidArgumentError",
    },
    proposalTimeoutMs: {
      type: "int",
      default: 10_000,
      min: 1,
      max: MAX_TIMER_MS,
      doc: "a proposal (a write or a membership change) not applied by then fails with TimeoutError",
    },
    readyTimeoutMs: {
      type: "int",
      default: 30_000,
      min: 1,
      max: MAX_TIMER_MS,
      doc: "node.ready() rejects after this long without a leader",
    },
    shutdownTimeoutMs: {
      type: "int",
      default: 5_000,
      min: 1,
      max: MAX_TIMER_MS,
      doc: "graceful shutdown bound (leader transfer, flush)",
    },
  },
  tls: {
    cert: { type: "string", default: "", doc: "PEM certificate file for peer mTLS (empty = plain TCP)" },
    key: { type: "string", default: "", doc: "PEM private key file for peer mTLS" },
    ca: { type: "string", default: "", doc: "PEM CA file peers' certificates must chain to" },
  },
} as const satisfies Schema;

export interface NodeConfig {
  readonly nodeId: number;
  readonly clusterId: string;
  readonly listen: string;
  readonly advertise: string;
  readonly dataDir: string;
  readonly initialCluster: Readonly<Record<string, string>>;
  readonly join: Readonly<Record<string, string>>;
  readonly raft: {
    readonly tickMs: number;
    readonly electionTicks: number;
    readonly heartbeatTicks: number;
    readonly preVote: boolean;
    readonly checkQuorum: boolean;
    readonly leaseTicks: number;
    readonly maxSizePerMsgBytes: number;
    readonly maxInflightMsgs: number;
    readonly maxInflightBytes: number;
    readonly maxUncommittedBytes: number;
    readonly asyncStorageWrites: boolean;
    readonly deferCommitBroadcast: boolean;
  };
  readonly snapshot: {
    readonly policy: "entries" | "bytes" | "interval" | "disabled";
    readonly entries: number;
    readonly logBytes: number;
    readonly intervalMs: number;
    readonly keepTailEntries: number;
    readonly chunkBytes: number;
    readonly bandwidthBytesPerSec: number;
    readonly keep: number;
  };
  readonly membership: {
    readonly autoPromote: boolean;
    readonly promoteWithinEntries: number;
    readonly promoteAfterMs: number;
  };
  readonly limits: {
    readonly maxPendingProposals: number;
    readonly maxPendingReads: number;
    readonly maxCommandBytes: number;
    readonly proposalTimeoutMs: number;
    readonly readyTimeoutMs: number;
    readonly shutdownTimeoutMs: number;
  };
  readonly tls: { readonly cert: string; readonly key: string; readonly ca: string };
}

/** A partial config as a user writes it (any subset of keys, nested). */
export type NodeConfigInput = {
  readonly [K in keyof NodeConfig]?: NodeConfig[K] extends object
    ? NodeConfig[K] extends readonly unknown[]
      ? NodeConfig[K]
      : Partial<NodeConfig[K]> | (K extends "initialCluster" | "join" ? string : never)
    : NodeConfig[K];
};

/** Reads a TOML (`.toml`) or JSON file into a partial config. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError("(file)", `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const parsed: unknown = extname(path).toLowerCase() === ".toml" ? parseToml(text) : JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new Error("the top level must be a table/object");
    }
    return parsed as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError("(file)", `cannot parse ${path}: ${(e as Error).message}`);
  }
}

export interface LoadConfigOptions {
  readonly file?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly overrides?: NodeConfigInput;
}

/** Layers one partial config over another as loading does: sections merge, fields (a peer map too) replace. */
export function mergeNodeConfig(base: NodeConfigInput, over: NodeConfigInput): NodeConfigInput {
  return merge(base as Record<string, unknown>, over as Record<string, unknown>, NODE_CONFIG_SCHEMA);
}

/** defaults → file → environment → overrides, then validation. */
export function loadNodeConfig(opts: LoadConfigOptions = {}): NodeConfig {
  let merged = defaultsOf(NODE_CONFIG_SCHEMA);
  if (opts.file !== undefined) merged = merge(merged, readConfigFile(opts.file), NODE_CONFIG_SCHEMA);
  if (opts.env) merged = merge(merged, fromEnv(NODE_CONFIG_SCHEMA, opts.env), NODE_CONFIG_SCHEMA);
  if (opts.overrides) merged = merge(merged, opts.overrides as Record<string, unknown>, NODE_CONFIG_SCHEMA);
  const cfg = validate<NodeConfig>(NODE_CONFIG_SCHEMA, merged);
  checkCombinations(cfg);
  return cfg;
}

function checkCombinations(c: NodeConfig): void {
  if (c.nodeId === undefined) throw new ConfigError("nodeId", "is required");
  const r = c.raft;
  if (r.electionTicks <= r.heartbeatTicks) {
    throw new ConfigError(
      "raft.electionTicks",
      `must be greater than raft.heartbeatTicks (${r.heartbeatTicks})`,
    );
  }
  if (r.leaseTicks > 0) {
    if (!r.checkQuorum)
      throw new ConfigError("raft.leaseTicks", "lease reads require raft.checkQuorum = true");
    if (r.leaseTicks > r.electionTicks - 2) {
      throw new ConfigError(
        "raft.leaseTicks",
        `must be at most raft.electionTicks - 2 (${r.electionTicks - 2}): a follower ignores votes for only electionTicks - 1 ticks after hearing the leader, and a lease needs a tick of margin for clock drift`,
      );
    }
  }
  // A first election waits up to two election timeouts (randomized in [1, 2)) before it
  // even starts: a shorter wait for readiness fails every fresh start.
  const longestElectionMs = 2 * r.electionTicks * r.tickMs;
  if (c.limits.readyTimeoutMs < longestElectionMs) {
    throw new ConfigError(
      "limits.readyTimeoutMs",
      `must be at least 2 × raft.electionTicks × raft.tickMs (${longestElectionMs} ms), the longest a first election waits to start, got ${c.limits.readyTimeoutMs}`,
    );
  }
  if (r.maxInflightBytes > 0 && r.maxInflightBytes < r.maxSizePerMsgBytes) {
    throw new ConfigError("raft.maxInflightBytes", "must be 0 or at least raft.maxSizePerMsgBytes");
  }
  const members = Object.keys(c.initialCluster);
  if (members.length > 0 && Object.keys(c.join).length > 0) {
    throw new ConfigError(
      "join",
      "a node either founds a cluster (initialCluster) or joins one (join), not both",
    );
  }
  if (Object.hasOwn(c.join, String(c.nodeId))) {
    throw new ConfigError("join", `lists this node (${c.nodeId}): join through the existing members`);
  }
  if (members.length > 0 && !members.includes(String(c.nodeId))) {
    throw new ConfigError("initialCluster", `must include this node (${c.nodeId})`);
  }
  checkAddress(c.listen, "listen", 0);
  if (c.advertise) checkAddress(c.advertise, "advertise", 1);
  const bw = c.snapshot.bandwidthBytesPerSec;
  if (bw > 0 && bw < 1024) {
    // Slower, one chunk would take longer than a timer can wait.
    throw new ConfigError(
      "snapshot.bandwidthBytesPerSec",
      `must be 0 (unlimited) or at least 1024, got ${bw}`,
    );
  }
  const tlsSet = [c.tls.cert, c.tls.key, c.tls.ca].filter((v) => v !== "").length;
  if (tlsSet !== 0 && tlsSet !== 3)
    throw new ConfigError("tls", "peer TLS is mutual: set tls.cert, tls.key and tls.ca together");
}
