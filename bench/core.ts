/**
 * `npm run bench -- core [--seconds S]`: three pure cores in one thread over an
 * in-memory exchange, no I/O. Reports entries committed per second when
 * proposing 1, 16 and 256 entries per call. The core must never be the
 * bottleneck of a real node (target: >= 1,000,000 entries/s at 256 per call).
 */

import { performance } from "node:perf_hooks";
import { ProposalDroppedError } from "../src/errors.ts";
import { LocalCluster } from "../src/testing/local-cluster.ts";
import { printTable } from "./_table.ts";

const ENTRY_BYTES = 64;

function run(batch: number, seconds: number): { entriesPerSec: number; committed: number; readies: number } {
  const c = new LocalCluster([1, 2, 3], { maxInflightMsgs: 1024 }, 1);
  c.keepApplied = false;
  c.elect(1);
  const leader = c.node(1).raw;
  const payload = new Uint8Array(ENTRY_BYTES);
  const data = Array.from({ length: batch }, () => payload);
  const start0 = leader.status().commit;
  let readies = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let now = t0;
  let iter = 0;
  while (now < deadline) {
    try {
      leader.propose(data);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
    for (const id of [1, 2, 3]) if (c.processReady(id)) readies++;
    c.deliverAll();
    if (++iter % 64 === 0) now = performance.now();
  }
  c.stabilize();
  const elapsed = (performance.now() - t0) / 1000;
  const committed = leader.status().commit - start0;
  return { entriesPerSec: Math.round(committed / elapsed), committed, readies };
}

export async function main(args: string[]): Promise<void> {
  const i = args.indexOf("--seconds");
  const seconds = i >= 0 ? Number(args[i + 1]) : 2;
  run(16, 0.3); // warm up the JIT
  const rows = [1, 16, 256].map((batch) => {
    const r = run(batch, seconds);
    return {
      batch,
      entriesPerSec: r.entriesPerSec,
      committed: r.committed,
      readies: r.readies,
      entryBytes: ENTRY_BYTES,
    };
  });
  printTable("core", rows);
}
