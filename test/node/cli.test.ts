/**
 * `tsraft node` with bad arguments: a real process that exits 1 at once with
 * one line naming the setting, never a stack trace, never a node started on
 * a misread value.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "./helpers.ts";

const CLI = fileURLToPath(new URL("../../src/cli/tsraft.ts", import.meta.url));
const tmp = tempDir("tsraft-cli-");
after(() => tmp.cleanup());

function node(args: readonly string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ["--import", "tsx", CLI, "node", ...args], {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function refused(r: ReturnType<typeof node>, fragment: RegExp): void {
  assert.equal(r.status, 1, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, fragment);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  assert.doesNotMatch(r.stdout, /"event":"ready"/, "no node started");
}

describe("tsraft node refuses bad arguments with one clear line", () => {
  const cluster = ["--initial-cluster", "1=127.0.0.1:1"];

  it("a node id that is not a plain positive integer (Number() would read 1e3 as 1000)", () => {
    for (const id of ["1e3", "0x10", "abc", ""]) {
      refused(node(["--id", id, "--data-dir", join(tmp.dir, "a"), ...cluster]), /invalid config "id"/);
    }
  });

  it("an unknown log level, from the flag or from TSRAFT_LOG_LEVEL", () => {
    const args = ["--id", "1", "--data-dir", join(tmp.dir, "b"), ...cluster];
    refused(node([...args, "--log-level", "bogus"]), /invalid config "log-level".*bogus/);
    refused(node(args, { TSRAFT_LOG_LEVEL: "loud" }), /invalid config "TSRAFT_LOG_LEVEL"/);
  });

  it("a data dir that is a file, and an HTTP port that is not decimal", () => {
    const f = join(tmp.dir, "file");
    writeFileSync(f, "x");
    refused(node(["--id", "1", "--data-dir", f, ...cluster]), /invalid config "dataDir".*cannot use/);
    refused(
      node(["--id", "1", "--data-dir", join(tmp.dir, "c"), "--http", "127.0.0.1:0x1f", ...cluster]),
      /invalid config "http"/,
    );
  });

  it("a port in use: one clear line, and what the start opened is closed (no LOCK left behind)", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const dir = join(tmp.dir, "busy");
      const peer = node([
        "--id",
        "1",
        "--data-dir",
        dir,
        "--initial-cluster",
        `1=127.0.0.1:${port}`,
        "--listen",
        `127.0.0.1:${port}`,
      ]);
      refused(peer, /invalid config "listen": cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
      assert.ok(!existsSync(join(dir, "storage", "LOCK")), "the storage lock was released");
      const http = node(["--id", "1", "--data-dir", dir, ...cluster, "--http", `127.0.0.1:${port}`]);
      refused(http, /invalid config "http": cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
      assert.ok(!existsSync(join(dir, "storage", "LOCK")), "the storage lock was released");
    } finally {
      blocker.close();
    }
  });
});
