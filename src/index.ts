export * from "./errors.ts";
// The runtime.
export { NodeBuilder } from "./node/builder.ts";
export { loadNodeConfig, NODE_CONFIG_SCHEMA, type NodeConfig, type NodeConfigInput } from "./node/config.ts";
export {
  type MemberStatus,
  type NodeEvents,
  type NodeStatus,
  RaftNode,
  type ReadConsistency,
} from "./node/raft-node.ts";
export { decodeConfChange, encodeConfChange } from "./raft/confchange-codec.ts";
// The pure core.
export { RAFT_DEFAULTS, type RaftConfig, type RaftLogger, type Rng } from "./raft/config.ts";
export { MemoryRaftLog } from "./raft/memory-log.ts";
export { type ProposalPosition, RawNode } from "./raft/raw-node.ts";
export type { ReadMode } from "./raft/reads.ts";
export type { RaftLogReader } from "./raft/storage.ts";
export * from "./raft/types.ts";
export * from "./storage/index.ts";
export * from "./transport/index.ts";
