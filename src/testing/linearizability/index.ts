export { check } from "./check.ts";
export {
  canonicalValue,
  checkKvHistory,
  type KvInput,
  type KvOutput,
  type KvState,
  type KvValue,
  kvModel,
  kvOperations,
} from "./kv.ts";
export type {
  CheckOptions,
  CheckResult,
  Counterexample,
  CounterexampleOperation,
  Model,
  Operation,
  OperationStatus,
  Partition,
  StepResult,
} from "./model.ts";
export { generateKvHistory, type KvWorkloadOptions } from "./workload.ts";
