/**
 * The simulator's agenda: a binary min-heap of events ordered by simulated
 * time, ties broken by insertion order so that a run is a pure function of
 * its seed (a heap alone is not stable).
 */

import type { Message } from "../../raft/types.ts";

export const EventKind = {
  /** A node's clock ticks (its next tick is scheduled by the handler). */
  Tick: 0,
  /** A message arrives at `msg.to`. */
  Deliver: 1,
  /** A node's write in flight (sync: the pending Ready; async: every write due by now) becomes durable. */
  Fsync: 2,
  /** Anything else (clients, faults): `fn` runs. */
  Call: 3,
} as const;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

export interface SimEvent {
  at: number;
  seq: number;
  kind: EventKind;
  /** The node the event concerns (Tick, Fsync), or 0. */
  node: number;
  /** The node's incarnation when scheduled: events of a crashed incarnation are void. */
  incarnation: number;
  msg: Message | null;
  fn: (() => void) | null;
}

export class EventQueue {
  private heap: SimEvent[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(
    at: number,
    kind: EventKind,
    node: number,
    incarnation: number,
    msg: Message | null,
    fn: (() => void) | null,
  ): void {
    const ev: SimEvent = { at, seq: this.seq++, kind, node, incarnation, msg, fn };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(ev, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = ev;
  }

  pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    if (top === undefined) return undefined;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(h[r]!, h[l]!) ? r : l;
        if (!before(h[c]!, last)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }

  peekTime(): number {
    return this.heap[0]?.at ?? Number.POSITIVE_INFINITY;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
