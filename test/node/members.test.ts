/** members.json: the addresses and the admission index survive a restart; damage is a clear error. */

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError } from "../../src/errors.ts";
import { MemberRegistry } from "../../src/node/members.ts";
import { tempDir } from "./helpers.ts";

const tmp = tempDir("tsraft-members-");
after(() => tmp.cleanup());
let seq = 0;

describe("MemberRegistry", () => {
  it("persists addresses and the admission index, and loads them back", async () => {
    const file = join(tmp.dir, `m${++seq}.json`);
    const a = new MemberRegistry(file);
    a.set(2, "127.0.0.1:7002");
    a.set(1, "127.0.0.1:7001");
    a.admittedAt = 42;
    await a.persist();
    const b = new MemberRegistry(file);
    await b.load();
    assert.deepEqual(b.entries(), [
      [1, "127.0.0.1:7001"],
      [2, "127.0.0.1:7002"],
    ]);
    assert.equal(b.admittedAt, 42);
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), {
      members: { "1": "127.0.0.1:7001", "2": "127.0.0.1:7002" },
      admittedAt: 42,
    });
  });

  it("still loads the earlier format (the members map alone), admitted at 0", async () => {
    const file = join(tmp.dir, `m${++seq}.json`);
    writeFileSync(file, JSON.stringify({ "3": "10.0.0.3:7000" }));
    const r = new MemberRegistry(file);
    await r.load();
    assert.deepEqual(r.entries(), [[3, "10.0.0.3:7000"]]);
    assert.equal(r.admittedAt, 0);
  });

  it("refuses a damaged file with a ConfigError naming it", async () => {
    for (const body of [
      '{"members":{"1":"127.0.0.1:7001"},"admittedAt":-1}',
      '{"members":{"1":"127.0.0.1:7001"},"admittedAt":"7"}',
      '{"members":{"x":"127.0.0.1:7001"}}',
      "{not json",
    ]) {
      const file = join(tmp.dir, `m${++seq}.json`);
      writeFileSync(file, body);
      await assert.rejects(
        new MemberRegistry(file).load(),
        (e: unknown) => e instanceof ConfigError && e.message.includes(file),
        body,
      );
    }
  });
});
