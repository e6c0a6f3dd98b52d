/**
 * The single entry point for messages from peers: term checks common to all
 * roles (Raft Figure 2, "Rules for all servers"), then the role's handler.
 */

import { stepCandidate, stepFollower } from "./follower.ts";
import { stepLeader } from "./leader.ts";
import type { Raft } from "./raft.ts";
import { type Message, NONE } from "./types.ts";

export function step(r: Raft, m: Message): void {
  if (m.term > r.term) {
    if (m.type === "vote" || m.type === "preVote") {
      // Leader stickiness: while we hear from a live leader, a higher-term
      // candidate is ignored, unless the leader itself asked for the transfer.
      if (!m.transfer && r.inLease()) {
        r.cfg.logger?.debug({ id: r.id, from: m.from, term: m.term }, "ignored vote request: leader is live");
        return;
      }
    }
    if (m.type === "preVote") {
      // A pre-vote never changes our term.
    } else if (m.type === "preVoteResp" && !m.reject) {
      // A granted pre-vote carries the term we would campaign for; counted in stepCandidate.
    } else if (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot") {
      r.becomeFollower(m.term, m.from);
    } else {
      r.becomeFollower(m.term, NONE);
    }
  } else if (m.term < r.term) {
    if ((r.cfg.checkQuorum || r.cfg.preVote) && (m.type === "append" || m.type === "heartbeat")) {
      // A stale leader (e.g. after a partition) learns our term and steps down;
      // without this it could keep disrupting a pre-vote/check-quorum cluster.
      r.send({
        type: "appendResp",
        from: r.id,
        to: m.from,
        term: r.term,
        index: 0,
        reject: false,
        hintIndex: 0,
        hintTerm: 0,
      });
    } else if (m.type === "preVote") {
      r.send({ type: "preVoteResp", from: r.id, to: m.from, term: r.term, reject: true });
    }
    return;
  }

  if (m.type === "vote" || m.type === "preVote") {
    r.handleVoteRequest(m);
    return;
  }
  switch (r.role) {
    case "leader":
      stepLeader(r, m);
      return;
    case "candidate":
    case "preCandidate":
      stepCandidate(r, m);
      return;
    case "follower":
      stepFollower(r, m);
      return;
  }
}
