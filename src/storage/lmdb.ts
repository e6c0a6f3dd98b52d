/**
 * LmdbStorageEngine: the log in an LMDB environment (package `lmdb`). Point
 * reads are synchronous memory-mapped lookups; each `sync()` commits one write
 * transaction and waits until it is flushed to disk (`db.flushed`).
 */

import { mkdirSync } from "node:fs";
import { open, type RootDatabase } from "lmdb";
import { ConfigError } from "../errors.ts";
import { DirLock } from "./file/lock.ts";
import { type KvBackend, KvLogStore, type KvLogStoreOptions, type KvOp } from "./kv-log-store.ts";
import type { LogStoreCapabilities } from "./log-store.ts";

export interface LmdbStorageOptions extends KvLogStoreOptions {
  /** The directory holding the LMDB environment (created if missing). */
  readonly dir: string;
  /** LMDB map size: the largest the database may grow. Default 64 GiB (address space, not disk). */
  readonly mapSizeBytes?: number;
}

export class LmdbStorageEngine extends KvLogStore {
  readonly capabilities: LogStoreCapabilities;
  readonly dir: string;
  private readonly mapSizeBytes: number;

  constructor(options: LmdbStorageOptions) {
    super(options);
    if (typeof options.dir !== "string" || options.dir === "") throw new ConfigError("dir", "must be a path");
    this.dir = options.dir;
    this.mapSizeBytes = options.mapSizeBytes ?? 64 * 1024 * 1024 * 1024;
    this.capabilities = Object.freeze({
      backend: "lmdb",
      persistent: true,
      durableSync: true,
      crashSimulation: false,
      maxEntryBytes: this.maxEntryBytes,
    });
  }

  protected async openBackend(): Promise<KvBackend> {
    mkdirSync(this.dir, { recursive: true });
    // LMDB itself allows many processes; a Raft log must have one writer.
    const lock = DirLock.acquire(this.dir);
    let db: RootDatabase<Buffer, Buffer>;
    try {
      db = open<Buffer, Buffer>({
        path: this.dir,
        keyEncoding: "binary",
        encoding: "binary",
        mapSize: this.mapSizeBytes,
        noSync: false,
        // Entries are read through our own tail cache; LMDB's would duplicate it.
        cache: false,
      });
    } catch (err) {
      lock.release();
      throw err;
    }
    return {
      getSync: (key) => db.getBinary(key) ?? undefined,
      write: async (ops: readonly KvOp[]) => {
        if (ops.length > 0) {
          await db.transaction(() => {
            for (const op of ops) {
              if (op.type === "put")
                db.put(op.key, Buffer.from(op.value.buffer, op.value.byteOffset, op.value.byteLength));
              else db.remove(op.key);
            }
          });
        }
        await db.flushed;
      },
      close: async () => {
        try {
          await db.close();
        } finally {
          lock.release();
        }
      },
    };
  }
}
