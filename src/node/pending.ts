/**
 * Requests waiting on the Raft log: proposals (until their entry is applied)
 * and reads (until their ReadIndex is confirmed and applied). Both are
 * bounded: beyond the limit, new requests fail fast with
 * ResourceExhaustedError instead of growing memory.
 */

import {
  ProposalDroppedError,
  ReadDroppedError,
  ResourceExhaustedError,
  StoppedError,
  TimeoutError,
} from "../errors.ts";
import type { DropReason } from "../raft/types.ts";

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout | undefined;
}

export class PendingProposals<T> {
  /** By log index: the term the entry was proposed in, and who waits for it. */
  private readonly byIndex = new Map<number, Waiter<T> & { term: number }>();
  private readonly max: number;
  private readonly timeoutMs: number;

  constructor(max: number, timeoutMs: number) {
    this.max = max;
    this.timeoutMs = timeoutMs;
  }

  get size(): number {
    return this.byIndex.size;
  }

  checkRoom(n = 1): void {
    if (this.byIndex.size + n > this.max) throw new ResourceExhaustedError("pending proposals", this.max);
  }

  wait(index: number, term: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.byIndex.get(index)?.term === term) {
          this.byIndex.delete(index);
          reject(new TimeoutError(`proposal at index ${index}`, this.timeoutMs));
        }
      }, this.timeoutMs);
      timer.unref?.();
      this.byIndex.set(index, { term, resolve, reject, timer });
    });
  }

  /** An entry was applied: its waiter learns the result, or that its proposal was replaced. */
  applied(index: number, term: number, result: () => T): void {
    const w = this.byIndex.get(index);
    if (!w) return;
    this.byIndex.delete(index);
    clearTimeout(w.timer);
    // Another leader's entry took this index: our proposal is gone for good.
    if (w.term !== term)
      w.reject(new ProposalDroppedError("stepped-down", `index ${index} committed in term ${term}`));
    else w.resolve(result());
  }

  /** A snapshot was installed up to `index`: proposals at or below it can no longer be matched. */
  supersededUpTo(index: number): void {
    for (const [i, w] of this.byIndex) {
      if (i > index) continue;
      this.byIndex.delete(i);
      clearTimeout(w.timer);
      w.reject(
        new ProposalDroppedError("stepped-down", `index ${i} was covered by a snapshot; outcome unknown`),
      );
    }
  }

  failAll(e: Error): void {
    for (const w of this.byIndex.values()) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    this.byIndex.clear();
  }
}

export interface PendingRead<T> {
  readonly run: () => T | Promise<T>;
  /** Set once the leader confirmed it: serve when applied reaches it. */
  index: number;
}

export class PendingReads<T> {
  private readonly byCtx = new Map<string, PendingRead<T> & Waiter<T>>();
  private readonly max: number;
  private readonly timeoutMs: number;
  private seq = 0;
  private readonly prefix: string;

  constructor(max: number, timeoutMs: number, nodeId: number) {
    this.max = max;
    this.timeoutMs = timeoutMs;
    // ctx must be unique across restarts too (a forwarded read may outlive us): add a random-ish start.
    this.prefix = `${nodeId}:${process.pid}:${Date.now().toString(36)}:`;
  }

  get size(): number {
    return this.byCtx.size;
  }

  /** Registers a read; returns its ctx and the promise of its result. */
  add(run: () => T | Promise<T>): { ctx: string; promise: Promise<T> } {
    if (this.byCtx.size >= this.max) throw new ResourceExhaustedError("pending reads", this.max);
    const ctx = this.prefix + (++this.seq).toString(36);
    const promise = new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.byCtx.delete(ctx)) reject(new TimeoutError("read", this.timeoutMs));
      }, this.timeoutMs);
      timer.unref?.();
      this.byCtx.set(ctx, { run, index: -1, resolve, reject, timer });
    });
    return { ctx, promise };
  }

  confirmed(ctx: string, index: number): void {
    const r = this.byCtx.get(ctx);
    if (r) r.index = index;
  }

  dropped(ctx: string, reason: DropReason): void {
    this.fail(ctx, new ReadDroppedError(reason));
  }

  fail(ctx: string, e: Error): void {
    const r = this.byCtx.get(ctx);
    if (!r) return;
    this.byCtx.delete(ctx);
    clearTimeout(r.timer);
    r.reject(e);
  }

  /** Serves every confirmed read whose index is applied. */
  serve(applied: number): void {
    for (const [ctx, r] of this.byCtx) {
      if (r.index < 0 || r.index > applied) continue;
      this.byCtx.delete(ctx);
      clearTimeout(r.timer);
      Promise.resolve().then(r.run).then(r.resolve, r.reject);
    }
  }

  failAll(e: Error = new StoppedError()): void {
    for (const r of this.byCtx.values()) {
      clearTimeout(r.timer);
      r.reject(e);
    }
    this.byCtx.clear();
  }
}
