// Real crashes: a child process appends and syncs; it is SIGKILLed at random
// moments; after every kill, every entry whose sync was acknowledged must be
// present and intact. TSRAFT_LONG=1 runs many more iterations.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { it } from "node:test";
import { fileURLToPath } from "node:url";
import { FileStorageEngine } from "../../src/storage/file/engine.ts";
import { payloadFor } from "../../src/testing/storage-suite.ts";

const here = dirname(fileURLToPath(import.meta.url));
const iterations = process.env.TSRAFT_LONG === "1" ? 60 : 8;

function runAndKill(
  dir: string,
  seed: number,
  killAfterMs: number,
): Promise<{ acked: number; commit: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(here, "fixtures/crash-child.ts"), dir, String(seed)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let acked = 0;
    let commit = 0;
    let buf = "";
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) {
        const [tag, a, c] = l.split(" ");
        if (tag === "ack") {
          acked = Number(a);
          commit = Number(c);
        }
      }
      timer ??= setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (signal !== "SIGKILL") reject(new Error(`child exited with ${code}: ${stderr}`));
      else resolve({ acked, commit });
    });
  });
}

it(`keeps every acknowledged entry across ${iterations} SIGKILLs`, { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-crash-"));
  try {
    let totalAcked = 0;
    for (let iter = 0; iter < iterations; iter++) {
      const { acked, commit } = await runAndKill(dir, iter + 1, 30 + ((iter * 7919) % 300));
      const s = new FileStorageEngine({
        dir,
        segmentSizeBytes: 128 * 1024,
        logger: { warn: () => {}, info: () => {} },
      });
      await s.open();
      try {
        assert.ok(s.lastIndex() >= acked, `iteration ${iter}: last ${s.lastIndex()} < acked ${acked}`);
        assert.ok(s.hardState().commit >= commit, `iteration ${iter}: commit went back`);
        const first = s.firstIndex();
        let i = first;
        while (i <= s.lastIndex()) {
          for (const e of s.entries(i, s.lastIndex() + 1, 1 << 20)) {
            assert.equal(e.index, i);
            assert.deepEqual(Buffer.from(e.data), Buffer.from(payloadFor(e.index, e.term, e.data.length)));
            i++;
          }
        }
        totalAcked = Math.max(totalAcked, acked);
      } finally {
        await s.close();
      }
    }
    assert.ok(totalAcked > 0, "the child never acknowledged anything: the test proved nothing");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
