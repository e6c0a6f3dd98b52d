// Swarm-tests the Raft core in the deterministic simulator.
//
//   npm run sim -- --seeds N --steps M [--seed S] [--first-seed F] [--nodes K]
//                  [--profile P] [--history-out FILE] [--bug NAME]... [--quiet]
//
// Prints a progress line per seed and one final JSON line; exits non-zero on
// any violation or non-linearizable history. A failure prints the seed and
// the exact command that replays it. Wall-clock time is read here only, for
// elapsedMs and the delivery rate; nothing inside the simulation reads it.
import { writeFileSync } from "node:fs";
import { formatHistory } from "../src/testing/history.ts";
import { bugsFromNames } from "../src/testing/sim/bugs.ts";
import { PROFILES, type ProfileName } from "../src/testing/sim/profile.ts";
import { failed, replayCommand, runSwarm } from "../src/testing/sim/swarm.ts";

function usage(msg: string): never {
  console.error(`sim: ${msg}`);
  console.error(
    "usage: npm run sim -- --seeds N --steps M [--seed S] [--first-seed F] [--nodes 3|5|7] " +
      `[--profile ${PROFILES.join("|")}] [--history-out FILE] [--bug NAME]... [--quiet]`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
let seeds = 50;
let steps = 5000;
let firstSeed = 1;
let single: number | undefined;
let voters: number | undefined;
let profile: ProfileName | undefined;
let historyOut: string | undefined;
let quiet = false;
const bugs: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  const val = (): string => {
    const v = args[++i];
    if (v === undefined) usage(`${a} needs a value`);
    return v;
  };
  const int = (): number => {
    const v = Number(val());
    if (!Number.isSafeInteger(v) || v < 0) usage(`${a} needs a non-negative integer`);
    return v;
  };
  if (a === "--seeds") seeds = int();
  else if (a === "--steps") steps = int();
  else if (a === "--seed") single = int();
  else if (a === "--first-seed") firstSeed = int();
  else if (a === "--nodes") voters = int();
  else if (a === "--profile") {
    const p = val();
    if (!(PROFILES as readonly string[]).includes(p)) usage(`unknown profile ${p}`);
    profile = p as ProfileName;
  } else if (a === "--history-out") historyOut = val();
  else if (a === "--bug") bugs.push(val());
  else if (a === "--quiet") quiet = true;
  else usage(`unknown argument ${a}`);
}
if (voters !== undefined && ![3, 5, 7].includes(voters)) usage("--nodes must be 3, 5 or 7");
if (single !== undefined) {
  firstSeed = single;
  seeds = 1;
}
const bugSwitches = bugsFromNames(bugs);
const replayOpts = {
  steps,
  ...(profile !== undefined ? { profile } : {}),
  ...(voters !== undefined ? { voters } : {}),
  bugs: bugSwitches,
};

const started = performance.now();
let historyText = "";
const summary = runSwarm({
  seeds,
  firstSeed,
  steps,
  ...(profile !== undefined ? { profile } : {}),
  ...(voters !== undefined ? { voters } : {}),
  bugs: bugSwitches,
  onResult(r, bad) {
    const p = r.params;
    // Undecided is not ok: the checker ran out of budget before it could tell.
    const undecided = !bad && r.linearizable === "unknown";
    const status = bad
      ? "FAIL"
      : undecided
        ? "UNDECIDED (safety invariants held; linearizability not checked to the end)"
        : "ok";
    if (!quiet || bad || undecided) {
      console.log(
        `seed ${r.seed}: ${status} voters=${p.voters}+${p.learners} lease=${p.leaseTicks} ` +
          `writes=${p.asyncWrites ? `async(max ${p.maxWritesInFlight}, peak ${r.disk.maxInflight}, lost ${r.disk.lostInCrash})` : "sync"} ` +
          `sm=${p.durableApply ? `durable(applied>commit ${r.disk.appliedAboveCommit})` : "volatile"} ` +
          `steps=${r.steps} sim=${(r.simTimeUs / 1e6).toFixed(2)}s ops=${r.ops} ` +
          `(ok ${r.workload.ok}, fail ${r.workload.fail}, unknown ${r.workload.unknown}) ` +
          `deliveries=${r.deliveries} elections=${r.elections} crashes=${r.chaos.crashes} ` +
          `partitions=${r.chaos.partitions} confChanges=${r.chaos.confChanges} ` +
          `liveness=${r.livenessUs === null ? "-" : `${(r.livenessUs / 1000).toFixed(0)}ms`}`,
      );
    }
    if (bad) {
      if (r.violation) console.log(`  violation: ${r.violation}`);
      if (r.linearizable === false) console.log(`  not linearizable:\n${r.counterexample}`);
      console.log(`  replay: ${replayCommand(r.seed, replayOpts)}`);
    }
    if (historyOut !== undefined && (seeds === 1 || failed(r))) historyText += formatHistory(r.history);
  },
});
const elapsedMs = Math.round(performance.now() - started);
if (historyOut !== undefined) writeFileSync(historyOut, historyText, "utf8");
console.log(
  JSON.stringify({
    sim: true,
    seeds: summary.seeds,
    steps: summary.steps,
    violations: summary.violations,
    nonLinearizable: summary.nonLinearizable,
    undecided: summary.undecided,
    ops: summary.ops,
    events: summary.events,
    deliveries: summary.deliveries,
    deliveriesPerSec: Math.round(summary.deliveries / Math.max(1e-3, elapsedMs / 1000)),
    elapsedMs,
    failedSeeds: summary.failedSeeds,
  }),
);
if (summary.undecided > 0) {
  console.log(
    `${summary.undecided} seed(s) undecided: the linearizability check ran out of budget (not a pass)`,
  );
}
process.exit(summary.violations + summary.nonLinearizable > 0 ? 1 : 0);
