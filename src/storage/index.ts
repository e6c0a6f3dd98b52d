export { crc32c } from "./crc32c.ts";
export { FileStorageEngine, type FileStorageOptions, type StorageLogger } from "./file/engine.ts";
export { FileStateMachine, type FileStateMachineOptions } from "./file-state-machine.ts";
export {
  decodeKvCommand,
  encodeKvCommand,
  type KvCommand,
  type KvResult,
  MAX_KEY_BYTES,
} from "./kv-command.ts";
export {
  DirKvLogStore,
  type DirKvLogStoreOptions,
  type KvBackend,
  KvLogStore,
  type KvLogStoreOptions,
  type KvOp,
} from "./kv-log-store.ts";
export { LmdbStorageEngine, type LmdbStorageOptions } from "./lmdb.ts";
export {
  AbstractLogStore,
  type CrashableLogStore,
  LOG_STORE_DEFAULTS,
  type LogStore,
  type LogStoreCapabilities,
  type LogStoreOptions,
  type RecoveredLog,
  type SnapshotDataSource,
  type WriteKind,
} from "./log-store.ts";
export { MemoryDisk, MemoryStorageEngine, type MemoryStorageOptions } from "./memory.ts";
export { RocksDbStorageEngine, type RocksDbStorageOptions } from "./rocksdb.ts";
export {
  FileSnapshotStore,
  type FileSnapshotStoreOptions,
  type SnapshotInfo,
  type SnapshotStore,
} from "./snapshot-store.ts";
export { AbstractStateMachine, type AppliedIndex, type StateMachine } from "./state-machine.ts";
