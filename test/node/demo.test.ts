/**
 * `tsraft demo` (what `npm start` runs) as a newcomer uses it: real processes,
 * real ports, Ctrl-C (SIGINT to the demo) at any moment stops every node
 * cleanly.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "./helpers.ts";

const CLI = fileURLToPath(new URL("../../src/cli/tsraft.ts", import.meta.url));
const tmp = tempDir("tsraft-demo-");
after(() => tmp.cleanup());

/** A base port whose peer ports (base..base+2) and HTTP ports (base+100..base+102) are free. */
async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const ports = [0, 1, 2, 100, 101, 102].map((d) => base + d);
    const ok = await Promise.all(
      ports.map(
        (p) =>
          new Promise<boolean>((resolve) => {
            const s = createServer();
            s.once("error", () => resolve(false));
            s.listen(p, "127.0.0.1", () => s.close(() => resolve(true)));
          }),
      ),
    );
    if (ok.every(Boolean)) return base;
  }
  throw new Error("no free port range");
}

describe("tsraft demo", () => {
  it("Ctrl-C while the nodes are still starting stops them all cleanly (none is killed by the signal)", async () => {
    const base = await freeBase();
    const demo = spawn(
      process.execPath,
      ["--import", "tsx", CLI, "demo", "--data-dir", join(tmp.dir, "data"), "--writes", "10"],
      { env: { ...process.env, TSRAFT_DEMO_BASE_PORT: String(base) }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    const exited = new Promise<number | null>((resolve) => demo.once("exit", (code) => resolve(code)));
    const timer = setTimeout(() => demo.kill("SIGKILL"), 60_000);
    try {
      await new Promise<void>((resolve, reject) => {
        demo.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          // Printed right before the nodes are spawned: they are seconds from installing
          // their own signal handlers, let alone from being ready.
          if (out.includes("tsraft demo: 3 nodes")) resolve();
        });
        demo.once("exit", () => reject(new Error(`demo exited early: ${out}`)));
      });
      demo.kill("SIGINT");
      const code = await exited;
      assert.match(out, /all nodes stopped cleanly/, out);
      assert.doesNotMatch(out, /not all cleanly/);
      assert.equal(code, 0, out);
    } finally {
      clearTimeout(timer);
      if (demo.exitCode === null) demo.kill("SIGKILL");
    }
  });
});
