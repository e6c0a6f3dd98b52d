/**
 * Membership changes: the rules of joint consensus and of single-server
 * changes, as pure functions from (configuration, progress) to a new
 * (configuration, progress). Invalid changes throw {@link ConfChangeError}.
 */

import { ConfChangeError, invariant } from "../errors.ts";
import { Progress } from "./progress.ts";
import { isJoint, type ProgressMap, type TrackerConfig } from "./tracker.ts";
import {
  type ConfChange,
  type ConfChangeSingle,
  ConfChangeType,
  type ConfState,
  type NodeId,
} from "./types.ts";

export interface ChangerContext {
  /** The leader's last log index: new members start probing from here. */
  readonly lastIndex: number;
  readonly maxInflightMsgs: number;
  readonly maxInflightBytes: number;
}

interface MutableConfig {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

export interface ChangeResult {
  readonly config: TrackerConfig;
  readonly progress: ProgressMap;
}

/** Whether `cc` must go through a joint configuration (and if so, whether it leaves automatically). */
export function changeMode(cc: ConfChange): { joint: boolean; autoLeave: boolean } {
  if (cc.changes.length === 0) return { joint: false, autoLeave: false };
  const joint = cc.transition !== "auto" || cc.changes.length > 1;
  return { joint, autoLeave: joint && cc.transition !== "explicit" };
}

/** Applies `cc` to the configuration; the result is validated before it is returned. */
export function applyConfChange(
  cfg: TrackerConfig,
  prs: ProgressMap,
  cc: ConfChange,
  ctx: ChangerContext,
): ChangeResult {
  if (cc.changes.length === 0) return leaveJoint(cfg, prs, ctx);
  const mode = changeMode(cc);
  return mode.joint
    ? enterJoint(cfg, prs, mode.autoLeave, cc.changes, ctx)
    : simple(cfg, prs, cc.changes, ctx);
}

export function enterJoint(
  cfg: TrackerConfig,
  prs: ProgressMap,
  autoLeave: boolean,
  changes: readonly ConfChangeSingle[],
  ctx: ChangerContext,
): ChangeResult {
  if (isJoint(cfg)) throw new ConfChangeError("config is already joint");
  if (cfg.incoming.size === 0) throw new ConfChangeError("cannot make a zero-voter config joint");
  const c = clone(cfg);
  const p = new Map(prs);
  c.outgoing = new Set(c.incoming);
  apply(c, p, changes, ctx);
  c.autoLeave = autoLeave;
  return finish(c, p);
}

export function leaveJoint(cfg: TrackerConfig, prs: ProgressMap, ctx: ChangerContext): ChangeResult {
  if (!isJoint(cfg)) throw new ConfChangeError("cannot leave a non-joint config");
  const c = clone(cfg);
  const p = new Map(prs);
  for (const id of c.learnersNext) {
    c.learners.add(id);
    const pr = p.get(id);
    invariant(pr, `learnerNext ${id} has no progress`);
    // A copy: `prs` is the live map, and proposing a change only tries it out.
    p.set(id, copyProgress(pr, true, ctx));
  }
  c.learnersNext.clear();
  for (const id of c.outgoing) {
    if (!c.incoming.has(id) && !c.learners.has(id)) p.delete(id);
  }
  c.outgoing.clear();
  c.autoLeave = false;
  return finish(c, p);
}

export function simple(
  cfg: TrackerConfig,
  prs: ProgressMap,
  changes: readonly ConfChangeSingle[],
  ctx: ChangerContext,
): ChangeResult {
  if (isJoint(cfg)) throw new ConfChangeError("cannot apply a simple config change in a joint config");
  const c = clone(cfg);
  const p = new Map(prs);
  apply(c, p, changes, ctx);
  let diff = 0;
  for (const id of c.incoming) if (!cfg.incoming.has(id)) diff++;
  for (const id of cfg.incoming) if (!c.incoming.has(id)) diff++;
  if (diff > 1) throw new ConfChangeError("more than one voter changed without entering a joint config");
  return finish(c, p);
}

/** Rebuilds a configuration from a persisted ConfState (start-up, snapshot install). */
export function restoreConfState(cs: ConfState, ctx: ChangerContext): ChangeResult {
  const empty: TrackerConfig = {
    incoming: new Set(),
    outgoing: new Set(),
    learners: new Set(),
    learnersNext: new Set(),
    autoLeave: false,
  };
  const add = (ids: readonly NodeId[], type: ConfChangeType) => ids.map((nodeId) => ({ type, nodeId }));
  if (cs.votersOutgoing.length === 0) {
    return simpleUnchecked(
      empty,
      new Map(),
      [...add(cs.voters, ConfChangeType.AddNode), ...add(cs.learners, ConfChangeType.AddLearner)],
      ctx,
    );
  }
  // Build the outgoing config first, then enter the joint config with the incoming one.
  const out = simpleUnchecked(empty, new Map(), add(cs.votersOutgoing, ConfChangeType.AddNode), ctx);
  const changes = [
    // The incoming voters replace the outgoing ones: remove all, then add.
    ...add(cs.votersOutgoing, ConfChangeType.RemoveNode),
    ...add(cs.voters, ConfChangeType.AddNode),
    ...add(cs.learners, ConfChangeType.AddLearner),
    ...add(cs.learnersNext, ConfChangeType.AddLearner),
  ];
  return enterJoint(out.config, out.progress, cs.autoLeave, changes, ctx);
}

function simpleUnchecked(
  cfg: TrackerConfig,
  prs: ProgressMap,
  changes: readonly ConfChangeSingle[],
  ctx: ChangerContext,
): ChangeResult {
  const c = clone(cfg);
  const p = new Map(prs);
  apply(c, p, changes, ctx);
  return finish(c, p, true);
}

function apply(
  c: MutableConfig,
  p: ProgressMap,
  changes: readonly ConfChangeSingle[],
  ctx: ChangerContext,
): void {
  for (const ch of changes) {
    if (!Number.isSafeInteger(ch.nodeId) || ch.nodeId <= 0) {
      throw new ConfChangeError(`invalid node id ${ch.nodeId}`);
    }
    switch (ch.type) {
      case ConfChangeType.AddNode:
        makeVoter(c, p, ch.nodeId, ctx);
        break;
      case ConfChangeType.AddLearner:
        makeLearner(c, p, ch.nodeId, ctx);
        break;
      case ConfChangeType.RemoveNode:
        remove(c, p, ch.nodeId);
        break;
      default:
        throw new ConfChangeError(`unknown conf change type ${String((ch as ConfChangeSingle).type)}`);
    }
  }
}

function makeVoter(c: MutableConfig, p: ProgressMap, id: NodeId, ctx: ChangerContext): void {
  const pr = p.get(id);
  if (!pr) {
    p.set(id, newProgress(ctx, false));
  } else {
    // Progress objects are shared with the old map: replace, never mutate in place.
    p.set(id, copyProgress(pr, false, ctx));
  }
  c.learners.delete(id);
  c.learnersNext.delete(id);
  c.incoming.add(id);
}

function makeLearner(c: MutableConfig, p: ProgressMap, id: NodeId, ctx: ChangerContext): void {
  const pr = p.get(id);
  if (!pr) {
    p.set(id, newProgress(ctx, true));
    c.learners.add(id);
    return;
  }
  if (pr.isLearner) return;
  remove(c, p, id);
  // A voter of the outgoing config cannot become a learner while it still votes there.
  if (c.outgoing.has(id)) {
    p.set(id, copyProgress(pr, false, ctx));
    c.learnersNext.add(id);
  } else {
    p.set(id, copyProgress(pr, true, ctx));
    c.learners.add(id);
  }
}

function remove(c: MutableConfig, p: ProgressMap, id: NodeId): void {
  if (!p.has(id)) return;
  c.incoming.delete(id);
  c.learners.delete(id);
  c.learnersNext.delete(id);
  if (!c.outgoing.has(id)) p.delete(id);
}

function newProgress(ctx: ChangerContext, isLearner: boolean): Progress {
  return new Progress(Math.max(ctx.lastIndex, 1), isLearner, ctx.maxInflightMsgs, ctx.maxInflightBytes);
}

function copyProgress(pr: Progress, isLearner: boolean, ctx: ChangerContext): Progress {
  const copy = new Progress(pr.next, isLearner, ctx.maxInflightMsgs, ctx.maxInflightBytes);
  copy.match = pr.match;
  copy.recentActive = pr.recentActive;
  copy.ackedRound = pr.ackedRound;
  // State restarts in probe: the inflight window cannot be copied faithfully.
  copy.next = pr.match + 1;
  return copy;
}

function clone(cfg: TrackerConfig): MutableConfig {
  return {
    incoming: new Set(cfg.incoming),
    outgoing: new Set(cfg.outgoing),
    learners: new Set(cfg.learners),
    learnersNext: new Set(cfg.learnersNext),
    autoLeave: cfg.autoLeave,
  };
}

function finish(c: MutableConfig, p: ProgressMap, allowEmpty = false): ChangeResult {
  if (!allowEmpty && c.incoming.size === 0) throw new ConfChangeError("removed all voters");
  checkInvariants(c, p);
  return { config: c, progress: p };
}

function checkInvariants(c: MutableConfig, p: ProgressMap): void {
  for (const set of [c.incoming, c.outgoing, c.learners, c.learnersNext]) {
    for (const id of set) invariant(p.has(id), `member ${id} has no progress`);
  }
  for (const id of c.learnersNext) {
    invariant(c.outgoing.has(id), `learnerNext ${id} is not an outgoing voter`);
    invariant(!p.get(id)!.isLearner, `learnerNext ${id} is marked learner`);
  }
  for (const id of c.learners) {
    invariant(!c.incoming.has(id) && !c.outgoing.has(id), `learner ${id} is also a voter`);
    invariant(p.get(id)!.isLearner, `learner ${id} is not marked learner`);
  }
  if (c.outgoing.size === 0) {
    invariant(c.learnersNext.size === 0, "learnersNext outside a joint config");
    invariant(!c.autoLeave, "autoLeave outside a joint config");
  }
  for (const [id, pr] of p) {
    const member = c.incoming.has(id) || c.outgoing.has(id) || c.learners.has(id);
    invariant(member, `progress for non-member ${id}`);
    if (pr.isLearner) invariant(c.learners.has(id), `${id} marked learner but not in learners`);
  }
}
