export * from "./errors.ts";
export type { RaftLogReader } from "./raft/storage.ts";
export * from "./raft/types.ts";
export * from "./storage/index.ts";
export * from "./transport/index.ts";
