// The simulator end to end: a quick swarm must find no violation, runs must
// replay exactly from their seed, and every profile and cluster shape must run.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatHistory } from "../../../src/testing/history.ts";
import { EventKind, EventQueue } from "../../../src/testing/sim/event-queue.ts";
import { MS, PROFILES } from "../../../src/testing/sim/profile.ts";
import { runSimulation, Simulation } from "../../../src/testing/sim/simulation.ts";
import { replayCommand, runSwarm } from "../../../src/testing/sim/swarm.ts";

describe("simulator", () => {
  it("a quick swarm (50 seeds) finds no violation and only linearizable histories", () => {
    const failures: string[] = [];
    const s = runSwarm({
      seeds: 50,
      steps: 3000,
      onResult(r, bad) {
        if (bad) failures.push(`seed ${r.seed}: ${r.violation ?? r.counterexample}`);
      },
    });
    assert.deepEqual(failures, []);
    assert.equal(s.violations, 0);
    assert.equal(s.nonLinearizable, 0);
    assert.ok(s.ops > 1000, `only ${s.ops} operations`);
    assert.ok(s.deliveries > 50_000, `only ${s.deliveries} deliveries`);
  });

  it("half the swarm seeds use asynchronous storage writes", () => {
    let async = 0;
    for (let seed = 1; seed <= 200; seed++) {
      if (new Simulation({ seed, steps: 0 }).params.asyncWrites) async++;
    }
    assert.ok(async > 70 && async < 130, `${async} of 200 seeds asynchronous`);
  });

  it("asynchronous writes: many in flight, lost or torn in crashes, durable applies; every invariant holds", () => {
    let peak = 0;
    let lost = 0;
    let torn = 0;
    let floor = 0;
    for (const seed of [1, 2, 3, 4]) {
      const r = runSimulation({
        seed,
        steps: 4000,
        profile: "crashes",
        params: {
          asyncWrites: true,
          maxWritesInFlight: 64,
          tornWriteRate: 0.5,
          fsyncMaxUs: 20 * MS,
          // A durable state machine ahead of a lost commit index: the core's commit floor on restart.
          durableApply: true,
          loseUnsyncedRate: 0.8,
        },
      });
      assert.equal(r.violation, null, `seed ${seed}: ${r.violation}`);
      assert.equal(r.linearizable, true, `seed ${seed}: ${r.counterexample}`);
      assert.notEqual(r.livenessUs, null);
      peak = Math.max(peak, r.disk.maxInflight);
      lost += r.disk.lostInCrash;
      torn += r.disk.tornCrashes;
      floor += r.disk.appliedAboveCommit;
    }
    assert.ok(peak >= 5, `at most ${peak} writes in flight`);
    assert.ok(lost > 0, "no write was in flight at a crash");
    assert.ok(torn > 0, "no crash kept a write in flight whole or torn");
    assert.ok(floor > 0, "no restart had applied above the durable commit index");
  });

  it("replays a seed exactly", () => {
    const a = runSimulation({ seed: 7, steps: 3000, profile: "chaos" });
    const b = runSimulation({ seed: 7, steps: 3000, profile: "chaos" });
    assert.equal(a.deliveries, b.deliveries);
    assert.equal(a.simTimeUs, b.simTimeUs);
    assert.equal(formatHistory(a.history), formatHistory(b.history));
    assert.ok(a.history.length > 0);
  });

  for (const profile of PROFILES) {
    it(`profile ${profile} runs clean and recovers once faults stop`, () => {
      for (const seed of [1, 2, 3]) {
        const r = runSimulation({ seed, steps: 3000, profile });
        assert.equal(r.violation, null, `seed ${seed}: ${r.violation}`);
        assert.equal(r.linearizable, true, `seed ${seed}: ${r.counterexample}`);
        assert.notEqual(r.livenessUs, null);
      }
    });
  }

  for (const voters of [3, 5, 7]) {
    it(`${voters} voters, with learners`, () => {
      const r = runSimulation({ seed: 11, steps: 3000, voters, params: { learners: 2 } });
      assert.equal(r.params.voters, voters);
      assert.equal(r.violation, null, r.violation ?? "");
      assert.equal(r.linearizable, true);
      assert.ok(r.workload.ok > 0);
    });
  }

  it("records every client operation with simulated call and return times", () => {
    const r = runSimulation({ seed: 3, steps: 3000, profile: "calm" });
    assert.ok(r.history.length > 20);
    for (const h of r.history) {
      assert.ok(h.call >= 0 && h.call <= r.simTimeUs);
      if (h.status === "ok") assert.ok(h.return !== null && h.return >= h.call);
      else if (h.status === "unknown") assert.equal(h.return, null);
    }
  });

  it("prints the exact replay command", () => {
    assert.equal(
      replayCommand(42, { steps: 5000, profile: "chaos", voters: 5, bugs: { forgetVote: true } }),
      "npm run sim -- --seed 42 --steps 5000 --nodes 5 --profile chaos --bug forgetVote",
    );
  });

  it("orders events by time, then by insertion", () => {
    const q = new EventQueue();
    const order: number[] = [];
    for (const [at, tag] of [
      [5, 1],
      [1, 2],
      [5, 3],
      [0, 4],
      [1, 5],
    ] as const) {
      q.push(at, EventKind.Call, 0, 0, null, () => order.push(tag));
    }
    for (let ev = q.pop(); ev; ev = q.pop()) ev.fn!();
    assert.deepEqual(order, [4, 2, 5, 1, 3]);
  });
});
