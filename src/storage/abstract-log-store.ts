/**
 * AbstractLogStore: the base class every backend extends (the contract and
 * its write semantics are described in log-store-contract.ts).
 *
 * Shape (after abstract-level): the public methods validate and normalize,
 * keep the small in-memory mirror the synchronous reads need (first/last
 * index, hard state, snapshot metadata, the tail cache), then call `_hooks`
 * that each backend implements. A backend never sees an invalid request.
 */

import {
  CompactedError,
  InvalidArgumentError,
  invariant,
  StoppedError,
  UnavailableError,
} from "../errors.ts";
import type { RaftLogReader } from "../raft/storage.ts";
import {
  type ConfState,
  EMPTY_HARD_STATE,
  type Entry,
  type HardState,
  type Snapshot,
  type SnapshotMetadata,
} from "../raft/types.ts";
import {
  type CrashableLogStore,
  EMPTY_SNAPSHOT_METADATA,
  LOG_STORE_DEFAULTS,
  type LogStoreCapabilities,
  type LogStoreOptions,
  positiveIntOption,
  type RecoveredLog,
  type SnapshotDataSource,
  validateHardState,
  validateSnapshotMetadata,
  type WriteKind,
} from "./log-store-contract.ts";
import { TailCache } from "./tail-cache.ts";

export abstract class AbstractLogStore implements CrashableLogStore {
  abstract readonly capabilities: LogStoreCapabilities;

  protected status: "new" | "opening" | "open" | "closing" | "closed" = "new";
  private first = 1;
  private last = 0;
  private hs: HardState = EMPTY_HARD_STATE;
  private snap: SnapshotMetadata = EMPTY_SNAPSHOT_METADATA;
  private readonly cache: TailCache;
  private opening: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private snapshotSource: SnapshotDataSource | null = null;
  /** Writes waiting for the backend's gate, in call order. */
  private waiting = 0;
  private queueTail: Promise<unknown> = Promise.resolve();

  constructor(options: LogStoreOptions = {}) {
    this.cache = new TailCache(
      positiveIntOption("cacheMaxEntries", options.cacheMaxEntries, LOG_STORE_DEFAULTS.cacheMaxEntries),
      positiveIntOption("cacheMaxBytes", options.cacheMaxBytes, LOG_STORE_DEFAULTS.cacheMaxBytes),
    );
  }

  // ---- hooks ---------------------------------------------------------------

  protected abstract _open(): Promise<RecoveredLog>;
  /**
   * Called synchronously; must make `entries` readable through the read hooks
   * at once (or rely on the tail cache, which always holds at least the
   * entries of this call). `entries[0].index <= lastIndex + 1`; when it is
   * `<= lastIndex` the backend replaces that suffix.
   */
  protected abstract _append(entries: readonly Entry[], lastIndexBefore: number): Promise<void>;
  protected abstract _truncateSuffix(fromIndex: number, lastIndexBefore: number): Promise<void>;
  protected abstract _saveHardState(hardState: HardState): Promise<void>;
  /** `discardLog`: drop every entry (the snapshot does not match the log). */
  protected abstract _compact(snapshot: SnapshotMetadata, discardLog: boolean): Promise<void>;
  protected abstract _sync(): Promise<void>;
  protected abstract _close(): Promise<void>;
  /** Entries `[lo, hi)`, `firstIndex <= lo < hi <= lastIndex + 1`, at least one, within `maxBytes`. */
  protected abstract _readEntriesSync(lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of a stored entry, `firstIndex <= index <= lastIndex`. */
  protected abstract _readTermSync(index: number): number;
  /**
   * Returns null when a write of about `bytes` may proceed now, or a promise
   * to await first (backpressure, a segment being prepared). A rejection fails
   * the write without changing anything.
   */
  protected _writeGate(_bytes: number, _kind: WriteKind, _largest: number): Promise<void> | null {
    return null;
  }
  protected _crash(): Promise<void> {
    throw new InvalidArgumentError(`${this.capabilities.backend} cannot simulate a crash`);
  }

  // ---- lifecycle -----------------------------------------------------------

  open(): Promise<void> {
    if (this.status !== "new")
      return Promise.reject(new InvalidArgumentError(`log store cannot be opened twice`));
    this.status = "opening";
    this.opening = this.doOpen();
    return this.opening;
  }

  private async doOpen(): Promise<void> {
    try {
      const r = await this._open();
      invariant(r.lastIndex >= r.snapshot.index, "recovered log ends before its snapshot");
      this.hs = r.hardState;
      this.snap = r.snapshot;
      this.first = r.snapshot.index + 1;
      this.last = r.lastIndex;
      this.status = "open";
    } catch (err) {
      this.status = "closed";
      throw err;
    }
  }

  /** Flushes the writes called before it, then closes; every call returns the same promise. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    // Closing while opening: let the open finish (or fail), then close what it opened.
    if (this.status === "opening") await this.opening?.catch(() => {});
    if (this.status !== "open") {
      this.status = "closed";
      return;
    }
    this.status = "closing";
    try {
      // Writes called before close() still run (new calls are refused); reads go on meanwhile.
      await this.queueTail;
    } finally {
      // No read reaches the backend once it starts closing (a closing RocksDB handle crashes).
      this.status = "closed";
      this.cache.clear();
    }
    await this._close();
  }

  async crash(): Promise<void> {
    if (!this.capabilities.crashSimulation) {
      throw new InvalidArgumentError(`${this.capabilities.backend} cannot simulate a crash`);
    }
    if (this.status !== "open") return;
    this.status = "closing";
    try {
      await this._crash();
    } finally {
      this.status = "closed";
      this.cache.clear();
    }
  }

  // ---- writes --------------------------------------------------------------

  append(entries: readonly Entry[]): Promise<void> {
    const refused = this.refuse(() => this.validateBatch(entries));
    if (refused) return refused;
    let bytes = 0;
    let largest = 0;
    for (const e of entries) {
      const b = e.data.length + 64;
      bytes += b;
      if (b > largest) largest = b;
    }
    return this.serialize("append", bytes, () => this.doAppend(entries), largest);
  }

  private doAppend(entries: readonly Entry[]): Promise<void> {
    // Skip what the snapshot already covers (committed, hence identical).
    let from = 0;
    while (from < entries.length && entries[from]!.index <= this.snap.index) from++;
    if (from === entries.length) return Promise.resolve();
    const batch = from === 0 ? entries : entries.slice(from);
    const firstNew = batch[0]!.index;
    if (firstNew > this.last + 1) {
      throw new InvalidArgumentError(`append at ${firstNew} leaves a gap after last index ${this.last}`);
    }
    const prevTerm = this.term(firstNew - 1);
    if (batch[0]!.term < prevTerm) {
      throw new InvalidArgumentError(
        `entry ${firstNew} has term ${batch[0]!.term}, below the term ${prevTerm} of the entry before it`,
      );
    }
    const lastBefore = this.last;
    // Committed entries are fixed: an append may repeat them (a duplicate message), never
    // change them, nor end before them (replacing the suffix would cut them off).
    const fixed = Math.min(this.hs.commit, lastBefore);
    if (firstNew <= fixed) {
      const batchLast = batch[batch.length - 1]!.index;
      if (batchLast < fixed) {
        throw new InvalidArgumentError(
          `append of [${firstNew}, ${batchLast}] would cut off committed entries up to ${fixed}`,
        );
      }
      for (let i = 0; i < batch.length && batch[i]!.index <= fixed; i++) {
        if (this.term(batch[i]!.index) !== batch[i]!.term) {
          throw new InvalidArgumentError(`append at ${batch[i]!.index} would overwrite a committed entry`);
        }
      }
    }
    const p = this._append(batch, lastBefore);
    if (firstNew <= lastBefore) this.cache.truncateFrom(firstNew);
    if (this.cache.size === 0 || this.cache.firstIndex > firstNew) {
      // The cache must stay contiguous with the log tail: restart it here.
      this.cache.clear();
    }
    this.cache.push(batch);
    this.last = batch[batch.length - 1]!.index;
    return p;
  }

  truncateSuffix(fromIndex: number): Promise<void> {
    const refused = this.refuse(() => {
      if (!Number.isSafeInteger(fromIndex) || fromIndex < 1) {
        throw new InvalidArgumentError(`truncate index must be a positive integer, got ${fromIndex}`);
      }
    });
    if (refused) return refused;
    return this.serialize("truncate", 0, () => {
      if (fromIndex <= this.snap.index) throw new CompactedError(fromIndex, this.first);
      if (fromIndex <= this.hs.commit) {
        throw new InvalidArgumentError(
          `cannot truncate at ${fromIndex}: entries up to ${this.hs.commit} are committed`,
        );
      }
      if (fromIndex > this.last) return this._sync();
      const lastBefore = this.last;
      const p = this._truncateSuffix(fromIndex, lastBefore);
      this.cache.truncateFrom(fromIndex);
      this.last = fromIndex - 1;
      return p;
    });
  }

  saveHardState(hardState: HardState): Promise<void> {
    const refused = this.refuse(() => validateHardState(hardState));
    if (refused) return refused;
    return this.serialize("hardState", 64, () => {
      const was = this.hs;
      if (hardState.term < was.term) {
        throw new InvalidArgumentError(`hard state term went back from ${was.term} to ${hardState.term}`);
      }
      if (hardState.term === was.term && was.vote !== 0 && hardState.vote !== was.vote) {
        throw new InvalidArgumentError(
          `hard state vote changed from ${was.vote} to ${hardState.vote} within term ${was.term}`,
        );
      }
      if (hardState.commit < was.commit) {
        throw new InvalidArgumentError(
          `hard state commit went back from ${was.commit} to ${hardState.commit}`,
        );
      }
      if (hardState.commit > this.last) {
        throw new InvalidArgumentError(
          `hard state commit ${hardState.commit} is beyond the last index ${this.last}`,
        );
      }
      const hs = Object.freeze({ term: hardState.term, vote: hardState.vote, commit: hardState.commit });
      const p = this._saveHardState(hs);
      this.hs = hs;
      return p;
    });
  }

  compact(snapshot: SnapshotMetadata): Promise<void> {
    const refused = this.refuse(() => validateSnapshotMetadata(snapshot));
    if (refused) return refused;
    return this.serialize("compact", 0, () => {
      if (snapshot.index <= this.snap.index) throw new CompactedError(snapshot.index, this.first);
      if (snapshot.index > this.last) throw new UnavailableError(snapshot.index, this.last);
      if (snapshot.index > this.hs.commit) {
        throw new InvalidArgumentError(
          `cannot compact to ${snapshot.index}: commit index is ${this.hs.commit}`,
        );
      }
      const t = this.term(snapshot.index);
      if (t !== snapshot.term) {
        throw new InvalidArgumentError(
          `snapshot term ${snapshot.term} != log term ${t} at ${snapshot.index}`,
        );
      }
      return this.recordSnapshot(snapshot, false);
    });
  }

  installSnapshot(snapshot: SnapshotMetadata): Promise<void> {
    const refused = this.refuse(() => validateSnapshotMetadata(snapshot));
    if (refused) return refused;
    return this.serialize("snapshot", 0, () => {
      if (snapshot.index <= this.snap.index) throw new CompactedError(snapshot.index, this.first);
      const matches = snapshot.index <= this.last && this.term(snapshot.index) === snapshot.term;
      if (!matches && snapshot.index <= Math.min(this.hs.commit, this.last)) {
        throw new InvalidArgumentError(
          `snapshot ${snapshot.index}/${snapshot.term} contradicts committed entry ${snapshot.index}/${this.term(snapshot.index)}`,
        );
      }
      return this.recordSnapshot(snapshot, !matches);
    });
  }

  private recordSnapshot(snapshot: SnapshotMetadata, discardLog: boolean): Promise<void> {
    const meta = Object.freeze({
      index: snapshot.index,
      term: snapshot.term,
      confState: freezeConfState(snapshot.confState),
    });
    const p = this._compact(meta, discardLog);
    this.snap = meta;
    this.first = meta.index + 1;
    if (discardLog) {
      this.last = meta.index;
      this.cache.clear();
    } else {
      this.cache.dropThrough(meta.index);
    }
    return p;
  }

  sync(): Promise<void> {
    const refused = this.refuse(() => {});
    if (refused) return refused;
    return this.serialize("sync", 0, () => this._sync());
  }

  /**
   * Checks a call at once (the store is open, then `check`): a bad call is
   * rejected before it queues behind other writes. Null when it may proceed.
   */
  private refuse(check: () => void): Promise<never> | null {
    try {
      this.checkOpen();
      check();
      return null;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Runs `op` at once when nothing is queued and the backend's gate is open,
   * so the in-memory view changes synchronously with the call; otherwise queues
   * it behind earlier writes to keep call order.
   */
  private serialize(kind: WriteKind, bytes: number, op: () => Promise<void>, largest = bytes): Promise<void> {
    let gate = this.waiting === 0 ? this._writeGate(bytes, kind, largest) : null;
    if (this.waiting === 0 && gate === null) {
      try {
        return op();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.waiting++;
    const run = this.queueTail.then(async () => {
      for (;;) {
        if (gate !== null) await gate;
        // Called before close(): still runs while the store is closing.
        if (this.status !== "open" && this.status !== "closing") this.checkOpen();
        gate = this._writeGate(bytes, kind, largest);
        if (gate === null) break;
      }
      return op();
    });
    const done = run.finally(() => {
      this.waiting--;
    });
    this.queueTail = done.catch(() => undefined);
    return done;
  }

  // ---- synchronous reads (RaftLogReader) -------------------------------------

  reader(): RaftLogReader {
    return this;
  }

  attachSnapshotData(source: SnapshotDataSource | null): void {
    this.snapshotSource = source;
  }

  initialState(): { readonly hardState: HardState; readonly confState: ConfState } {
    this.checkReadable();
    return { hardState: this.hs, confState: this.snap.confState };
  }

  hardState(): HardState {
    this.checkReadable();
    return this.hs;
  }

  snapshotMetadata(): SnapshotMetadata {
    this.checkReadable();
    return this.snap;
  }

  firstIndex(): number {
    this.checkReadable();
    return this.first;
  }

  lastIndex(): number {
    this.checkReadable();
    return this.last;
  }

  term(index: number): number {
    this.checkReadable();
    if (index === this.snap.index) return this.snap.term;
    if (index < this.snap.index) throw new CompactedError(index, this.first);
    if (index > this.last) throw new UnavailableError(index, this.last);
    const cached = this.cache.get(index);
    return cached !== undefined ? cached.term : this._readTermSync(index);
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    this.checkReadable();
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo > hi) {
      throw new InvalidArgumentError(`invalid entry range [${lo}, ${hi})`);
    }
    if (lo < this.first) throw new CompactedError(lo, this.first);
    if (hi > this.last + 1) throw new UnavailableError(hi - 1, this.last);
    if (lo === hi) return [];
    const out: Entry[] = [];
    let budget = maxBytes;
    let next = lo;
    const cacheFirst = this.cache.firstIndex;
    if (next < cacheFirst) {
      const diskHi = Math.min(hi, cacheFirst);
      const fromDisk = this._readEntriesSync(next, diskHi, budget);
      invariant(
        fromDisk.length >= 1 && fromDisk[0]!.index === next,
        "backend read returned the wrong entries",
      );
      for (const e of fromDisk) {
        out.push(e);
        budget -= e.data.length;
      }
      next += fromDisk.length;
      if (next < diskHi) return out;
    }
    while (next < hi) {
      const e = this.cache.get(next)!;
      invariant(e !== undefined, () => `tail cache lost entry ${next}`);
      if (out.length > 0 && e.data.length > budget) break;
      out.push(e);
      budget -= e.data.length;
      next++;
    }
    return out;
  }

  snapshot(): Snapshot {
    this.checkReadable();
    const data =
      this.snapshotSource && this.snap.index > 0 ? this.snapshotSource(this.snap) : new Uint8Array(0);
    return { metadata: this.snap, data };
  }

  // ---- helpers -------------------------------------------------------------

  protected checkOpen(): void {
    if (this.status !== "open") throw new StoppedError(`${this.capabilities.backend} log store`);
  }

  private checkReadable(): void {
    if (this.status !== "open" && this.status !== "closing") {
      throw new StoppedError(`${this.capabilities.backend} log store`);
    }
  }

  private validateBatch(entries: readonly Entry[]): void {
    const max = this.capabilities.maxEntryBytes;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (!Number.isSafeInteger(e.index) || e.index < 1 || !Number.isSafeInteger(e.term) || e.term < 1) {
        throw new InvalidArgumentError(
          `entry index and term must be positive integers (${e.index}/${e.term})`,
        );
      }
      if (!(e.data instanceof Uint8Array))
        throw new InvalidArgumentError(`entry ${e.index} data is not bytes`);
      if (e.data.length > max) {
        throw new InvalidArgumentError(`entry ${e.index} is ${e.data.length} bytes; the limit is ${max}`);
      }
      if (e.type !== 0 && e.type !== 1) throw new InvalidArgumentError(`entry ${e.index} has unknown type`);
      if (i > 0) {
        const p = entries[i - 1]!;
        if (e.index !== p.index + 1)
          throw new InvalidArgumentError(`entries are not contiguous at ${e.index}`);
        if (e.term < p.term) throw new InvalidArgumentError(`entry terms decrease at ${e.index}`);
      }
    }
  }
}

function freezeConfState(cs: ConfState): ConfState {
  return Object.freeze({
    voters: Object.freeze([...cs.voters]),
    learners: Object.freeze([...cs.learners]),
    votersOutgoing: Object.freeze([...cs.votersOutgoing]),
    learnersNext: Object.freeze([...cs.learnersNext]),
    autoLeave: cs.autoLeave,
  });
}
