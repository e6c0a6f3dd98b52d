import { invariant } from "../errors.ts";
import type { Entry } from "../raft/types.ts";

/**
 * The newest entries of the log, held in memory so the synchronous reads the
 * core makes on its hot path (replication to followers that are nearly caught
 * up, term checks near the tail) never touch the disk. Bounded by entry count
 * and by data bytes: older entries are dropped from the front and read from the
 * backend when asked for.
 *
 * It always holds a contiguous range `[firstIndex, lastIndex]` ending at the
 * log's last index (or is empty).
 */
export class TailCache {
  private buf: Entry[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {
    invariant(maxEntries >= 1 && maxBytes >= 0, "tail cache bounds must be positive");
  }

  get size(): number {
    return this.buf.length - this.head;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** The first cached index, or `Infinity` when empty. */
  get firstIndex(): number {
    return this.size === 0 ? Number.POSITIVE_INFINITY : this.buf[this.head]!.index;
  }

  /** Appends entries that directly follow the cached range (the caller truncated first). */
  push(entries: readonly Entry[]): void {
    for (const e of entries) {
      invariant(
        this.size === 0 || e.index === this.buf[this.buf.length - 1]!.index + 1,
        () => `tail cache: non-contiguous push of ${e.index}`,
      );
      this.buf.push(e);
      this.bytes += e.data.length;
    }
    this.evict();
  }

  /** Drops cached entries with index >= `fromIndex`. */
  truncateFrom(fromIndex: number): void {
    while (this.size > 0 && this.buf[this.buf.length - 1]!.index >= fromIndex) {
      this.bytes -= this.buf.pop()!.data.length;
    }
    if (this.size === 0) this.clear();
  }

  /** Drops cached entries with index <= `index`. */
  dropThrough(index: number): void {
    while (this.size > 0 && this.buf[this.head]!.index <= index) this.shift();
    this.compactArray();
  }

  clear(): void {
    this.buf = [];
    this.head = 0;
    this.bytes = 0;
  }

  get(index: number): Entry | undefined {
    if (this.size === 0) return undefined;
    const pos = this.head + (index - this.buf[this.head]!.index);
    return pos >= this.head && pos < this.buf.length ? this.buf[pos] : undefined;
  }

  private shift(): void {
    this.bytes -= this.buf[this.head]!.data.length;
    this.buf[this.head] = undefined as unknown as Entry; // let the GC take the payload
    this.head++;
  }

  private evict(): void {
    // Always keep the newest entry: the core asks for term(lastIndex) constantly.
    while (this.size > 1 && (this.size > this.maxEntries || this.bytes > this.maxBytes)) this.shift();
    this.compactArray();
  }

  private compactArray(): void {
    if (this.head > 1024 && this.head * 2 > this.buf.length) {
      this.buf = this.buf.slice(this.head);
      this.head = 0;
    }
  }
}
