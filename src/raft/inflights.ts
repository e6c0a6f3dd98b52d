import { invariant } from "../errors.ts";

/**
 * The append messages in flight to one follower, as a ring buffer of their
 * last indexes and sizes. Bounded by count (`maxInflightMsgs`) and by bytes
 * (`maxInflightBytes`, 0 = no byte limit): pipelining stops when either is full.
 */
export class Inflights {
  readonly capacity: number;
  readonly maxBytes: number;
  private readonly indexes: number[];
  private readonly sizes: number[];
  private start = 0;
  private _count = 0;
  private _bytes = 0;

  constructor(capacity: number, maxBytes: number) {
    invariant(capacity >= 1, "inflights capacity must be >= 1");
    this.capacity = capacity;
    this.maxBytes = maxBytes;
    this.indexes = new Array<number>(capacity).fill(0);
    this.sizes = new Array<number>(capacity).fill(0);
  }

  get count(): number {
    return this._count;
  }
  get bytes(): number {
    return this._bytes;
  }

  /** Records a message whose last entry is `index`. Indexes must increase. */
  add(index: number, bytes: number): void {
    invariant(!this.full(), "inflights: add while full");
    if (this._count > 0) {
      const last = this.indexes[(this.start + this._count - 1) % this.capacity]!;
      invariant(index > last, () => `inflights: index ${index} not above ${last}`);
    }
    const slot = (this.start + this._count) % this.capacity;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this._count++;
    this._bytes += bytes;
  }

  /** Frees every message whose last index is <= `index` (they were acknowledged). */
  freeLE(index: number): void {
    while (this._count > 0 && this.indexes[this.start]! <= index) {
      this._bytes -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.capacity;
      this._count--;
    }
    if (this._count === 0) this.start = 0;
  }

  /** Frees the oldest message (used to probe past a lost one; see handleHeartbeatResponse). */
  freeFirstOne(): void {
    if (this._count > 0) this.freeLE(this.indexes[this.start]!);
  }

  full(): boolean {
    return this._count === this.capacity || (this.maxBytes > 0 && this._bytes >= this.maxBytes);
  }

  reset(): void {
    this.start = 0;
    this._count = 0;
    this._bytes = 0;
  }
}
