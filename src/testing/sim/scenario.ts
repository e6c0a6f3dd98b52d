/**
 * Scripted schedules: a fault pattern too precise for random chaos to hit
 * often, driven step by step through the simulator's own controls (network
 * blocks, crashes, restarts, campaigns, proposals). The simulator's generic
 * invariants still run after every step; a scenario only steers the cluster
 * and never checks safety itself. The seed still draws message delays and
 * fsync latencies, so one scenario covers many interleavings.
 */

import type { NodeId } from "../../raft/types.ts";
import type { BugSwitches } from "./bugs.ts";
import { encodeCommand } from "./kv-machine.ts";
import { MS, type SimParams } from "./profile.ts";
import type { SimNode } from "./sim-node.ts";
import { Simulation } from "./simulation.ts";

export interface ScenarioResult {
  readonly seed: number;
  /** The first violation the invariants found, or null. */
  readonly violation: string | null;
  /** Whether the script reached its end (every step's condition was met). */
  readonly completed: boolean;
  /** The step the script was at when it stopped. */
  readonly stage: string;
}

/** Simulated time each stage may take before the script gives up. */
const STAGE_US = 2_000 * MS;

/**
 * Raft Figure 8 (§5.4.2), on five voters:
 *
 * 1. Node 1 leads term 2; everyone holds its empty entry (index 2).
 * 2. {1, 2} are cut off from {3, 4, 5}; node 1 appends X at index 3, which
 *    reaches node 2 only. Node 1 crashes.
 * 3. Node 5 wins term 3 with the votes of 3 and 4; its empty entry (3, term 3)
 *    reaches no one (its links are cut as it wins). Node 5 crashes.
 * 4. Node 1 restarts and wins term 4 with 2 and 3 (4 is cut off). Messages
 *    carry one entry each (maxSizePerMsg 1), so node 3 receives X and
 *    acknowledges index 3 before node 1's own term-4 entry. At that moment X
 *    is on a majority, but no entry of term 4 is: a correct leader must not
 *    commit it. Node 1 is cut off and crashes right then.
 * 5. Node 5 restarts and, its last term (3) being newer than X's (2), wins
 *    term 5 with 3 and 4, and replaces X with its own entry at index 3.
 *
 * A correct core ends with node 5's entry committed at index 3 and no
 * violation. A core that commits by counting replicas of an older term has
 * committed X in step 4, and the invariants catch the committed entry being
 * lost (leader completeness fails as node 5 is elected; or, failing that,
 * a committed entry overwritten or applied differently).
 */
export function figure8(seed: number, bugs: BugSwitches = {}): ScenarioResult {
  const params: Partial<SimParams> = {
    learners: 0,
    preVote: false,
    checkQuorum: false,
    leaseTicks: 0,
    // One entry per append: a follower can acknowledge an old entry alone.
    maxSizePerMsg: 1,
    maxInflightMsgs: 256,
    // The script decides every election: clocks never tick within it.
    tickUs: 1_000_000_000 * MS,
    clockDrift: 0,
    tornWriteRate: 0,
    loseUnsyncedRate: 0,
    snapshotEvery: 1_000_000,
    dropRate: 0,
    duplicateRate: 0,
    delayTailRate: 0,
    crashEveryUs: 0,
    partitionEveryUs: 0,
    membershipEveryUs: 0,
    transferEveryUs: 0,
    clients: 0,
  };
  const sim = new Simulation({ seed, steps: 0, voters: 5, bugs, params, checkLinearizability: false });
  const node = (id: NodeId): SimNode => sim.nodes.get(id)!;
  const r = (id: NodeId) => node(id).raw!.internals;
  const isLeader = (id: NodeId): boolean => node(id).alive && r(id).role === "leader";
  let stage = "boot";
  const result = (completed: boolean): ScenarioResult => ({
    seed,
    violation: sim.invariants.violation,
    completed,
    stage,
  });
  const wait = (name: string, done: () => boolean): boolean => {
    stage = name;
    return sim.runUntil(done, STAGE_US) && sim.invariants.violation === null;
  };
  /** Campaigns on `id` until it leads (a first try may only teach it a newer term). */
  const elect = (id: NodeId): boolean => {
    for (let attempt = 0; attempt < 4 && !isLeader(id); attempt++) {
      node(id).raw!.campaign();
      sim.afterInput(node(id));
      sim.runUntil(() => r(id).role !== "candidate", STAGE_US);
      if (sim.invariants.violation !== null) return false;
    }
    return isLeader(id);
  };
  const durableTerm = (id: NodeId, index: number): number => {
    const log = node(id).durable;
    return index >= log.firstIndex() && index <= log.lastIndex() ? log.term(index) : 0;
  };
  const cut = (a: readonly NodeId[], b: readonly NodeId[]): void => {
    for (const x of a) {
      for (const y of b) {
        sim.network.block(x, y);
        sim.network.block(y, x);
      }
    }
  };
  const isolate = (id: NodeId): void => {
    for (const other of sim.nodes.keys()) if (other !== id) sim.network.block(id, other);
  };

  sim.boot();
  // 1. Node 1 leads term 2 and its entry (2, term 2) is everywhere.
  stage = "elect 1";
  if (!elect(1)) return result(false);
  const all: NodeId[] = [1, 2, 3, 4, 5];
  if (!wait("replicate (2, 2)", () => all.every((id) => durableTerm(id, 2) === r(1).term)))
    return result(false);

  // 2. X at index 3 reaches node 2 only; node 1 crashes.
  cut([1, 2], [3, 4, 5]);
  const x = node(1).raw!.propose([encodeCommand({ op: "put", key: "k0", value: "figure-8" })]);
  sim.afterInput(node(1));
  if (
    !wait(
      "X on 1 and 2",
      () => durableTerm(1, x.firstIndex) === x.term && durableTerm(2, x.firstIndex) === x.term,
    )
  )
    return result(false);
  sim.crash(node(1));

  // 3. Node 5 wins term 3 and its entry at index 3 stays on node 5 alone.
  stage = "elect 5";
  if (!elect(5)) return result(false);
  isolate(5);
  const term5 = r(5).term;
  if (!wait("5's entry durable", () => durableTerm(5, x.firstIndex) === term5)) return result(false);
  sim.crash(node(5));

  // 4. Node 1 comes back and wins term 4 without node 4; node 3 acknowledges X alone.
  sim.network.heal();
  cut([1], [4]);
  isolate(5); // its appends may still be in flight
  sim.restart(node(1));
  stage = "elect 1 again";
  if (!elect(1)) return result(false);
  // The first moment nodes 1, 2 and 3 are known to hold X (whether or not 3 also has the term-4 entry).
  const holdsX = (id: NodeId): boolean => (r(1).tracker.progress.get(id)?.match ?? 0) >= x.firstIndex;
  if (!wait("1, 2, 3 acknowledge X", () => holdsX(1) && holdsX(2) && holdsX(3))) return result(false);
  isolate(1);
  sim.crash(node(1));

  // 5. Node 5 comes back and wins with nodes 3 and 4, replacing X.
  sim.network.heal();
  isolate(1); // its appends may still be in flight
  sim.restart(node(5));
  stage = "elect 5 again";
  if (!elect(5)) return result(false);
  const leaderTerm = r(5).term;
  const live: NodeId[] = [2, 3, 4, 5];
  if (
    !wait(
      "5 commits its term",
      () =>
        r(5).log.termOrZero(r(5).log.committed) === leaderTerm &&
        live.every((id) => node(id).sm.applied >= r(5).log.committed),
    )
  )
    return result(false);
  stage = "final check";
  sim.invariants.finalCheck(node(5));
  return result(sim.invariants.violation === null);
}
