/**
 * Compact, stable text forms of the core's data for transcript tests. One
 * message or entry per short line fragment, so a reviewer holding the Raft
 * paper can check every step.
 */

import { decodeConfChange } from "../../../src/raft/confchange-codec.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type Message,
} from "../../../src/raft/types.ts";

const decoder = new TextDecoder();

const CC_NAMES: Record<number, string> = {
  [ConfChangeType.AddNode]: "add-node",
  [ConfChangeType.AddLearner]: "add-learner",
  [ConfChangeType.RemoveNode]: "remove-node",
};

export function fmtConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return "leave-joint";
  const parts = cc.changes.map((c) => `${CC_NAMES[c.type]} ${c.nodeId}`);
  return `${parts.join(", ")}${cc.transition === "auto" ? "" : ` (${cc.transition})`}`;
}

/** `index/term` then the payload: nothing for an empty entry, a quoted string, or a conf change. */
export function fmtEntry(e: Entry): string {
  const id = `${e.index}/${e.term}`;
  if (e.type === EntryType.ConfChange) return `${id} conf(${fmtConfChange(decodeConfChange(e.data))})`;
  if (e.data.length === 0) return id;
  return `${id} ${JSON.stringify(decoder.decode(e.data))}`;
}

export function fmtEntries(ents: readonly Entry[]): string {
  return ents.map(fmtEntry).join(", ");
}

const ids = (xs: readonly number[]) => xs.join(",");

export function fmtConfState(cs: ConfState): string {
  let s = `voters=(${ids(cs.voters)})`;
  if (cs.votersOutgoing.length > 0) s += `&&(${ids(cs.votersOutgoing)})`;
  if (cs.learners.length > 0) s += ` learners=(${ids(cs.learners)})`;
  if (cs.learnersNext.length > 0) s += ` learners_next=(${ids(cs.learnersNext)})`;
  if (cs.autoLeave) s += " autoleave";
  return s;
}

export function fmtMsg(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t=${m.term}`;
  switch (m.type) {
    case "append":
      return `${head} prev=${m.prevIndex}/${m.prevTerm} commit=${m.commit} ents=[${fmtEntries(m.entries)}]`;
    case "appendResp":
      return m.reject
        ? `${head} reject index=${m.index} hint=${m.hintIndex}/${m.hintTerm}`
        : `${head} index=${m.index}`;
    case "vote":
    case "preVote":
      return `${head} last=${m.lastIndex}/${m.lastTerm}${m.transfer ? " transfer" : ""}`;
    case "voteResp":
    case "preVoteResp":
      return `${head}${m.reject ? " reject" : ""}`;
    case "snapshot": {
      const md = m.snapshot.metadata;
      return `${head} snap=${md.index}/${md.term} ${fmtConfState(md.confState)}`;
    }
    case "heartbeat":
      return `${head} commit=${m.commit} round=${m.round}`;
    case "heartbeatResp":
      return `${head} round=${m.round}`;
    case "timeoutNow":
      return head;
    case "readIndex":
      return `${head} ctx=${m.ctx}`;
    case "readIndexResp":
      return m.reject ? `${head} ctx=${m.ctx} reject` : `${head} ctx=${m.ctx} index=${m.index}`;
    case "transferLeader":
      return `${head} target=${m.target}`;
  }
}
