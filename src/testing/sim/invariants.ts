/**
 * Safety invariants, checked after every simulation step. Each check is
 * incremental (O(1) amortised per entry or event), so checking everything
 * always costs little more than running the cluster:
 *
 * - Election safety: at most one leader per term (`leaders`).
 * - Log matching: an (index, term) pair names one entry everywhere (same
 *   payload), and every log holding it agrees on the term before it (`entries`).
 *   By induction, two logs that share an (index, term) share the whole prefix.
 *   `finalCheck` also compares every pair of durable logs directly.
 * - State machine safety: every index is committed with one term (`ledger`),
 *   a committed entry is never overwritten in any durable log, and every node
 *   applies the same sequence (a running hash of applied (index, term) is
 *   compared per index, `chains`).
 * - Leader completeness: a new leader's log holds every committed entry.
 * - Commit: monotonic within an incarnation; a leader's commit index is
 *   durable on a quorum of its (joint) configuration; applied <= committed.
 * - Durability: every acknowledged write is still in the final leader's log.
 */

import { leaseValid } from "../../raft/reads.ts";
import type { Entry, NodeId, Snapshot } from "../../raft/types.ts";
import type { SimNode } from "./sim-node.ts";

interface EntryRecord {
  readonly term: number;
  readonly prevTerm: number;
  readonly data: Uint8Array;
  readonly type: number;
}

export class Invariants {
  /** The first violation found (the run stops there). */
  violation: string | null = null;
  private readonly leaders = new Map<number, NodeId>();
  /** index -> the term committed there (0: not known committed). */
  private readonly ledger: number[] = [];
  private ledgerMax = 0;
  private readonly entries = new Map<number, EntryRecord[]>();
  /** index -> the hash of the applied sequence up to it. */
  private readonly chains: number[] = [];
  /** Writes the clients saw acknowledged: (index, term). */
  readonly acked: { index: number; term: number }[] = [];
  /** Counters for reports. */
  elections = 0;

  constructor(private readonly nodes: ReadonlyMap<NodeId, SimNode>) {}

  fail(msg: string): void {
    if (this.violation === null) this.violation = msg;
  }

  private recordCommitted(node: SimNode, index: number, term: number): void {
    if (term === 0) return;
    const t = this.ledger[index];
    if (t === undefined || t === 0) {
      this.ledger[index] = term;
      if (index > this.ledgerMax) this.ledgerMax = index;
    } else if (t !== term) {
      this.fail(
        `node ${node.id} committed index ${index} with term ${term}, but term ${t} was committed there`,
      );
    }
  }

  /** Entries just made durable on `node` (by a Ready or a torn write). */
  onEntriesWritten(node: SimNode, ents: readonly Entry[]): void {
    const log = node.durable;
    const first = log.firstIndex();
    for (const e of ents) {
      if (e.index < first) continue;
      const prevTerm = e.index - 1 >= first - 1 ? log.term(e.index - 1) : -1;
      let recs = this.entries.get(e.index);
      if (recs === undefined) {
        recs = [];
        this.entries.set(e.index, recs);
      }
      const rec = recs.find((r) => r.term === e.term);
      if (rec === undefined) {
        recs.push({ term: e.term, prevTerm, data: e.data, type: e.type });
        continue;
      }
      if (rec.type !== e.type || !sameBytes(rec.data, e.data)) {
        this.fail(`log matching: two different entries at (${e.index}, term ${e.term}) (node ${node.id})`);
        return;
      }
      if (prevTerm !== -1 && rec.prevTerm !== -1 && prevTerm !== rec.prevTerm) {
        this.fail(
          `log matching: node ${node.id} holds (${e.index}, term ${e.term}) after term ${prevTerm}, ` +
            `elsewhere it follows term ${rec.prevTerm}`,
        );
        return;
      }
    }
  }

  /**
   * After a write: what the node durably holds as committed (its log up to its
   * durable commit index) must be the committed entries. A stale write above
   * that index is legal (the node had not acknowledged it yet).
   */
  onDurableWrite(node: SimNode, prevCommit: number, ents: readonly Entry[]): void {
    const log = node.durable;
    const commit = Math.min(log.hardState.commit, log.lastIndex());
    for (let i = Math.max(prevCommit + 1, log.firstIndex()); i <= commit; i++) {
      if (!this.durableMatchesLedger(node, i)) return;
    }
    const below = Math.min(prevCommit, commit);
    for (let k = 0; k < ents.length; k++) {
      const e = ents[k]!;
      if (e.index <= below && !this.durableMatchesLedger(node, e.index)) return;
    }
  }

  /** Whether `node`'s durable log agrees with the ledger at `i` (records a violation otherwise). */
  private durableMatchesLedger(node: SimNode, i: number): boolean {
    const log = node.durable;
    const t = this.ledger[i];
    if (t === undefined || t === 0 || i < log.firstIndex()) return true;
    const have = log.term(i);
    if (have === t) return true;
    this.fail(`node ${node.id} durably holds (${i}, term ${have}) as committed, but term ${t} is committed`);
    return false;
  }

  /** A snapshot made durable on `node`: its last entry must agree with the committed ledger. */
  onSnapshotWritten(node: SimNode, s: Snapshot): void {
    this.recordCommitted(node, s.metadata.index, s.metadata.term);
    const c = this.chains[s.metadata.index];
    if (c !== undefined && c !== node.sm.chain) {
      this.fail(`node ${node.id} installed a snapshot at ${s.metadata.index} whose applied history differs`);
    }
  }

  /** `node` applied `e` (its state machine's chain already includes it). */
  onApply(node: SimNode, e: Entry, committed: number): void {
    if (e.index > committed) this.fail(`node ${node.id} applied ${e.index} beyond its commit ${committed}`);
    const t = this.ledger[e.index];
    if (t !== undefined && t !== 0 && t !== e.term) {
      this.fail(`node ${node.id} applied (${e.index}, term ${e.term}) but term ${t} is committed there`);
    }
    this.recordCommitted(node, e.index, e.term);
    const c = this.chains[e.index];
    if (c === undefined) this.chains[e.index] = node.sm.chain;
    else if (c !== node.sm.chain)
      this.fail(`node ${node.id} applied a different sequence of entries up to ${e.index}`);
  }

  /**
   * Lease safety: `node` just answered a read from its lease, as leader of
   * its term. That is only sound if no later term has elected a leader yet
   * (which could have committed writes the read would miss). Stickiness and
   * leaseTicks < electionTick (with the drift margin) guarantee it.
   */
  onLeaseRead(node: SimNode): void {
    const term = node.raw!.internals.term;
    for (const [t, id] of this.leaders) {
      if (t > term) {
        this.fail(`lease read at node ${node.id} (leader of term ${term}) while node ${id} leads term ${t}`);
        return;
      }
    }
  }

  /** Called after every event that touched `node`. */
  observe(node: SimNode): void {
    const raw = node.raw;
    if (raw === null) return;
    const r = raw.internals;
    const log = r.log;
    if (r.role === "leader") {
      const l = this.leaders.get(r.term);
      if (l === undefined) {
        this.leaders.set(r.term, node.id);
        this.elections++;
        this.checkLeaderCompleteness(node);
        this.checkNoLiveLease(node);
      } else if (l !== node.id) {
        this.fail(`two leaders in term ${r.term}: nodes ${l} and ${node.id}`);
      }
    }
    const c = log.committed;
    if (c < node.lastCommit)
      this.fail(`node ${node.id} commit index went back from ${node.lastCommit} to ${c}`);
    if (c > node.lastCommit) {
      const lo = Math.max(node.lastCommit + 1, log.firstIndex() - 1);
      for (let i = lo; i <= c; i++) this.recordCommitted(node, i, log.termOrZero(i));
      if (r.role === "leader") this.checkDurableQuorum(node, c, log.termOrZero(c));
      node.lastCommit = c;
    }
    if (log.applied > c) this.fail(`node ${node.id} applied ${log.applied} > committed ${c}`);
    // With applyUnpersisted, a durable state machine can be ahead of its own node's
    // commit index after a crash (it applied entries its lost writes held); it must
    // never be ahead of what the cluster committed.
    if (node.sm.applied > c && node.pending === null) {
      if (!r.cfg.applyUnpersisted)
        this.fail(`node ${node.id} state machine applied ${node.sm.applied} > committed ${c}`);
      else if (node.sm.applied > this.ledgerMax)
        this.fail(
          `node ${node.id} state machine applied ${node.sm.applied} > committed anywhere ${this.ledgerMax}`,
        );
    }
  }

  /**
   * Lease safety at its root: a leader's lease promises that no other leader
   * can be elected while it lasts (the quorum that acknowledged it ignores
   * votes for longer, even with clocks drifting within the bound).
   */
  private checkNoLiveLease(node: SimNode): void {
    const term = node.raw!.internals.term;
    for (const other of this.nodes.values()) {
      const r = other.raw?.internals;
      if (other === node || !other.alive || r === undefined || r.role !== "leader") continue;
      if (r.term < term && leaseValid(r)) {
        this.fail(
          `node ${node.id} elected for term ${term} while node ${other.id} (term ${r.term}) holds a lease`,
        );
        return;
      }
    }
  }

  private checkLeaderCompleteness(node: SimNode): void {
    const log = node.raw!.internals.log;
    const first = log.firstIndex();
    for (let i = first; i <= this.ledgerMax; i++) {
      const t = this.ledger[i];
      if (t === undefined || t === 0) continue;
      const have = log.termOrZero(i);
      if (have !== t) {
        this.fail(
          `leader completeness: node ${node.id} leads term ${node.raw!.internals.term} ` +
            `without committed (${i}, term ${t}) (has term ${have})`,
        );
        return;
      }
    }
  }

  /** The leader's commit index must be durable on a majority of each half of its configuration. */
  private checkDurableQuorum(leader: NodeId | SimNode, index: number, term: number): void {
    const node = leader as SimNode;
    const cfg = node.raw!.internals.tracker.config;
    for (const voters of [cfg.incoming, cfg.outgoing]) {
      if (voters.size === 0) continue;
      let have = 0;
      for (const id of voters) {
        const n = this.nodes.get(id);
        if (n && durableHas(n, index, term)) have++;
      }
      if (have <= voters.size / 2) {
        this.fail(
          `node ${node.id} committed (${index}, term ${term}) but only ${have} of voters ` +
            `[${[...voters].join(",")}] hold it durably`,
        );
        return;
      }
    }
  }

  /** End of run: compare every pair of durable logs; acknowledged writes survive in the leader's log. */
  finalCheck(leader: SimNode | null): void {
    const nodes = [...this.nodes.values()];
    for (let a = 0; a < nodes.length; a++) {
      for (let b = a + 1; b < nodes.length; b++) {
        const x = nodes[a]!.durable;
        const y = nodes[b]!.durable;
        const lo = Math.max(x.firstIndex(), y.firstIndex());
        const hi = Math.min(x.lastIndex(), y.lastIndex());
        // From the highest shared (index, term) down, the logs must be equal.
        let matched = false;
        for (let i = hi; i >= lo; i--) {
          const tx = x.term(i);
          const ty = y.term(i);
          if (matched && tx !== ty) {
            this.fail(`log matching: nodes ${nodes[a]!.id} and ${nodes[b]!.id} differ at ${i} below a match`);
            return;
          }
          if (tx === ty) matched = true;
        }
      }
    }
    if (leader?.raw) {
      const log = leader.raw.internals.log;
      const snap = log.firstIndex() - 1;
      for (const w of this.acked) {
        if (w.index <= snap) continue;
        if (log.termOrZero(w.index) !== w.term) {
          this.fail(
            `acknowledged write (${w.index}, term ${w.term}) is missing from leader ${leader.id}'s log`,
          );
          return;
        }
      }
    }
    for (const w of this.acked) {
      const t = this.ledger[w.index];
      if (t !== w.term) this.fail(`acknowledged write (${w.index}, term ${w.term}) but ledger has ${t}`);
    }
  }
}

function durableHas(n: SimNode, index: number, term: number): boolean {
  const log = n.durable;
  const snap = log.snapshot().metadata;
  if (index <= snap.index) return true; // covered by a snapshot of committed state
  if (index < log.firstIndex() || index > log.lastIndex()) return false;
  return log.term(index) === term;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
