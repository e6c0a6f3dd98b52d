/**
 * The leader's rules: replicate the log (Raft §5.3), advance the commit index
 * only by current-term quorum (§5.4.2), heartbeat rounds, snapshots for peers
 * behind the compaction point, and leadership transfer (thesis §3.10).
 */

import {
  CompactedError,
  ConfChangeError,
  InvariantError,
  SnapshotTemporarilyUnavailableError,
} from "../errors.ts";
import { entryBytes } from "./log.ts";
import type { Progress } from "./progress.ts";
import type { Raft } from "./raft.ts";
import { disableLeaseForTerm, handleReadIndexRequest, onRoundAcknowledged } from "./reads.ts";
import {
  type AppendResponseMessage,
  type HeartbeatResponseMessage,
  type Message,
  NONE,
  type NodeId,
} from "./types.ts";

export function stepLeader(r: Raft, m: Message): void {
  switch (m.type) {
    case "appendResp":
      handleAppendResponse(r, m);
      return;
    case "heartbeatResp":
      handleHeartbeatResponse(r, m);
      return;
    case "readIndex":
      handleReadIndexRequest(r, m);
      return;
    case "transferLeader":
      try {
        transferLeadership(r, m.target);
      } catch (e) {
        r.cfg.logger?.warn(
          { id: r.id, target: m.target, err: String(e) },
          "forwarded leader transfer refused",
        );
      }
      return;
    default:
      // Other messages of this term (e.g. a stale vote response) mean nothing to a leader.
      return;
  }
}

/**
 * Sends the entries `to` is missing (or a probe). Returns whether a message was sent.
 * A follower behind the compaction point gets a snapshot instead.
 */
export function sendAppend(r: Raft, to: NodeId, sendIfEmpty = true): boolean {
  const pr = r.tracker.progress.get(to);
  if (!pr || pr.isPaused()) return false;
  const prevIndex = pr.next - 1;
  let prevTerm: number;
  let entries: ReturnType<typeof r.log.entriesFrom>;
  try {
    prevTerm = r.log.term(prevIndex);
    entries = r.log.entriesFrom(pr.next, r.cfg.maxSizePerMsg);
  } catch (e) {
    if (e instanceof CompactedError) return sendSnapshot(r, to, pr);
    throw e;
  }
  if (entries.length === 0 && !sendIfEmpty) return false;
  let bytes = 0;
  for (const e of entries) bytes += entryBytes(e);
  r.send({
    type: "append",
    from: r.id,
    to,
    term: r.term,
    prevIndex,
    prevTerm,
    entries,
    commit: r.log.committed,
  });
  pr.sentEntries(entries.length, entries.length > 0 ? entries[entries.length - 1]!.index : prevIndex, bytes);
  return true;
}

function sendSnapshot(r: Raft, to: NodeId, pr: Progress): boolean {
  // A peer we have not heard from recently is probably down: don't ship it a snapshot.
  if (!pr.recentActive) return false;
  let snapshot: ReturnType<typeof r.log.snapshot>;
  try {
    snapshot = r.log.snapshot();
  } catch (e) {
    if (e instanceof SnapshotTemporarilyUnavailableError) return false;
    throw e;
  }
  if (snapshot.metadata.index === 0) throw new InvariantError("need a non-empty snapshot to send");
  pr.becomeSnapshot(snapshot.metadata.index);
  r.send({ type: "snapshot", from: r.id, to, term: r.term, snapshot });
  return true;
}

/** Sends appends to every peer; called once per Ready for all proposals since the last one. */
export function bcastAppend(r: Raft): void {
  r.needsBroadcast = false;
  r.commitBroadcast = false;
  for (const id of r.tracker.memberIds()) if (id !== r.id) sendAppend(r, id);
}

/** A heartbeat round: commit index to every peer, and a round number that reads and the lease wait on. */
export function bcastHeartbeat(r: Raft): void {
  r.round++;
  if (r.cfg.leaseTicks > 0) {
    r.roundSentTick.set(r.round, r.ticks);
    // Rounds sent leaseTicks ago or earlier can no longer extend the lease: without a
    // quorum's answer (and without check-quorum to end the term) they would pile up.
    for (const [round, tick] of r.roundSentTick) {
      if (tick + r.cfg.leaseTicks > r.ticks) break;
      r.roundSentTick.delete(round);
    }
  }
  const self = r.tracker.progress.get(r.id);
  if (self) self.ackedRound = r.round;
  for (const id of r.tracker.memberIds()) {
    if (id === r.id) continue;
    const pr = r.tracker.progress.get(id)!;
    // Never tell a follower to commit beyond what it is known to hold.
    const commit = Math.min(pr.match, r.log.committed);
    r.send({ type: "heartbeat", from: r.id, to: id, term: r.term, commit, round: r.round });
  }
}

function broadcastDue(r: Raft): boolean {
  return r.needsBroadcast || r.commitBroadcast;
}

/** Raft §5.4.2: commit the quorum-replicated index, but only if it is from the current term. */
export function maybeCommit(r: Raft): boolean {
  const index = r.tracker.committed();
  if (!Number.isFinite(index)) return false;
  if (!r.log.maybeCommit(index, r.term)) return false;
  r.reads.releaseDeferred(r.log.committed);
  if (r.reads.size > 0) onRoundAcknowledged(r);
  return true;
}

function handleAppendResponse(r: Raft, m: AppendResponseMessage): void {
  const pr = r.tracker.progress.get(m.from);
  if (!pr) return;
  pr.recentActive = true;
  if (m.reject) {
    // Fast backtracking: jump over a whole term of conflicting entries at once.
    let nextProbe = m.hintIndex;
    if (m.hintTerm > 0) nextProbe = r.log.findConflictByTerm(m.hintIndex, m.hintTerm).index;
    if (pr.maybeDecrTo(m.index, nextProbe)) {
      if (pr.state === "replicate") pr.becomeProbe();
      sendAppend(r, m.from);
    }
    return;
  }
  // An acknowledgment of more than this log holds is a faulty or hostile peer: counting it could
  // commit entries nobody has, and a progress past the log would fail every later send.
  if (m.index > r.log.lastIndex()) {
    r.cfg.logger?.warn(
      { id: r.id, from: m.from, index: m.index, lastIndex: r.log.lastIndex() },
      "ignored an append acknowledgment beyond the log",
    );
    return;
  }
  const wasPaused = pr.isPaused();
  if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === "probe")) {
    if (pr.state === "probe") pr.becomeReplicate();
    else if (pr.state === "snapshot" && pr.match + 1 >= r.log.firstIndex()) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === "replicate") pr.inflights.freeLE(m.index);

    if (maybeCommit(r)) r.commitBroadcast = true;
    else if (wasPaused && !broadcastDue(r)) sendAppend(r, m.from);
    // Keep the pipeline full (a broadcast due covers this peer).
    while (!broadcastDue(r) && sendAppend(r, m.from, false)) {}
    if (m.from === r.leadTransferee && pr.match === r.log.lastIndex()) sendTimeoutNow(r, m.from);
  }
}

function handleHeartbeatResponse(r: Raft, m: HeartbeatResponseMessage): void {
  const pr = r.tracker.progress.get(m.from);
  if (!pr) return;
  pr.recentActive = true;
  pr.msgAppFlowPaused = false;
  if (m.round > pr.ackedRound && m.round <= r.round) pr.ackedRound = m.round;
  // The follower is alive, but a full pipeline may be waiting on appends (or acks) that were lost:
  // nothing would ever be sent again. Free one slot, so the next append reaches the follower, which
  // rejects the gap and sends us back to probing (etcd's FreeFirstOne).
  if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
  if (pr.match < r.log.lastIndex()) sendAppend(r, m.from);
  onRoundAcknowledged(r);
}

/** Called by the runtime when entries up to the leader's own persisted index are durable. */
export function onLeaderPersisted(r: Raft): void {
  const self = r.tracker.progress.get(r.id);
  if (!self) return;
  if (self.maybeUpdate(r.log.persistedIndex()) && maybeCommit(r)) r.commitBroadcast = true;
}

// ---------------------------------------------------------------------------
// Leadership transfer (thesis §3.10)
// ---------------------------------------------------------------------------

export function transferLeadership(r: Raft, target: NodeId): void {
  if (target === r.id) return;
  const pr = r.tracker.progress.get(target);
  if (!pr || !r.tracker.isVoter(target)) {
    throw new ConfChangeError(`cannot transfer leadership to ${target}: not a voter`);
  }
  if (r.leadTransferee !== NONE) {
    if (r.leadTransferee === target) return;
    r.leadTransferee = NONE;
  }
  // The transfer must finish within an election timeout or is abandoned.
  r.electionElapsed = 0;
  r.leadTransferee = target;
  if (pr.match === r.log.lastIndex()) sendTimeoutNow(r, target);
  else sendAppend(r, target);
}

function sendTimeoutNow(r: Raft, to: NodeId): void {
  // The target may campaign whenever this message arrives, even long after the
  // transfer is abandoned, and its voters bypass stickiness for it: from now on
  // no heartbeat round of this term can prove that no other leader exists.
  disableLeaseForTerm(r);
  r.send({ type: "timeoutNow", from: r.id, to, term: r.term });
}
