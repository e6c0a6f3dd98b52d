// The public testing toolkit (`tsraft/testing`). Other modules append their exports here.
export * from "./history.ts";
export * from "./linearizability/index.ts";
export { LocalCluster, type LocalNode, type NodeOptions } from "./local-cluster.ts";
export { Prng } from "./prng.ts";
export * from "./sim/index.ts";
export * from "./storage-suite.ts";
