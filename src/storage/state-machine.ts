/**
 * The StateMachine contract: what Raft replicates into. The runtime calls
 * `apply` with committed entries in index order, exactly once each (entries
 * at or below `lastApplied()` are skipped, which makes replay after a restart
 * safe); `snapshot` streams a point-in-time image; `restore` replaces the
 * whole state with one; `read` answers a query from local state (the runtime
 * makes it linearizable with ReadIndex first).
 *
 * The snapshot types live in snapshot-store.ts and are re-exported here.
 */

import { InvalidArgumentError, invariant } from "../errors.ts";
import type { Entry } from "../raft/types.ts";

export type { SnapshotInfo, SnapshotStore } from "./snapshot-store.ts";

export interface AppliedIndex {
  readonly index: number;
  readonly term: number;
}

export interface StateMachine<R = unknown, Q = unknown, A = unknown> {
  /** Loads persisted state (if any); `lastApplied()` then says where it stands. */
  open(): Promise<void>;
  close(): Promise<void>;
  lastApplied(): AppliedIndex;
  /** One result per entry, in order. Throwing is reserved for faults, never for bad commands. */
  apply(entries: readonly Entry[]): Promise<R[]>;
  read(query: Q): A | Promise<A>;
  /**
   * The state as of `lastApplied()` at the moment of the call, as a stream of
   * chunks. Later applies do not change it (the image is captured at once).
   */
  snapshot(): AsyncIterable<Uint8Array>;
  /**
   * Replaces the state with a snapshot's. The stream may fail at its very end
   * (a checksum): nothing may change unless it ends cleanly.
   */
  restore(data: AsyncIterable<Uint8Array>, applied: AppliedIndex): Promise<void>;
}

/** Validates and de-duplicates, then calls `_applyOne` per new entry (abstract-level style). */
export abstract class AbstractStateMachine<R, Q, A> implements StateMachine<R, Q, A> {
  private applied: AppliedIndex = { index: 0, term: 0 };

  lastApplied(): AppliedIndex {
    return this.applied;
  }

  abstract open(): Promise<void>;
  abstract close(): Promise<void>;
  abstract read(query: Q): A | Promise<A>;
  abstract snapshot(): AsyncIterable<Uint8Array>;
  /** Applies one entry; `Normal` entries with empty data are a new leader's no-op. */
  protected abstract _applyOne(entry: Entry): R;
  /** The result reported for an entry applied before (a replay after restart). */
  protected abstract _skipped(entry: Entry): R;
  protected abstract _restore(data: AsyncIterable<Uint8Array>): Promise<void>;

  async apply(entries: readonly Entry[]): Promise<R[]> {
    const out: R[] = [];
    for (const e of entries) {
      if (e.index <= this.applied.index) {
        out.push(this._skipped(e));
        continue;
      }
      if (e.index !== this.applied.index + 1) {
        throw new InvalidArgumentError(`apply of entry ${e.index} after ${this.applied.index} leaves a gap`);
      }
      out.push(this._applyOne(e));
      this.applied = { index: e.index, term: e.term };
    }
    invariant(out.length === entries.length, "one result per entry");
    return out;
  }

  async restore(data: AsyncIterable<Uint8Array>, applied: AppliedIndex): Promise<void> {
    if (!Number.isSafeInteger(applied.index) || applied.index < 0) {
      throw new InvalidArgumentError(`restore index must be a non-negative integer, got ${applied.index}`);
    }
    await this._restore(data);
    this.applied = { index: applied.index, term: applied.term };
  }
}
