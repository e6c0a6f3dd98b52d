/**
 * The replicated state machine the simulator runs: a tiny KV store (put /
 * delete / compare-and-swap; reads are served locally after ReadIndex).
 *
 * Besides the map it keeps a running hash of every (index, term) it applied,
 * so the simulator can check "no two nodes apply different entries at one
 * index" in O(1) per entry, even across snapshots (the hash travels with them).
 */

import { invariant } from "../../errors.ts";
import { type Entry, EntryType } from "../../raft/types.ts";

export type KvCommand =
  | { readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }
  | { readonly op: "cas"; readonly key: string; readonly expected: string | null; readonly value: string }
  /** Proposed by the simulator itself (liveness probe); changes nothing. */
  | { readonly op: "noop"; readonly key: string };

/** What applying a command returned: cas → swapped?, everything else → null. */
export type KvResult = boolean | null;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
// Entries travel by reference inside the simulator, so each payload is parsed once for all nodes.
const decoded = new WeakMap<Uint8Array, KvCommand>();

export function encodeCommand(c: KvCommand): Uint8Array {
  const data = encoder.encode(JSON.stringify(c));
  decoded.set(data, c);
  return data;
}

export function decodeCommand(data: Uint8Array): KvCommand {
  let c = decoded.get(data);
  if (c === undefined) {
    c = JSON.parse(decoder.decode(data)) as KvCommand;
    decoded.set(data, c);
  }
  return c;
}

/** Folds (index, term) into the running hash of the applied sequence. */
export function chainHash(prev: number, index: number, term: number): number {
  let h = prev ^ 0x9e3779b9;
  h = Math.imul(h ^ index, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ term, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class KvMachine {
  readonly data = new Map<string, string>();
  applied = 0;
  chain = 0;

  /** Applies one committed entry (in order); returns the command's result for Normal entries with data. */
  apply(e: Entry): KvResult {
    invariant(e.index === this.applied + 1, () => `state machine applies ${e.index} after ${this.applied}`);
    this.applied = e.index;
    this.chain = chainHash(this.chain, e.index, e.term);
    if (e.type !== EntryType.Normal || e.data.length === 0) return null;
    const c = decodeCommand(e.data);
    switch (c.op) {
      case "put":
        this.data.set(c.key, c.value);
        return null;
      case "delete":
        this.data.delete(c.key);
        return null;
      case "cas": {
        const cur = this.data.get(c.key) ?? null;
        if (cur !== c.expected) return false;
        this.data.set(c.key, c.value);
        return true;
      }
      case "noop":
        return null;
    }
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /** The snapshot payload: applied index, hash and the whole map. */
  snapshot(): Uint8Array {
    const kv = [...this.data.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return encoder.encode(JSON.stringify({ applied: this.applied, chain: this.chain, kv }));
  }

  static fromSnapshot(data: Uint8Array): KvMachine {
    const m = new KvMachine();
    if (data.length === 0) return m;
    const s = JSON.parse(decoder.decode(data)) as { applied: number; chain: number; kv: [string, string][] };
    m.applied = s.applied;
    m.chain = s.chain;
    for (const [k, v] of s.kv) m.data.set(k, v);
    return m;
  }

  /** A canonical rendering of the map, to compare replicas. */
  digest(): string {
    const kv = [...this.data.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return JSON.stringify(kv);
  }
}
