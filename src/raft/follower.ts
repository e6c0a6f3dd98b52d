/**
 * The rules of followers and candidates: accept appends that match (Raft
 * §5.3), install snapshots (§7), count votes (§5.2), and campaign at once on a
 * leader's TimeoutNow (thesis §3.10).
 */

import { restoreConfState } from "./confchange.ts";
import type { Raft } from "./raft.ts";
import { handleReadIndexRequest, handleReadIndexResponse } from "./reads.ts";
import type { AppendMessage, HeartbeatMessage, Message, SnapshotMessage } from "./types.ts";

export function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case "append":
      heardFromLeader(r, m.from);
      handleAppend(r, m);
      return;
    case "heartbeat":
      heardFromLeader(r, m.from);
      handleHeartbeat(r, m);
      return;
    case "snapshot":
      heardFromLeader(r, m.from);
      handleSnapshot(r, m);
      return;
    case "transferLeader":
      // Only the leader can transfer leadership: pass the request on.
      if (r.lead !== 0) r.send({ ...m, from: r.id, to: r.lead, term: r.term });
      return;
    case "timeoutNow":
      // The leader chose us: campaign now, skipping pre-vote and stickiness.
      r.hup("transfer");
      return;
    case "readIndex":
      handleReadIndexRequest(r, m);
      return;
    case "readIndexResp":
      handleReadIndexResponse(r, m);
      return;
    default:
      return;
  }
}

export function stepCandidate(r: Raft, m: Message): void {
  switch (m.type) {
    case "append":
    case "heartbeat":
    case "snapshot":
      // A leader of our term exists: follow it, and handle its message as a follower does.
      r.becomeFollower(m.term, m.from);
      stepFollower(r, m);
      return;
    case "voteResp":
    case "preVoteResp": {
      // Only answers to the current phase count.
      const expected = r.role === "preCandidate" ? "preVoteResp" : "voteResp";
      if (m.type !== expected) return;
      // A granted pre-vote names the term it was asked for: one from an earlier round,
      // whose term we have reached since, grants nothing to this one.
      if (m.type === "preVoteResp" && !m.reject && m.term !== r.term + 1) return;
      r.tracker.recordVote(m.from, !m.reject);
      const { result } = r.tracker.tallyVotes();
      if (result === "won") {
        if (r.role === "preCandidate") r.campaign("election");
        else {
          r.becomeLeader();
        }
      } else if (result === "lost") {
        r.becomeFollower(r.term, 0);
      }
      return;
    }
    case "readIndex":
      handleReadIndexRequest(r, m);
      return;
    default:
      return;
  }
}

function heardFromLeader(r: Raft, leader: number): void {
  r.electionElapsed = 0;
  r.leaderContactElapsed = 0;
  r.setLead(leader);
}

/** Acknowledges that our log matches the leader's up to `index`. */
function ackAppend(r: Raft, to: number, index: number): void {
  r.send({
    type: "appendResp",
    from: r.id,
    to,
    term: r.term,
    index,
    reject: false,
    hintIndex: 0,
    hintTerm: 0,
  });
}

/** AppendEntries receiver (Raft Figure 2). */
export function handleAppend(r: Raft, m: AppendMessage): void {
  if (m.prevIndex < r.log.committed) {
    // Everything up to our commit index matches any leader's log: say how far we are.
    ackAppend(r, m.from, r.log.committed);
    return;
  }
  const lastNew = r.log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, m.entries);
  if (lastNew !== null) {
    ackAppend(r, m.from, lastNew);
    return;
  }
  // Mismatch: hint the largest index whose term is <= the leader's prevTerm, so it can skip whole terms.
  const hint = r.log.findConflictByTerm(Math.min(m.prevIndex, r.log.lastIndex()), m.prevTerm);
  r.send({
    type: "appendResp",
    from: r.id,
    to: m.from,
    term: r.term,
    index: m.prevIndex,
    reject: true,
    hintIndex: hint.index,
    hintTerm: hint.term,
  });
}

export function handleHeartbeat(r: Raft, m: HeartbeatMessage): void {
  r.log.commitTo(Math.min(m.commit, r.log.lastIndex()));
  r.send({ type: "heartbeatResp", from: r.id, to: m.from, term: r.term, round: m.round });
}

/** InstallSnapshot receiver (Raft §7). */
export function handleSnapshot(r: Raft, m: SnapshotMessage): void {
  if (restoreSnapshot(r, m)) {
    ackAppend(r, m.from, r.log.lastIndex());
  } else {
    const { index, term } = m.snapshot.metadata;
    r.cfg.logger?.debug({ id: r.id, index, term }, "ignored snapshot");
    ackAppend(r, m.from, r.log.committed);
  }
}

function restoreSnapshot(r: Raft, m: SnapshotMessage): boolean {
  const s = m.snapshot;
  const { index, term, confState } = s.metadata;
  if (index <= r.log.committed) return false;
  // A snapshot whose configuration does not include us is not for us.
  const cs = confState;
  const member = [cs.voters, cs.learners, cs.votersOutgoing].some((ids) => ids.includes(r.id));
  if (!member) {
    r.cfg.logger?.warn({ id: r.id, index }, "snapshot does not include this node in its configuration");
    return false;
  }
  if (r.log.matchTerm(index, term)) {
    // We already have the entry the snapshot ends with: just fast-forward the commit index.
    r.log.commitTo(index);
    return false;
  }
  r.log.restore(s);
  const restored = restoreConfState(confState, r.changerContext());
  r.tracker.config = restored.config;
  r.tracker.progress = restored.progress;
  r.configIndex = index;
  return true;
}
