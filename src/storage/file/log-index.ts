/**
 * Where each live entry of the WAL lives, in memory that grows with the log
 * only by a small fraction of an entry: a sparse index, not a map per entry.
 *
 * The live log is a sequence of *runs*: maximal ranges of consecutive indexes
 * whose records lie in one segment in order, with only non-entry records
 * (hard state) between them. A run records the file offset of every
 * `strideEntries`-th entry; a read seeks to the checkpoint before the wanted
 * index and walks forward. Terms are kept as runs of equal term (they change
 * only on elections), so `term(i)` never touches the disk.
 *
 * Memory: about 8 / strideEntries bytes per entry plus one object per run and
 * per term change: 1 million entries at stride 32 cost ~250 KB.
 */

import { invariant } from "../../errors.ts";

export interface IndexedSegment {
  readonly seq: number;
}

export interface Run<S extends IndexedSegment> {
  readonly start: number;
  count: number;
  readonly segment: S;
  readonly checkpoints: number[];
  /** A truncation cut this run: dead records may follow its last entry, so it must not grow. */
  sealed: boolean;
}

interface TermRun {
  readonly start: number;
  readonly term: number;
}

export class LogIndex<S extends IndexedSegment> {
  private runs: Run<S>[] = [];
  private terms: TermRun[] = [];
  private last: number;

  constructor(
    private readonly strideEntries: number,
    /** Entries up to `base` are compacted. */
    private base: number,
  ) {
    this.last = base;
  }

  get lastIndex(): number {
    return this.last;
  }

  get runCount(): number {
    return this.runs.length;
  }

  /** Adds entry `index` (must be `lastIndex + 1`) at `offset` in `segment`. */
  add(index: number, term: number, segment: S, offset: number): void {
    invariant(index === this.last + 1, () => `log index: add ${index} after ${this.last}`);
    const r = this.runs[this.runs.length - 1];
    if (r !== undefined && !r.sealed && r.segment === segment) {
      if (r.count % this.strideEntries === 0) r.checkpoints.push(offset);
      r.count++;
    } else {
      this.runs.push({ start: index, count: 1, segment, checkpoints: [offset], sealed: false });
    }
    const t = this.terms[this.terms.length - 1];
    if (t === undefined || t.term !== term) {
      invariant(t === undefined || term > t.term, () => `log index: term ${term} after ${t?.term}`);
      this.terms.push({ start: index, term });
    }
    this.last = index;
  }

  /**
   * Adds `count` consecutive entries of one `term`, the first being
   * `lastIndex + 1`, whose file offsets are `offsets[from ..+ count]` (the
   * recovery scan's bulk form of {@link add}: it touches only every
   * `strideEntries`-th offset).
   */
  addRun(index: number, count: number, term: number, segment: S, offsets: Float64Array, from: number): void {
    invariant(index === this.last + 1, () => `log index: add ${index} after ${this.last}`);
    if (count <= 0) return;
    let r = this.runs[this.runs.length - 1];
    if (r === undefined || r.sealed || r.segment !== segment) {
      r = { start: index, count: 0, segment, checkpoints: [], sealed: false };
      this.runs.push(r);
    }
    const s = this.strideEntries;
    for (let k = (s - (r.count % s)) % s; k < count; k += s) r.checkpoints.push(offsets[from + k]!);
    r.count += count;
    const t = this.terms[this.terms.length - 1];
    if (t === undefined || t.term !== term) {
      invariant(t === undefined || term > t.term, () => `log index: term ${term} after ${t?.term}`);
      this.terms.push({ start: index, term });
    }
    this.last = index + count - 1;
  }

  /** Forgets entries `>= fromIndex`. */
  truncateFrom(fromIndex: number): void {
    if (fromIndex > this.last) return;
    invariant(fromIndex > this.base, () => `log index: truncate ${fromIndex} at or below base ${this.base}`);
    while (this.runs.length > 0 && this.runs[this.runs.length - 1]!.start >= fromIndex) this.runs.pop();
    const r = this.runs[this.runs.length - 1];
    if (r !== undefined) {
      r.count = Math.min(r.count, fromIndex - r.start);
      r.checkpoints.length = Math.ceil(r.count / this.strideEntries);
      r.sealed = true;
    }
    while (this.terms.length > 0 && this.terms[this.terms.length - 1]!.start >= fromIndex) this.terms.pop();
    this.last = fromIndex - 1;
  }

  /** Forgets entries `<= index` (compaction); `index` may lie beyond the log (it is then emptied). */
  compactThrough(index: number): void {
    if (index >= this.last) {
      this.runs = [];
      this.terms = [];
      this.last = index;
    } else {
      let drop = 0;
      while (drop < this.runs.length && this.runs[drop]!.start + this.runs[drop]!.count - 1 <= index) drop++;
      if (drop > 0) this.runs = this.runs.slice(drop);
      let tdrop = 0;
      while (tdrop + 1 < this.terms.length && this.terms[tdrop + 1]!.start <= index + 1) tdrop++;
      if (tdrop > 0) this.terms = this.terms.slice(tdrop);
    }
    this.base = index;
  }

  /** Forgets every entry: the log restarts after `base` (a snapshot that did not match). */
  reset(base: number): void {
    this.runs = [];
    this.terms = [];
    this.last = base;
    this.base = base;
  }

  term(index: number): number {
    invariant(index > this.base && index <= this.last, () => `log index: term(${index}) out of range`);
    let lo = 0;
    let hi = this.terms.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.terms[mid]!.start <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.terms[lo]!.term;
  }

  /** The run holding `index`, the checkpoint offset to start from and how many entries to skip. */
  locate(index: number): { run: Run<S>; offset: number; skip: number } {
    invariant(index > this.base && index <= this.last, () => `log index: locate(${index}) out of range`);
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.runs[mid]!.start <= index) lo = mid;
      else hi = mid - 1;
    }
    const run = this.runs[lo]!;
    const k = index - run.start;
    invariant(k >= 0 && k < run.count, () => `log index: ${index} not in run at ${run.start}`);
    const cp = Math.floor(k / this.strideEntries);
    return { run, offset: run.checkpoints[cp]!, skip: k - cp * this.strideEntries };
  }

  /** The oldest segment still holding a live entry, or undefined when the log is empty. */
  oldestSegment(): S | undefined {
    return this.runs[0]?.segment;
  }
}
