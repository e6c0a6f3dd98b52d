/**
 * Requests waiting on the Raft log: proposals (until their entry is applied)
 * and reads (until their ReadIndex is confirmed and applied). Both are
 * bounded: beyond the limit, new requests fail fast with
 * ResourceExhaustedError instead of growing memory. Timeouts are deadlines
 * swept on each tick (one timer per request costs too much at 50,000/s);
 * requests are kept in arrival order, which is deadline order, so a sweep
 * stops at the first request still in time.
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
  readonly deadlineMs: number;
}

interface ProposalWaiter<T> extends Waiter<T> {
  readonly index: number;
  /** The term the entry was proposed in. */
  readonly term: number;
}

/**
 * Proposals in log-index order (a deque): a leader proposes at increasing
 * indexes and entries apply in index order, so answering, expiring and
 * superseding all work at the ends, with no map to churn at 100,000
 * proposals/s.
 */
export class PendingProposals<T> {
  private queue: ProposalWaiter<T>[] = [];
  private head = 0;
  private readonly max: number;
  private readonly timeoutMs: number;

  constructor(max: number, timeoutMs: number) {
    this.max = max;
    this.timeoutMs = timeoutMs;
  }

  get size(): number {
    return this.queue.length - this.head;
  }

  checkRoom(n = 1): void {
    if (this.size + n > this.max) throw new ResourceExhaustedError("pending proposals", this.max);
  }

  wait(index: number, term: number): Promise<T> {
    // A proposal at or below one still waiting: this node lost leadership, its
    // log was cut back, and it leads again. The entries those waited for are
    // not in this leader's log, so they were not committed and never will be.
    while (this.size > 0 && this.queue[this.queue.length - 1]!.index >= index) {
      const w = this.queue.pop()!;
      w.reject(new ProposalDroppedError("stepped-down", `index ${w.index} was replaced in term ${term}`));
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ index, term, resolve, reject, deadlineMs: performance.now() + this.timeoutMs });
    });
  }

  /** An entry was applied: its waiter learns the result, or that its proposal was replaced. */
  applied(index: number, term: number, result: T): void {
    let w = this.peek();
    // Entries apply in order, so a waiter below `index` cannot still be answered.
    while (w && w.index < index) {
      this.shift();
      w.reject(new ProposalDroppedError("stepped-down", `index ${w.index} was passed by the applied index`));
      w = this.peek();
    }
    if (!w || w.index !== index) return;
    this.shift();
    // Another leader's entry took this index: our proposal is gone for good.
    if (w.term !== term)
      w.reject(new ProposalDroppedError("stepped-down", `index ${index} committed in term ${term}`));
    else w.resolve(result);
  }

  /** A snapshot was installed up to `index`: proposals at or below it can no longer be matched. */
  supersededUpTo(index: number): void {
    for (let w = this.peek(); w && w.index <= index; w = this.peek()) {
      this.shift();
      w.reject(
        new ProposalDroppedError(
          "stepped-down",
          `index ${w.index} was covered by a snapshot; outcome unknown`,
        ),
      );
    }
  }

  /** Fails proposals past their deadline (their outcome is unknown to the caller). */
  expire(nowMs: number): void {
    // Deadlines grow with the queue: the oldest proposal is at the head.
    for (let w = this.peek(); w && w.deadlineMs <= nowMs; w = this.peek()) {
      this.shift();
      w.reject(new TimeoutError(`proposal at index ${w.index}`, this.timeoutMs));
    }
  }

  failAll(e: Error): void {
    const all = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    for (const w of all) w.reject(e);
  }

  private peek(): ProposalWaiter<T> | undefined {
    return this.head < this.queue.length ? this.queue[this.head] : undefined;
  }

  private shift(): void {
    this.queue[this.head++] = undefined as unknown as ProposalWaiter<T>;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

interface ReadWaiter<T> extends Waiter<T> {
  readonly run: () => T | Promise<T>;
  /** Set once the leader confirmed it: serve when applied reaches it. */
  index: number;
}

export class PendingReads<T> {
  private readonly byCtx = new Map<string, ReadWaiter<T>>();
  /** Confirmed reads waiting for the state machine to catch up. */
  private confirmedCount = 0;
  private readonly max: number;
  private readonly timeoutMs: number;
  private seq = 0;
  private readonly prefix: string;

  /** `onExpired(ctx)`: a read timed out (the core may still hold it). */
  constructor(
    max: number,
    timeoutMs: number,
    nodeId: number,
    private readonly onExpired: (ctx: string) => void = () => {},
  ) {
    this.max = max;
    this.timeoutMs = timeoutMs;
    // ctx must not collide with a read of an earlier incarnation that a leader may still answer.
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
      this.byCtx.set(ctx, {
        run,
        index: -1,
        resolve,
        reject,
        deadlineMs: performance.now() + this.timeoutMs,
      });
    });
    return { ctx, promise };
  }

  confirmed(ctx: string, index: number): void {
    const r = this.byCtx.get(ctx);
    if (r && r.index < 0) {
      r.index = index;
      this.confirmedCount++;
    }
  }

  dropped(ctx: string, reason: DropReason): void {
    this.fail(ctx, new ReadDroppedError(reason));
  }

  fail(ctx: string, e: Error): void {
    const r = this.byCtx.get(ctx);
    if (!r) return;
    this.remove(ctx, r);
    r.reject(e);
  }

  private remove(ctx: string, r: ReadWaiter<T>): void {
    this.byCtx.delete(ctx);
    if (r.index >= 0) this.confirmedCount--;
  }

  /** Serves every confirmed read whose index is applied. */
  serve(applied: number): void {
    if (this.confirmedCount === 0) return;
    for (const [ctx, r] of this.byCtx) {
      if (r.index < 0 || r.index > applied) continue;
      this.remove(ctx, r);
      Promise.resolve().then(r.run).then(r.resolve, r.reject);
    }
  }

  expire(nowMs: number): void {
    for (const [ctx, r] of this.byCtx) {
      if (r.deadlineMs > nowMs) break;
      this.remove(ctx, r);
      this.onExpired(ctx);
      r.reject(new TimeoutError("read", this.timeoutMs));
    }
  }

  failAll(e: Error = new StoppedError()): void {
    for (const r of this.byCtx.values()) r.reject(e);
    this.byCtx.clear();
    this.confirmedCount = 0;
  }
}
