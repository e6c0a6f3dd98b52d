/**
 * Membership changes on a running node (Raft thesis §4): proposing them (one
 * at a time), applying them when their entry is applied, stepping down when
 * the leader is removed, and leaving a joint configuration automatically.
 */

import { ConfChangeError, ProposalDroppedError } from "../errors.ts";
import { applyConfChange } from "./confchange.ts";
import { decodeConfChange, encodeConfChange } from "./confchange-codec.ts";
import { bcastHeartbeat, maybeCommit, sendAppend } from "./leader.ts";
import type { Raft } from "./raft.ts";
import { invalidateLease, onRoundAcknowledged } from "./reads.ts";
import { confStateOf, isJoint } from "./tracker.ts";
import { type ConfChange, type ConfState, type Entry, EntryType, NONE } from "./types.ts";

export function proposeConfChange(r: Raft, cc: ConfChange): { index: number; term: number } {
  r.checkCanPropose();
  if (r.pendingConfIndex > r.log.applied) {
    throw new ProposalDroppedError("conf-change-pending", `entry ${r.pendingConfIndex} is not applied yet`);
  }
  const joint = isJoint(r.tracker.config);
  if (cc.changes.length === 0 && !joint)
    throw new ConfChangeError("not in a joint configuration: nothing to leave");
  if (cc.changes.length > 0 && joint) {
    throw new ConfChangeError("in a joint configuration: leave it before the next change");
  }
  // Dry run against the current configuration: an invalid change never reaches the log.
  applyConfChange(r.tracker.config, r.tracker.progress, cc, r.changerContext());
  return appendConfChange(r, cc, true);
}

function appendConfChange(r: Raft, cc: ConfChange, limited: boolean): { index: number; term: number } {
  const data = encodeConfChange(cc);
  if (limited && !r.increaseUncommittedSize(data.length))
    throw new ProposalDroppedError("uncommitted-size-exceeded");
  const entry: Entry = { term: r.term, index: r.log.lastIndex() + 1, type: EntryType.ConfChange, data };
  r.log.append([entry]);
  r.pendingConfIndex = entry.index;
  r.needsBroadcast = true;
  return { index: entry.index, term: entry.term };
}

/** Applies a committed ConfChange entry, in log order, as the application applies it. */
export function applyConfChangeEntry(r: Raft, e: Entry): ConfState {
  const cc = decodeConfChange(e.data);
  const result = applyConfChange(r.tracker.config, r.tracker.progress, cc, r.changerContext());
  r.tracker.config = result.config;
  r.tracker.progress = result.progress;
  r.configIndex = e.index;
  invalidateLease(r);
  const cs = confStateOf(r.tracker.config);
  if (r.role !== "leader") return cs;
  if (!r.tracker.isVoter(r.id)) {
    // A removed (or demoted) leader steps down once its removal is applied. First it tells the
    // others that the removal committed: that news would otherwise ride on its next append
    // (deferred commit broadcast), which never comes, and the members left would wait for it
    // forever (the survivor of two voters would never campaign).
    r.cfg.logger?.info({ id: r.id, term: r.term }, "stepping down: removed from the configuration");
    bcastHeartbeat(r);
    r.becomeFollower(r.term, NONE);
    return cs;
  }
  if (r.leadTransferee !== NONE && !r.tracker.isVoter(r.leadTransferee)) r.leadTransferee = NONE;
  // The quorum changed: the commit index and confirmed reads may move; new members need probes.
  if (maybeCommit(r)) r.commitBroadcast = true;
  for (const id of r.tracker.memberIds()) if (id !== r.id) sendAppend(r, id, false);
  onRoundAcknowledged(r);
  return cs;
}

/** A leader in a joint configuration with autoLeave proposes leaving it once the entry is applied. */
export function maybeAutoLeave(r: Raft): void {
  if (r.role !== "leader" || !r.tracker.config.autoLeave || r.log.applied < r.pendingConfIndex) return;
  if (r.leadTransferee !== NONE) return;
  appendConfChange(r, { changes: [], transition: "auto", context: new Uint8Array(0) }, false);
}
