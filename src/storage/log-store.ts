/**
 * The LogStore contract (log-store-contract.ts) and the base class every
 * backend extends (abstract-log-store.ts), under one import path.
 */

export { AbstractLogStore } from "./abstract-log-store.ts";
export * from "./log-store-contract.ts";
