/**
 * Runs every scenario in test/raft/testdata/*.txt (see transcript/runner.ts).
 * TSRAFT_REWRITE=1 rewrites the expectations in place: review every diff
 * against the Raft paper before committing it.
 */

import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseTranscript, renderTranscript, TranscriptRunner } from "./transcript/runner.ts";

const dir = join(import.meta.dirname, "testdata");
const rewrite = process.env.TSRAFT_REWRITE === "1";

describe("raft transcripts", () => {
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".txt"))
    .sort()) {
    it(file, () => {
      const path = join(dir, file);
      const { blocks, trailer } = parseTranscript(readFileSync(path, "utf8"));
      const runner = new TranscriptRunner();
      const actual: string[] = [];
      for (const b of blocks) {
        const out = runner.run(b.command);
        actual.push(out);
        if (!rewrite) assert.equal(out, b.expected, `${file}:${b.line}: ${b.command}`);
      }
      if (rewrite) writeFileSync(path, renderTranscript(blocks, actual, trailer));
    });
  }
});
