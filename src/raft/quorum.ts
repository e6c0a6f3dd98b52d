/**
 * Quorum math. A majority configuration is a set of voters; a joint
 * configuration is two of them (incoming, outgoing) and needs a majority of
 * each. Pure functions over plain data: property-tested in test/raft/quorum.
 */

import type { NodeId } from "./types.ts";

export type VoteResult = "pending" | "lost" | "won";

/**
 * The largest index acknowledged by a majority of `voters`, given each voter's
 * acknowledged index (missing = 0). An empty configuration returns +Infinity
 * so that it never constrains a joint configuration (`min` with the other half).
 */
export function majorityCommitted(
  voters: ReadonlySet<NodeId>,
  acked: (id: NodeId) => number | undefined,
): number {
  const n = voters.size;
  if (n === 0) return Number.POSITIVE_INFINITY;
  // Small configurations dominate (3, 5, 7 voters): a sort of n numbers is cheap.
  const values: number[] = [];
  for (const id of voters) values.push(acked(id) ?? 0);
  values.sort((a, b) => b - a);
  // With values sorted descending, the (q-1)th value is acknowledged by q voters.
  return values[Math.floor(n / 2)]!;
}

/** Whether `votes` (true = granted) decide an election among `voters`. An empty config has won. */
export function majorityVoteResult(
  voters: ReadonlySet<NodeId>,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  if (voters.size === 0) return "won";
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(voters.size / 2) + 1;
  if (granted >= q) return "won";
  if (granted + missing >= q) return "pending";
  return "lost";
}

/** A joint configuration: `outgoing` is empty outside joint consensus. */
export interface JointVoters {
  readonly incoming: ReadonlySet<NodeId>;
  readonly outgoing: ReadonlySet<NodeId>;
}

export function jointCommitted(voters: JointVoters, acked: (id: NodeId) => number | undefined): number {
  return Math.min(majorityCommitted(voters.incoming, acked), majorityCommitted(voters.outgoing, acked));
}

export function jointVoteResult(voters: JointVoters, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const a = majorityVoteResult(voters.incoming, votes);
  const b = majorityVoteResult(voters.outgoing, votes);
  if (a === b) return a;
  if (a === "lost" || b === "lost") return "lost";
  return "pending";
}

/** All voter ids of a (possibly joint) configuration, ascending. */
export function jointIds(voters: JointVoters): NodeId[] {
  const ids = new Set<NodeId>(voters.incoming);
  for (const id of voters.outgoing) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}
