/**
 * The fault scheduler: crashes and restarts, partitions and heals,
 * membership changes (add learner, promote, demote, remove, replace through a
 * joint configuration) and leader transfers, each kind at its own rate drawn
 * by the profile. The scheduler may be omniscient (it asks who leads); the
 * clients are not.
 */

import { ConfChangeError, InvalidArgumentError, NotLeaderError, ProposalDroppedError } from "../../errors.ts";
import {
  type ConfChange,
  type ConfChangeSingle,
  ConfChangeType,
  type ConfState,
  type NodeId,
} from "../../raft/types.ts";
import type { Prng } from "../prng.ts";
import type { SimNetwork } from "./network.ts";
import type { SimParams } from "./profile.ts";
import type { SimNode } from "./sim-node.ts";
import type { SimWorld } from "./world.ts";

export interface ChaosWorld extends SimWorld {
  readonly network: SimNetwork;
  crash(node: SimNode): void;
  restart(node: SimNode): void;
  /** Creates a new, empty, running node (a member to be). */
  createNode(): SimNode | null;
  /** The live leader of the highest term, if any. */
  leader(): SimNode | null;
}

export interface ChaosStats {
  crashes: number;
  partitions: number;
  confChanges: number;
  transfers: number;
}

/** Voters are kept within these bounds by the membership chaos. */
const VOTERS_MIN = 3;
const VOTERS_MAX = 7;
const MEMBERS_MAX = 9;

export class Chaos {
  private stopped = false;
  readonly stats: ChaosStats = { crashes: 0, partitions: 0, confChanges: 0, transfers: 0 };

  constructor(
    private readonly world: ChaosWorld,
    private readonly params: SimParams,
    private readonly prng: Prng,
  ) {}

  start(): void {
    const p = this.params;
    this.every(p.crashEveryUs, () => this.crashOne());
    this.every(p.partitionEveryUs, () => this.partitionOne());
    this.every(p.membershipEveryUs, () => this.changeMembership());
    this.every(p.transferEveryUs, () => this.transferLeader());
  }

  stop(): void {
    this.stopped = true;
  }

  private every(meanUs: number, fn: () => void): void {
    if (meanUs <= 0) return;
    const loop = (): void => {
      if (this.stopped) return;
      fn();
      this.world.schedule(1 + Math.round(-Math.log(1 - this.prng.next()) * meanUs), loop);
    };
    this.world.schedule(1 + Math.round(-Math.log(1 - this.prng.next()) * meanUs), loop);
  }

  private running(): SimNode[] {
    return [...this.world.nodes.values()].filter((n) => n.alive && !n.decommissioned);
  }

  private crashOne(): void {
    const up = this.running();
    const total = [...this.world.nodes.values()].filter((n) => !n.decommissioned).length;
    // Usually keep a majority up; sometimes crash more (durable state must still survive).
    if (up.length <= Math.ceil(total / 2) && !this.prng.chance(0.1)) return;
    if (up.length === 0) return;
    const leader = this.world.leader();
    const victim = leader && this.prng.chance(0.4) ? leader : this.prng.pick(up);
    this.world.crash(victim);
    this.stats.crashes++;
    const down = 1 + this.prng.int(Math.max(1, this.params.downMaxUs));
    this.world.schedule(down, () => {
      if (!victim.alive && !victim.decommissioned) this.world.restart(victim);
    });
  }

  private partitionOne(): void {
    const ids = this.running().map((n) => n.id);
    const leader = this.world.leader();
    this.world.network.partition(this.prng.pick(this.params.partitionKinds), ids, leader?.id ?? 0);
    this.stats.partitions++;
    const until = 1 + this.prng.int(Math.max(1, this.params.partitionMaxUs));
    const desc = this.world.network.description;
    this.world.schedule(until, () => {
      if (this.world.network.description === desc) this.world.network.heal();
    });
  }

  private transferLeader(): void {
    const leader = this.world.leader();
    if (!leader?.raw) return;
    const voters = leader.raw.confState().voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    try {
      leader.raw.transferLeader(this.prng.pick(voters));
      this.stats.transfers++;
    } catch (e) {
      if (!(e instanceof ConfChangeError || e instanceof InvalidArgumentError))
        this.world.coreError(leader, e);
      return;
    }
    this.world.afterInput(leader);
  }

  private changeMembership(): void {
    const leader = this.world.leader();
    if (!leader?.raw) return;
    const cs = leader.raw.confState();
    const cc = this.pickChange(cs);
    if (cc === null) return;
    try {
      leader.raw.proposeConfChange(cc);
      this.stats.confChanges++;
    } catch (e) {
      if (
        !(
          e instanceof ConfChangeError ||
          e instanceof ProposalDroppedError ||
          e instanceof NotLeaderError ||
          e instanceof InvalidArgumentError
        )
      ) {
        this.world.coreError(leader, e);
      }
      return;
    }
    this.world.afterInput(leader);
  }

  private pickChange(cs: ConfState): ConfChange | null {
    const none = new Uint8Array(0);
    if (cs.votersOutgoing.length > 0) {
      // Joint: leave it (needed when the change was explicit; harmless otherwise, the core refuses).
      return cs.autoLeave ? null : { changes: [], transition: "auto", context: none };
    }
    const members = cs.voters.length + cs.learners.length;
    const usable = (id: NodeId): boolean => {
      const n = this.world.nodes.get(id);
      return n !== undefined && !n.decommissioned;
    };
    const learners = cs.learners.filter(usable);
    const single = (type: ConfChangeType, nodeId: NodeId): ConfChange => ({
      changes: [{ type, nodeId }],
      transition: this.prng.pick(["auto", "auto", "implicit", "explicit"] as const),
      context: none,
    });
    const roll = this.prng.int(6);
    if (roll === 0 && members < MEMBERS_MAX) {
      const n = this.world.createNode();
      return n ? single(ConfChangeType.AddLearner, n.id) : null;
    }
    if (roll === 1 && learners.length > 0 && cs.voters.length < VOTERS_MAX) {
      return single(ConfChangeType.AddNode, this.prng.pick(learners));
    }
    if (roll === 2 && cs.voters.length > VOTERS_MIN) {
      return single(ConfChangeType.RemoveNode, this.prng.pick(cs.voters));
    }
    if (roll === 3 && cs.learners.length > 0) {
      return single(ConfChangeType.RemoveNode, this.prng.pick(cs.learners));
    }
    if (roll === 4 && cs.voters.length > VOTERS_MIN) {
      // Demote a voter to learner.
      return single(ConfChangeType.AddLearner, this.prng.pick(cs.voters));
    }
    if (roll === 5 && members < MEMBERS_MAX) {
      // Replace a voter by a new node, through a joint configuration.
      const n = this.world.createNode();
      if (!n) return null;
      const changes: ConfChangeSingle[] = [
        { type: ConfChangeType.AddNode, nodeId: n.id },
        { type: ConfChangeType.RemoveNode, nodeId: this.prng.pick(cs.voters) },
      ];
      return { changes, transition: this.prng.pick(["auto", "explicit"] as const), context: none };
    }
    return null;
  }
}
