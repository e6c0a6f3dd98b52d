/**
 * The leader's view of one follower's log.
 *
 *                 +--------------------------------------------------------+
 *                 |                  send snapshot                         |
 *                 |                                                        v
 *   +-------------+   append accepted   +-----------------+  reject /  +-------------+
 *   |    probe    | ------------------> |    replicate    |  unreachable|  snapshot   |
 *   | one message | <------------------ | pipelined, up to| ----------> | waits for   |
 *   | per beat    |   reject / unreach. | maxInflight msgs|   (probe)   | reportSnap. |
 *   +-------------+                     +-----------------+             +-------------+
 *          ^                                                                   |
 *          +------------------- snapshot reported (ok or failed) --------------+
 *
 * probe: the leader does not know where the follower's log matches; it sends
 *   one append at a time and waits (a heartbeat response unpauses it).
 * replicate: the match is known; `next` advances optimistically as appends
 *   are sent, bounded by the inflight window.
 * snapshot: the follower needs a snapshot; no appends until it is reported.
 */

import { invariant } from "../errors.ts";
import { Inflights } from "./inflights.ts";
import type { ProgressState } from "./types.ts";

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = "probe";
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum pass. */
  recentActive: boolean;
  /** In probe state: an append was sent and we wait for an answer (or a heartbeat response). */
  msgAppFlowPaused = false;
  isLearner: boolean;
  /** The newest heartbeat round this follower acknowledged (this term). */
  ackedRound = 0;
  readonly inflights: Inflights;

  constructor(next: number, isLearner: boolean, maxInflightMsgs: number, maxInflightBytes: number) {
    this.next = next;
    this.isLearner = isLearner;
    this.recentActive = true;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // Coming back from a snapshot, the follower has at least the snapshot.
    if (this.state === "snapshot") {
      const pending = this.pendingSnapshot;
      this.resetState("probe");
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState("probe");
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState("replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /** Called after an append carrying entries up to `lastIndex` (or none) was sent. */
  sentEntries(count: number, lastIndex: number, bytes: number): void {
    if (this.state === "replicate") {
      if (count > 0) {
        invariant(lastIndex >= this.next, "progress: sent entries below next");
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === "probe") {
      this.msgAppFlowPaused = true;
    } else {
      invariant(false, "progress: sending entries in snapshot state");
    }
  }

  /** The follower acknowledged `n`. Returns whether `match` moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * The follower rejected an append at `rejected`; `matchHint` is where the
   * logs may match. Returns false for a stale rejection (ignored).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the rejection of the last probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.msgAppFlowPaused;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }
}
