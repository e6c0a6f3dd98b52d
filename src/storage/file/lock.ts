/**
 * One process per data directory. `LOCK` is created with O_EXCL and holds the
 * owner's pid; a lock whose pid is no longer alive (the owner was killed) is
 * stale and taken over. Node has no flock(2), so a recycled pid can make a
 * stale lock look held: the error names the pid, and deleting LOCK by hand is
 * the documented way out.
 */

import { closeSync, fstatSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { LockedError } from "../../errors.ts";

/** Directories locked by this process (a second open from the same process is refused too). */
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class DirLock {
  private released = false;
  private constructor(
    readonly dir: string,
    private readonly path: string,
  ) {}

  static acquire(dir: string): DirLock {
    const abs = resolve(dir);
    if (held.has(abs)) throw new LockedError(abs, `this process (pid ${process.pid})`);
    const path = join(abs, "LOCK");
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, "wx", 0o644);
        try {
          writeSync(fd, `${process.pid}\n`);
        } finally {
          closeSync(fd);
        }
        held.add(abs);
        return new DirLock(abs, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      let pid = Number.NaN;
      let ino = -1;
      try {
        const fd = openSync(path, "r");
        try {
          ino = fstatSync(fd).ino;
          pid = Number.parseInt(readFileSync(fd, "utf8").trim(), 10);
        } finally {
          closeSync(fd);
        }
      } catch {
        // Vanished between our open and read: retry.
        continue;
      }
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new LockedError(abs, `pid ${pid}`);
      }
      // Stale: the owner died without releasing it (e.g. SIGKILL), or it is garbage. Remove
      // it only if it is still the file we read: another process may have taken the stale
      // lock over meanwhile (with no flock(2) in Node, a window of a few microseconds stays).
      try {
        if (statSync(path).ino === ino) unlinkSync(path);
      } catch {
        // Another process took it over first; the retry will tell.
      }
    }
    throw new LockedError(abs, "a process racing for the lock");
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this.dir);
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone: nothing to release.
    }
  }
}
