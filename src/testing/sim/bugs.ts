/**
 * Test-only bug switches: deliberately broken behaviour, to prove that the
 * simulator's invariants and the linearizability checker catch real bugs.
 * Every switch is off by default, and the core is never edited: the runtime
 * switches live in the simulator, the core ones patch a single node's
 * objects (never a prototype), so other nodes and other runs are unaffected.
 */

import type { RawNode } from "../../raft/raw-node.ts";

export interface BugSwitches {
  /** Runtime: send a Ready's `messages` (acks, votes) before its write is durable. */
  readonly sendBeforePersist?: boolean;
  /** Runtime: a restart loses the last term/vote change (the vote was never fsynced). */
  readonly forgetVote?: boolean;
  /** Core: followers ignore leader stickiness, so a leader lease no longer excludes a new leader. */
  readonly leaseNoStickiness?: boolean;
  /** Core: commit an entry of a previous term by counting replicas (Raft Figure 8). */
  readonly commitOldTerm?: boolean;
  /**
   * Runtime, asynchronous writes: report a write durable (persisted(), and
   * send its `messages`) as soon as it is handed to the disk instead of when
   * its fsync completes. No effect on seeds in synchronous mode.
   */
  readonly asyncAckOnIssue?: boolean;
  /**
   * Runtime, asynchronous writes: a Ready that needs no fsync sends its
   * `messages` at once instead of after the writes issued before it (e.g. an
   * ack for entries that arrived twice, still in flight from the first time).
   */
  readonly asyncUnorderedAcks?: boolean;
  /** Core: a Ready whose only durable change is new entries says it needs no fsync. */
  readonly syncSkipsEntries?: boolean;
}

export const BUG_NAMES = [
  "sendBeforePersist",
  "forgetVote",
  "leaseNoStickiness",
  "commitOldTerm",
  "asyncAckOnIssue",
  "asyncUnorderedAcks",
  "syncSkipsEntries",
] as const;
export type BugName = (typeof BUG_NAMES)[number];

export function bugsFromNames(names: readonly string[]): BugSwitches {
  const out: Record<string, boolean> = {};
  for (const n of names) {
    if (!(BUG_NAMES as readonly string[]).includes(n)) {
      throw new Error(`unknown bug switch ${n} (one of ${BUG_NAMES.join(", ")})`);
    }
    out[n] = true;
  }
  return out as BugSwitches;
}

export function bugNames(b: BugSwitches): BugName[] {
  return BUG_NAMES.filter((n) => b[n] === true);
}

/** Applies the core-side switches to one node's protocol state. */
export function patchCore(raw: RawNode, bugs: BugSwitches): void {
  const r = raw.internals;
  if (bugs.syncSkipsEntries) {
    const ready = raw.ready.bind(raw);
    let hard = r.hardState();
    raw.ready = () => {
      const rd = ready();
      const termOrVote =
        rd.hardState !== null && (rd.hardState.term !== hard.term || rd.hardState.vote !== hard.vote);
      if (rd.hardState) hard = rd.hardState;
      // The entries are written, but the Ready says no fsync is needed for them.
      if (rd.entries.length > 0 && !termOrVote && !rd.snapshot) return { ...rd, mustSync: false };
      return rd;
    };
  }
  if (bugs.leaseNoStickiness) {
    r.inLease = () => false;
  }
  if (bugs.commitOldTerm) {
    const log = r.log;
    // Counts replicas of any term: the rule Raft §5.4.2 forbids.
    log.maybeCommit = (index: number, _term: number): boolean => {
      if (index <= log.committed) return false;
      log.commitTo(index);
      return true;
    };
  }
}
