/**
 * What a node's core reads while asynchronous writes are in flight: the
 * durable log with the entries of every write already handed to the disk laid
 * over it, as a real log store shows appended entries before their fsync
 * returns. A crash discards it; only the durable log survives.
 *
 * The overlay holds the entries written since the disk was last idle, from
 * `first` on, replacing the durable log there (a later write truncates and
 * extends it like an append). It is cleared once every write is durable
 * (then the durable log holds the same entries).
 */

import { CompactedError, UnavailableError } from "../../errors.ts";
import type { MemoryRaftLog } from "../../raft/memory-log.ts";
import type { RaftLogReader } from "../../raft/storage.ts";
import type { ConfState, Entry, HardState, Snapshot } from "../../raft/types.ts";

export class PageCacheLog implements RaftLogReader {
  private over: Entry[] = [];
  private first = 0;

  constructor(private readonly durable: MemoryRaftLog) {}

  /** A write was handed to the disk: its entries are visible now. */
  write(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const lo = ents[0]!.index;
    if (this.over.length === 0 || lo <= this.first) {
      this.first = lo;
      this.over = ents.slice();
      return;
    }
    const keep = lo - this.first;
    if (keep > this.over.length)
      throw new Error(`page cache: write at ${lo} leaves a gap after ${this.lastIndex()}`);
    this.over.length = keep;
    for (const e of ents) this.over.push(e);
  }

  /** Every write is durable (or lost): only the durable log remains. */
  clear(): void {
    this.over = [];
  }

  initialState(): { readonly hardState: HardState; readonly confState: ConfState } {
    return this.durable.initialState();
  }

  firstIndex(): number {
    return this.durable.firstIndex();
  }

  lastIndex(): number {
    return this.over.length > 0 ? this.first + this.over.length - 1 : this.durable.lastIndex();
  }

  term(i: number): number {
    if (this.over.length === 0 || i < this.first) return this.durable.term(i);
    const dummy = this.durable.firstIndex() - 1;
    if (i < dummy) throw new CompactedError(i, dummy + 1);
    if (i > this.lastIndex()) throw new UnavailableError(i, this.lastIndex());
    return this.over[i - this.first]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (this.over.length === 0 || hi <= this.first) return this.durable.entries(lo, hi, maxBytes);
    if (lo < this.durable.firstIndex()) throw new CompactedError(lo, this.durable.firstIndex());
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    const out = lo < this.first ? this.durable.entries(lo, this.first, maxBytes) : [];
    if (lo < this.first && out.length < this.first - lo) return out;
    let bytes = 0;
    for (const e of out) bytes += e.data.length;
    for (let i = Math.max(lo, this.first); i < hi; i++) {
      const e = this.over[i - this.first]!;
      if (out.length > 0 && bytes + e.data.length > maxBytes) break;
      out.push(e);
      bytes += e.data.length;
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.durable.snapshot();
  }
}
