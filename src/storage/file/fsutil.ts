import { constants, promises as fsp } from "node:fs";
import { basename, dirname, join } from "node:path";
import { StorageError } from "../../errors.ts";

/** Makes a directory entry change (create, rename, unlink) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `path` so that after a crash at any instant it holds either the old
 * or the new content, never a mix: temp file → fsync → rename → fsync dir.
 */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fh = await fsp.open(tmp, "w");
    try {
      await fh.writeFile(data);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw wrapIoError(`writing ${path}`, err);
  }
}

/** Wraps a Node system error in a StorageError that says what we were doing. */
export function wrapIoError(what: string, err: unknown): Error {
  if (err instanceof StorageError || !(err instanceof Error)) return err as Error;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === undefined) return err;
  const hint = code === "ENOSPC" ? " (disk full)" : code === "EDQUOT" ? " (quota exceeded)" : "";
  return new StorageError(`${what} failed: ${code}${hint}`, { cause: err });
}

/** The errno code carried by a (possibly wrapped) error. */
export function errnoOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined && !code.startsWith("TSRAFT_")) return code;
    e = e.cause;
  }
  return undefined;
}
