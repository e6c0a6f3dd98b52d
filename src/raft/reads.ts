/**
 * Linearizable reads without writing to the log (Raft thesis §6.4):
 * ReadIndex (one heartbeat round shared by all waiting reads) and leader
 * leases (served at once while a quorum acknowledged a round sent less than
 * `leaseTicks` ago — safe because followers that acknowledged it ignore votes
 * for at least electionTick - 1 tick intervals, and leaseTicks <= electionTick - 2
 * leaves a tick of margin for clock drift).
 */

import { ReadDroppedError, ResourceExhaustedError } from "../errors.ts";
import { bcastHeartbeat } from "./leader.ts";
import type { Raft } from "./raft.ts";
import { NONE, type NodeId, type ReadIndexMessage, type ReadIndexResponseMessage } from "./types.ts";

export type ReadMode = "safe" | "lease";

/** Entry point for a local read. Throws when it cannot even be attempted. */
export function readIndex(r: Raft, ctx: string, mode: ReadMode): void {
  if (r.role === "leader") {
    if (r.reads.full()) throw new ResourceExhaustedError("read queue", r.cfg.maxPendingReads);
    leaderRead(r, ctx, r.id, mode);
    return;
  }
  if (r.lead === NONE) throw new ReadDroppedError("no-leader");
  if (r.forwardedReads.size >= r.cfg.maxPendingReads) {
    throw new ResourceExhaustedError("forwarded read queue", r.cfg.maxPendingReads);
  }
  if (r.forwardedReads.has(ctx)) throw new ReadDroppedError("not-leader", `duplicate read ctx ${ctx}`);
  r.forwardedReads.set(ctx, r.lead);
  r.send({ type: "readIndex", from: r.id, to: r.lead, term: r.term, ctx });
}

/** A follower forwarded a read to us. */
export function handleReadIndexRequest(r: Raft, m: ReadIndexMessage): void {
  if (r.role !== "leader" || r.reads.full()) {
    r.send({
      type: "readIndexResp",
      from: r.id,
      to: m.from,
      term: r.term,
      ctx: m.ctx,
      index: 0,
      reject: true,
    });
    return;
  }
  leaderRead(r, m.ctx, m.from, "safe");
}

/** The leader answered a read we forwarded. */
export function handleReadIndexResponse(r: Raft, m: ReadIndexResponseMessage): void {
  if (!r.forwardedReads.delete(m.ctx)) return;
  if (m.reject) r.droppedReads.push({ ctx: m.ctx, reason: "not-leader" });
  else r.readStates.push({ index: m.index, ctx: m.ctx });
}

function leaderRead(r: Raft, ctx: string, from: NodeId, mode: ReadMode): void {
  // A new leader does not know the commit index until it commits an entry of its term.
  if (!r.committedInTerm()) {
    r.reads.deferUntilCommitInTerm(ctx, from);
    return;
  }
  if (mode === "lease" && leaseValid(r)) {
    release(r, ctx, r.log.committed, from);
    return;
  }
  r.reads.add(ctx, r.log.committed, from);
  if (r.readRoundInFlight === 0) startReadRound(r);
}

/** A periodic heartbeat round was just sent: reads waiting for a round ride on it. */
export function attachWaitingReads(r: Raft): void {
  if (!r.reads.hasUnassigned()) return;
  r.reads.assign(r.round);
  r.readRoundInFlight = r.round;
  onRoundAcknowledged(r);
}

function startReadRound(r: Raft): void {
  bcastHeartbeat(r);
  r.reads.assign(r.round);
  r.readRoundInFlight = r.round;
  onRoundAcknowledged(r);
}

/** A heartbeat round was acknowledged (or the config changed): release confirmed reads, refresh the lease. */
export function onRoundAcknowledged(r: Raft): void {
  if (r.role !== "leader") return;
  const q = r.tracker.quorumAckedRound();
  if (Number.isFinite(q) && q > r.confirmedRound) {
    r.confirmedRound = q;
    if (q >= r.leaseMinRound) r.leaseBaseTick = r.roundSentTick.get(q) ?? Number.NEGATIVE_INFINITY;
    for (const round of r.roundSentTick.keys()) if (round < q) r.roundSentTick.delete(round);
  }
  for (const read of r.reads.confirm(r.confirmedRound)) release(r, read.ctx, read.index, read.from);
  if (r.readRoundInFlight !== 0 && r.confirmedRound >= r.readRoundInFlight) r.readRoundInFlight = 0;
  if (r.readRoundInFlight === 0 && r.reads.hasUnassigned()) startReadRound(r);
}

/** Rounds sent before a membership change prove nothing about the new quorum: the lease restarts. */
export function invalidateLease(r: Raft): void {
  r.leaseBaseTick = Number.NEGATIVE_INFINITY;
  // Never lower the bar: it may be disabled for the whole term (disableLeaseForTerm).
  r.leaseMinRound = Math.max(r.leaseMinRound, r.round + 1);
}

/** No round of this term may extend the lease any more (reset() re-enables it for the next term). */
export function disableLeaseForTerm(r: Raft): void {
  r.leaseBaseTick = Number.NEGATIVE_INFINITY;
  r.leaseMinRound = Number.POSITIVE_INFINITY;
}

export function leaseValid(r: Raft): boolean {
  return (
    r.cfg.leaseTicks > 0 &&
    r.role === "leader" &&
    r.leadTransferee === NONE &&
    r.committedInTerm() &&
    r.leaseBaseTick + r.cfg.leaseTicks > r.ticks
  );
}

function release(r: Raft, ctx: string, index: number, from: NodeId): void {
  if (from === r.id) r.readStates.push({ index, ctx });
  else r.send({ type: "readIndexResp", from: r.id, to: from, term: r.term, ctx, index, reject: false });
}
