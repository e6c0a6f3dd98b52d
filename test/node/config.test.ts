import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError } from "../../src/errors.ts";
import { NodeBuilder } from "../../src/node/builder.ts";
import { loadNodeConfig } from "../../src/node/config.ts";
import { FileStorageEngine } from "../../src/storage/file/engine.ts";
import { tempDir } from "./helpers.ts";

const tmp = tempDir("tsraft-config-");
after(() => tmp.cleanup());

function file(name: string, text: string): string {
  const p = join(tmp.dir, name);
  writeFileSync(p, text);
  return p;
}

function configError(key: string, fragment?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.key, key, e.message);
    if (fragment) assert.match(e.message, fragment);
    return true;
  };
}

describe("loadNodeConfig", () => {
  it("fills every default", () => {
    const c = loadNodeConfig({ overrides: { nodeId: 1 } });
    assert.equal(c.nodeId, 1);
    assert.equal(c.clusterId, "tsraft");
    assert.equal(c.raft.tickMs, 100);
    assert.equal(c.raft.electionTicks, 10);
    assert.equal(c.snapshot.policy, "entries");
    assert.equal(c.snapshot.keepTailEntries, 1000);
    assert.equal(c.limits.maxPendingProposals, 10_000);
    assert.deepEqual(c.initialCluster, {});
  });

  it("requires a node id", () => {
    assert.throws(() => loadNodeConfig({}), configError("nodeId"));
  });

  it("rejects unknown keys, at the top and nested, naming them", () => {
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, nodeID: 2 } as never }),
      configError("nodeID"),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { tickMS: 5 } } as never }),
      configError("raft.tickMS", /unknown key/),
    );
    const f = file("typo.toml", "nodeId = 1\n[snapshot]\npolicyy = 'entries'\n");
    assert.throws(() => loadNodeConfig({ file: f }), configError("snapshot.policyy"));
  });

  it("rejects wrong types and out-of-range values", () => {
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { tickMs: "10" } } as never }),
      configError("raft.tickMs", /integer/),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { preVote: "yes" } } as never }),
      configError("raft.preVote"),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, snapshot: { policy: "sometimes" } } as never }),
      configError("snapshot.policy", /entries, bytes, interval, disabled/),
    );
    assert.throws(() => loadNodeConfig({ overrides: { nodeId: 0 } }), configError("nodeId", />= 1/));
    assert.throws(() => loadNodeConfig({ overrides: { nodeId: 1.5 } }), configError("nodeId"));
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: "fast" } as never }),
      configError("raft.", /object/),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, listen: "localhost" } }),
      configError("listen", /host:port/),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, initialCluster: "1=127.0.0.1:1,x=h:2" } }),
      configError("initialCluster.x"),
    );
    assert.throws(
      () => loadNodeConfig({ env: { TSRAFT_RAFT_TICK_MS: "fast" }, overrides: { nodeId: 1 } }),
      configError("raft.tickMs (from TSRAFT_RAFT_TICK_MS)", /integer/),
    );
    // Sizes that could not fit a 16 MiB peer frame are refused up front.
    for (const [key, overrides] of [
      ["limits.maxCommandBytes", { limits: { maxCommandBytes: 16 * 1024 * 1024 } }],
      ["snapshot.chunkBytes", { snapshot: { chunkBytes: 16 * 1024 * 1024 } }],
      ["raft.maxSizePerMsgBytes", { raft: { maxSizePerMsgBytes: 16 * 1024 * 1024 } }],
    ] as const) {
      assert.throws(() => loadNodeConfig({ overrides: { nodeId: 1, ...overrides } }), configError(key, /<=/));
    }
  });

  it("rejects unsafe combinations", () => {
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { electionTicks: 10, leaseTicks: 10 } } }),
      configError("raft.leaseTicks", /less than raft.electionTicks/),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { electionTicks: 10, leaseTicks: 12 } } }),
      configError("raft.leaseTicks"),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { leaseTicks: 5, checkQuorum: false } } }),
      configError("raft.leaseTicks", /checkQuorum/),
    );
    // Just below the election timeout is accepted.
    assert.equal(
      loadNodeConfig({ overrides: { nodeId: 1, raft: { electionTicks: 10, leaseTicks: 9 } } }).raft
        .leaseTicks,
      9,
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { electionTicks: 2, heartbeatTicks: 2 } } }),
      configError("raft.electionTicks"),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, initialCluster: "2=127.0.0.1:7001" } }),
      configError("initialCluster", /this node/),
    );
    assert.throws(
      () =>
        loadNodeConfig({
          overrides: { nodeId: 1, initialCluster: "1=127.0.0.1:7001", join: "2=127.0.0.1:7002" },
        }),
      configError("join"),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, tls: { cert: "c.pem" } } }),
      configError("tls", /together/),
    );
  });

  it("reads TOML and JSON files alike", () => {
    const toml = file(
      "node.toml",
      [
        "nodeId = 3",
        'clusterId = "prod"',
        'initialCluster = "1=10.0.0.1:7001,2=10.0.0.2:7001,3=10.0.0.3:7001"',
        "[raft]",
        "tickMs = 50",
        "leaseTicks = 4",
        "[snapshot]",
        'policy = "bytes"',
        "logBytes = 4096",
      ].join("\n"),
    );
    const json = file(
      "node.json",
      JSON.stringify({
        nodeId: 3,
        clusterId: "prod",
        initialCluster: { "1": "10.0.0.1:7001", "2": "10.0.0.2:7001", "3": "10.0.0.3:7001" },
        raft: { tickMs: 50, leaseTicks: 4 },
        snapshot: { policy: "bytes", logBytes: 4096 },
      }),
    );
    const a = loadNodeConfig({ file: toml });
    const b = loadNodeConfig({ file: json });
    assert.deepEqual(a, b);
    assert.equal(a.raft.tickMs, 50);
    assert.equal(a.raft.electionTicks, 10, "defaults still apply under a file");
    assert.equal(a.snapshot.policy, "bytes");
    assert.equal(a.initialCluster["2"], "10.0.0.2:7001");
  });

  it("reports unreadable and malformed files", () => {
    assert.throws(
      () => loadNodeConfig({ file: join(tmp.dir, "missing.toml") }),
      configError("(file)", /cannot read/),
    );
    const bad = file("bad.json", "{ nodeId: 1 ");
    assert.throws(() => loadNodeConfig({ file: bad }), configError("(file)", /cannot parse/));
    const arr = file("arr.json", "[1]");
    assert.throws(() => loadNodeConfig({ file: arr }), configError("(file)"));
  });

  it("layers defaults → file → env → overrides", () => {
    const f = file(
      "layers.toml",
      ["nodeId = 1", 'clusterId = "from-file"', "[raft]", "tickMs = 30", "electionTicks = 20"].join("\n"),
    );
    const env = {
      TSRAFT_CLUSTER_ID: "from-env",
      TSRAFT_RAFT_ELECTION_TICKS: "25",
      TSRAFT_RAFT_PRE_VOTE: "false",
      TSRAFT_SNAPSHOT_KEEP_TAIL_ENTRIES: "7",
      TSRAFT_INITIAL_CLUSTER: "1=127.0.0.1:7001,2=127.0.0.1:7002",
      UNRELATED: "x",
    };
    const c = loadNodeConfig({ file: f, env, overrides: { raft: { electionTicks: 40 } } });
    assert.equal(c.raft.tickMs, 30, "file beats defaults");
    assert.equal(c.clusterId, "from-env", "env beats file");
    assert.equal(c.raft.electionTicks, 40, "overrides beat env");
    assert.equal(c.raft.preVote, false);
    assert.equal(c.snapshot.keepTailEntries, 7);
    assert.deepEqual(c.initialCluster, { "1": "127.0.0.1:7001", "2": "127.0.0.1:7002" });
    assert.equal(c.raft.heartbeatTicks, 1, "untouched keys keep their defaults");
    // Without the env layer, the file wins.
    assert.equal(loadNodeConfig({ file: f }).clusterId, "from-file");
  });

  it("validates the merged result: env can make a file's config unsafe", () => {
    const f = file("lease.toml", ["nodeId = 1", "[raft]", "leaseTicks = 8"].join("\n"));
    assert.equal(loadNodeConfig({ file: f }).raft.leaseTicks, 8);
    assert.throws(
      () => loadNodeConfig({ file: f, env: { TSRAFT_RAFT_ELECTION_TICKS: "8" } }),
      configError("raft.leaseTicks"),
    );
  });
});

describe("NodeBuilder", () => {
  it("fromFile reads the file, then TSRAFT_* env, then overrides", () => {
    const f = file(
      "builder.toml",
      ["nodeId = 2", `dataDir = "${tmp.dir}/b"`, "[raft]", "tickMs = 15"].join("\n"),
    );
    const b = NodeBuilder.fromFile(f, { raft: { heartbeatTicks: 2 } }, { TSRAFT_RAFT_TICK_MS: "25" });
    assert.equal(b.config.nodeId, 2);
    assert.equal(b.config.raft.tickMs, 25);
    assert.equal(b.config.raft.heartbeatTicks, 2);
    assert.equal(b.config.dataDir, `${tmp.dir}/b`);
    const node = b.build();
    assert.equal(node.id, 2);
    assert.equal(node.config.raft.tickMs, 25);
    assert.throws(
      () => NodeBuilder.fromFile(f, { raft: { leaseTicks: 50 } }, {}),
      configError("raft.leaseTicks"),
    );
  });

  it("validates its config at once and requires a data dir for default storage", () => {
    assert.throws(() => new NodeBuilder({ nodeId: 1, raft: { tickMs: -1 } }), configError("raft.tickMs"));
    assert.throws(() => new NodeBuilder({ nodeId: 1 }).build(), configError("dataDir"));
  });

  it("refuses a command limit the log store cannot hold per entry", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsraft-config-"));
    try {
      const small = new FileStorageEngine({ dir: join(dir, "storage"), maxEntryBytes: 64 * 1024 });
      assert.throws(
        () =>
          new NodeBuilder({ nodeId: 1, dataDir: dir, limits: { maxCommandBytes: 1024 * 1024 } })
            .storageEngine(small)
            .build(),
        configError("limits.maxCommandBytes", /65536/),
      );
      // Within it, fine.
      new NodeBuilder({ nodeId: 1, dataDir: dir, limits: { maxCommandBytes: 32 * 1024 } })
        .storageEngine(small)
        .build();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
