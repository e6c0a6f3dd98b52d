/**
 * Swarm runs: many seeds, one summary. Every failing seed comes with the
 * exact command that replays it.
 */

import type { BugSwitches } from "./bugs.ts";
import { bugNames } from "./bugs.ts";
import type { ProfileName } from "./profile.ts";
import { runSimulation, type SimResult } from "./simulation.ts";

export interface SwarmOptions {
  readonly seeds: number;
  readonly firstSeed?: number;
  readonly steps: number;
  readonly profile?: ProfileName;
  readonly voters?: number;
  readonly bugs?: BugSwitches;
  /** Stop at the first failing seed. */
  readonly stopOnFailure?: boolean;
  readonly onResult?: (r: SimResult, failed: boolean) => void;
}

export interface SwarmSummary {
  readonly seeds: number;
  readonly steps: number;
  readonly events: number;
  readonly deliveries: number;
  readonly violations: number;
  readonly nonLinearizable: number;
  /** Histories the checker could not decide within its budget. */
  readonly undecided: number;
  readonly ops: number;
  readonly failedSeeds: readonly number[];
}

export function failed(r: SimResult): boolean {
  return r.violation !== null || r.linearizable === false;
}

export function replayCommand(
  seed: number,
  o: { steps: number; profile?: ProfileName; voters?: number; bugs?: BugSwitches },
): string {
  let cmd = `npm run sim -- --seed ${seed} --steps ${o.steps}`;
  if (o.voters !== undefined) cmd += ` --nodes ${o.voters}`;
  if (o.profile !== undefined) cmd += ` --profile ${o.profile}`;
  for (const b of bugNames(o.bugs ?? {})) cmd += ` --bug ${b}`;
  return cmd;
}

export function runSwarm(o: SwarmOptions): SwarmSummary {
  const first = o.firstSeed ?? 1;
  let steps = 0;
  let events = 0;
  let deliveries = 0;
  let violations = 0;
  let nonLinearizable = 0;
  let undecided = 0;
  let ops = 0;
  let seeds = 0;
  const failedSeeds: number[] = [];
  for (let seed = first; seed < first + o.seeds; seed++) {
    const r = runSimulation({
      seed,
      steps: o.steps,
      ...(o.profile !== undefined ? { profile: o.profile } : {}),
      ...(o.voters !== undefined ? { voters: o.voters } : {}),
      ...(o.bugs !== undefined ? { bugs: o.bugs } : {}),
    });
    seeds++;
    steps += r.steps;
    events += r.events;
    deliveries += r.deliveries;
    ops += r.ops;
    if (r.violation !== null) violations++;
    if (r.linearizable === false) nonLinearizable++;
    if (r.linearizable === "unknown") undecided++;
    const bad = failed(r);
    if (bad) failedSeeds.push(seed);
    o.onResult?.(r, bad);
    if (bad && o.stopOnFailure) break;
  }
  return { seeds, steps, events, deliveries, violations, nonLinearizable, undecided, ops, failedSeeds };
}
