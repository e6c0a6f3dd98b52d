/**
 * RocksDbStorageEngine: the log in RocksDB (package `@nxtedition/rocksdb`).
 * Its `put` ignores `sync`, so every write goes through `batch(ops, { sync:
 * true })`: one synced WAL write per `sync()`, shared by every append before
 * it. Point reads use the binding's synchronous multi-get. The binding has no
 * asynchronous write: a batch and its fdatasync run on the event loop.
 */

import { createRequire } from "node:module";
import { StorageError } from "../errors.ts";
import { DirKvLogStore, type DirKvLogStoreOptions, type KvBackend, type KvOp } from "./kv-log-store.ts";

export type RocksDbStorageOptions = DirKvLogStoreOptions;

/** The parts of the binding we use (it ships without TypeScript types). */
interface RocksHandle {
  open(): Promise<void>;
  close(): Promise<void>;
  batch(
    ops: { type: "put" | "del"; key: Buffer; value?: Buffer }[],
    options: { sync: boolean },
  ): Promise<void>;
  _getManySync(keys: Buffer[], options: object): (Buffer | undefined | null)[];
}

// The package is CommonJS without type declarations.
const { RocksLevel } = createRequire(import.meta.url)("@nxtedition/rocksdb") as {
  RocksLevel: new (dir: string, options: object) => RocksHandle;
};

export class RocksDbStorageEngine extends DirKvLogStore {
  constructor(options: RocksDbStorageOptions) {
    super("rocksdb", options);
  }

  protected async openBackend(): Promise<KvBackend> {
    const lock = this.lockDir();
    const db = new RocksLevel(this.dir, {
      keyEncoding: "buffer",
      valueEncoding: "buffer",
    });
    try {
      await db.open();
      if (typeof db._getManySync !== "function") {
        throw new StorageError("this @nxtedition/rocksdb build has no synchronous reads (_getManySync)");
      }
    } catch (err) {
      lock.release();
      throw err;
    }
    return {
      getSync: (key) => db._getManySync([key], {})[0] ?? undefined,
      write: async (ops: readonly KvOp[]) => {
        if (ops.length === 0) return;
        await db.batch(
          ops.map((op) =>
            op.type === "put"
              ? {
                  type: "put",
                  key: op.key,
                  value: Buffer.from(op.value.buffer, op.value.byteOffset, op.value.byteLength),
                }
              : { type: "del", key: op.key },
          ),
          { sync: true },
        );
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
