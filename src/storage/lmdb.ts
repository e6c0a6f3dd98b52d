/**
 * LmdbStorageEngine: the log in an LMDB environment (package `lmdb`). Point
 * reads are synchronous memory-mapped lookups; each `sync()` commits one write
 * transaction and waits until it is flushed to disk (`db.flushed`).
 */

import { open, type RootDatabase } from "lmdb";
import { DirKvLogStore, type DirKvLogStoreOptions, type KvBackend, type KvOp } from "./kv-log-store.ts";

export interface LmdbStorageOptions extends DirKvLogStoreOptions {
  /** LMDB map size: the largest the database may grow. Default 64 GiB (address space, not disk). */
  readonly mapSizeBytes?: number;
}

export class LmdbStorageEngine extends DirKvLogStore {
  private readonly mapSizeBytes: number;

  constructor(options: LmdbStorageOptions) {
    super("lmdb", options);
    this.mapSizeBytes = options.mapSizeBytes ?? 64 * 1024 * 1024 * 1024;
  }

  protected async openBackend(): Promise<KvBackend> {
    const lock = this.lockDir();
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
