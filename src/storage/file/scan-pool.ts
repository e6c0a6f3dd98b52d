/**
 * Worker threads that run the recovery scan (scan.mjs) of sealed segments in
 * parallel, so a restart is bounded by the cores, not by one thread's CRC
 * rate. Every record is still checked: the work moves, it is not skipped.
 *
 * If a worker cannot start or dies, its segments are scanned on the calling
 * thread instead (the caller sees {@link ScanPoolUnavailable}).
 */

import { Worker } from "node:worker_threads";
import type { SegmentScan } from "./scan.mjs";

/** The pool could not scan the segment; scan it in-thread instead. */
export class ScanPoolUnavailable extends Error {}

interface Job {
  readonly id: number;
  readonly fd: number;
  readonly fileSize: number;
  resolve(s: SegmentScan): void;
  reject(err: unknown): void;
}

interface Reply {
  readonly id: number;
  readonly scan?: SegmentScan;
  readonly error?: string;
}

export class ScanPool {
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, Job>();
  private readonly waiting: Job[] = [];
  private nextId = 0;
  private broken: Error | null = null;
  private readonly all: Worker[] = [];

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      let w: Worker;
      try {
        w = new Worker(new URL("./scan.mjs", import.meta.url));
      } catch (err) {
        this.fail(err);
        return;
      }
      w.unref();
      w.on("message", (m: Reply) => this.onReply(w, m));
      w.on("error", (err) => this.fail(err));
      w.on("exit", () => this.fail(new Error("scan worker exited")));
      this.all.push(w);
      this.idle.push(w);
    }
  }

  /** The scan of `[0, fileSize)` of the open file `fd` (the fd is shared with the worker). */
  scan(fd: number, fileSize: number): Promise<SegmentScan> {
    if (this.broken) return Promise.reject(new ScanPoolUnavailable(String(this.broken)));
    return new Promise((resolve, reject) => {
      this.waiting.push({ id: this.nextId++, fd, fileSize, resolve, reject });
      this.dispatch();
    });
  }

  /** Stops every worker; resolves once none can touch a file any more. */
  async close(): Promise<void> {
    this.broken ??= new Error("scan pool closed");
    const ws = this.all.splice(0);
    await Promise.all(ws.map((w) => w.terminate().catch(() => undefined)));
    this.rejectAll();
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.waiting.length > 0) {
      const w = this.idle.pop()!;
      const job = this.waiting.shift()!;
      this.busy.set(w, job);
      w.postMessage({ id: job.id, fd: job.fd, fileSize: job.fileSize });
    }
  }

  private onReply(w: Worker, m: Reply): void {
    const job = this.busy.get(w);
    this.busy.delete(w);
    this.idle.push(w);
    if (job !== undefined && job.id === m.id) {
      if (m.scan !== undefined) job.resolve(m.scan);
      else job.reject(new ScanPoolUnavailable(m.error ?? "scan worker failed"));
    }
    this.dispatch();
  }

  private fail(err: unknown): void {
    this.broken ??= err instanceof Error ? err : new Error(String(err));
    this.rejectAll();
  }

  private rejectAll(): void {
    const e = new ScanPoolUnavailable(String(this.broken));
    for (const job of this.busy.values()) job.reject(e);
    this.busy.clear();
    for (const job of this.waiting.splice(0)) job.reject(e);
  }
}
