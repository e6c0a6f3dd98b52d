import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError, InvalidArgumentError, StoppedError } from "../../src/errors.ts";
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
      configError("raft", /must be an object/),
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
      configError("raft.leaseTicks", /at most raft.electionTicks - 2/),
    );
    // One tick short of the election timeout leaves no margin for drift: a stale lease read
    // was shown with clocks 1% apart.
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { electionTicks: 10, leaseTicks: 9 } } }),
      configError("raft.leaseTicks", /at most raft.electionTicks - 2 \(8\)/),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { electionTicks: 10, leaseTicks: 12 } } }),
      configError("raft.leaseTicks"),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 1, raft: { leaseTicks: 5, checkQuorum: false } } }),
      configError("raft.leaseTicks", /checkQuorum/),
    );
    // Two ticks below the election timeout is accepted.
    assert.equal(
      loadNodeConfig({ overrides: { nodeId: 1, raft: { electionTicks: 10, leaseTicks: 8 } } }).raft
        .leaseTicks,
      8,
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

describe("loadNodeConfig refuses what would run wrong", () => {
  const base = { nodeId: 1 };

  it("a section given as null (or not a table) is an error, not all its defaults dropped", () => {
    assert.throws(
      () => loadNodeConfig({ overrides: { ...base, raft: null } as never }),
      configError("raft", /must be an object/),
    );
    const f = file("null-section.json", JSON.stringify({ nodeId: 1, limits: null }));
    assert.throws(() => loadNodeConfig({ file: f }), configError("limits"));
    const d = file("date-section.toml", "nodeId = 1\nraft = 2020-01-01\n");
    assert.throws(() => loadNodeConfig({ file: d }), configError("raft"));
    const p = file("date-peers.toml", "nodeId = 1\ninitialCluster = 2020-01-01T00:00:00Z\n");
    assert.throws(() => loadNodeConfig({ file: p }), configError("initialCluster"));
  });

  it("timeouts longer than a timer can wait are refused (they would fire at once)", () => {
    for (const key of ["readyTimeoutMs", "proposalTimeoutMs", "shutdownTimeoutMs"] as const) {
      assert.throws(
        () => loadNodeConfig({ overrides: { ...base, limits: { [key]: 2 ** 31 } } }),
        configError(`limits.${key}`, /<= 2147483647/),
      );
    }
    assert.throws(
      () => loadNodeConfig({ overrides: { ...base, snapshot: { intervalMs: 2 ** 31 } } }),
      configError("snapshot.intervalMs"),
    );
    assert.equal(
      loadNodeConfig({ overrides: { ...base, limits: { readyTimeoutMs: 2 ** 31 - 1 } } }).limits
        .readyTimeoutMs,
      2 ** 31 - 1,
    );
  });

  it("a readyTimeoutMs shorter than the longest election timeout is refused (every fresh start would fail)", () => {
    const raft = { tickMs: 100, electionTicks: 10 };
    assert.throws(
      () => loadNodeConfig({ overrides: { ...base, raft, limits: { readyTimeoutMs: 1999 } } }),
      configError("limits.readyTimeoutMs", /at least .* \(2000 ms\)/),
    );
    assert.equal(
      loadNodeConfig({ overrides: { ...base, raft, limits: { readyTimeoutMs: 2000 } } }).limits
        .readyTimeoutMs,
      2000,
    );
  });

  it("inherited names and __proto__ are unknown keys, never a way in", () => {
    const j = file("inherited.json", '{"nodeId":1,"constructor":5}');
    assert.throws(() => loadNodeConfig({ file: j }), configError("constructor", /unknown key/));
    const t = file("inherited.toml", "nodeId = 1\n[raft]\ntoString = 'x'\n");
    assert.throws(() => loadNodeConfig({ file: t }), configError("raft.toString", /unknown key/));
    const p = file("proto.json", '{"__proto__":{"nodeId":7}}');
    assert.throws(() => loadNodeConfig({ file: p }), configError("__proto__", /unknown key/));
  });

  it("peer lists: ports in range, no id or address twice", () => {
    for (const [peers, key] of [
      ["1=127.0.0.1:0", "initialCluster.1"],
      ["1=127.0.0.1:7001,2=h:99999", "initialCluster.2"],
      ["1=a:1000,1=b:2000", "initialCluster.1"],
      ["1=h:1000,2=h:1000", "initialCluster.2"],
    ] as const) {
      assert.throws(
        () => loadNodeConfig({ overrides: { ...base, initialCluster: peers } }),
        configError(key),
      );
    }
    assert.throws(
      () => loadNodeConfig({ overrides: { ...base, initialCluster: { "1": "h:1000", "2": "h:1000" } } }),
      configError("initialCluster.2", /node 1's too/),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { ...base, advertise: "10.0.0.1:0" } }),
      configError("advertise", /1\.\.65535/),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: { ...base, listen: "127.0.0.1:70000" } }),
      configError("listen", /0\.\.65535/),
    );
    assert.equal(loadNodeConfig({ overrides: { ...base, listen: "127.0.0.1:0" } }).listen, "127.0.0.1:0");
  });

  it("a peer map from a later layer replaces the earlier one (it is one value, not a section)", () => {
    const f = file(
      "peers.json",
      JSON.stringify({ nodeId: 1, initialCluster: { 1: "a:1001", 2: "a:1002", 3: "a:1003" } }),
    );
    const c = loadNodeConfig({ file: f, overrides: { initialCluster: { "1": "a:2001" } } });
    assert.deepEqual(c.initialCluster, { "1": "a:2001" });
  });

  it("environment: a TSRAFT_ variable meant for the config but unknown is refused; integers are exact", () => {
    assert.throws(
      () => loadNodeConfig({ overrides: base, env: { TSRAFT_RAFT_TICKMS: "5" } }),
      configError("TSRAFT_RAFT_TICKMS", /did you mean TSRAFT_RAFT_TICK_MS/),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: base, env: { TSRAFT_RAFT: '{"tickMs":5}' } }),
      configError("TSRAFT_RAFT", /TSRAFT_RAFT_TICK_MS/),
    );
    assert.throws(
      () => loadNodeConfig({ overrides: base, env: { TSRAFT_LIMITS_MAX_READS: "5" } }),
      configError("TSRAFT_LIMITS_MAX_READS", /TSRAFT_LIMITS_MAX_PENDING_READS/),
    );
    // Variables of the CLI and of tools are not the config's.
    assert.equal(
      loadNodeConfig({ overrides: base, env: { TSRAFT_LOG_LEVEL: "debug", TSRAFT_LONG: "1" } }).nodeId,
      1,
    );
    for (const raw of [" 5", "5\n", "1e3", "0x10"]) {
      assert.throws(
        () => loadNodeConfig({ env: { TSRAFT_NODE_ID: raw } }),
        configError("nodeId (from TSRAFT_NODE_ID)"),
      );
    }
  });

  it("a join list naming the node itself is refused", () => {
    assert.throws(
      () => loadNodeConfig({ overrides: { nodeId: 2, join: "1=h:1000,2=h:2000" } }),
      configError("join", /lists this node \(2\)/),
    );
  });

  it("a snapshot bandwidth limit too slow for one chunk in a timer's reach is refused", () => {
    assert.throws(
      () => loadNodeConfig({ overrides: { ...base, snapshot: { bandwidthBytesPerSec: 1 } } }),
      configError("snapshot.bandwidthBytesPerSec", /at least 1024/),
    );
    assert.equal(
      loadNodeConfig({ overrides: { ...base, snapshot: { bandwidthBytesPerSec: 1024 } } }).snapshot
        .bandwidthBytesPerSec,
      1024,
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
    // A data dir that is a file: a config error naming it, not an ENOTDIR from deep inside.
    const notDir = file("not-a-dir", "x");
    assert.throws(
      () => new NodeBuilder({ nodeId: 1, dataDir: notDir }).build(),
      configError("dataDir", /cannot use/),
    );
    assert.throws(
      () => new NodeBuilder({ nodeId: 1, dataDir: join(notDir, "below") }).build(),
      configError("dataDir", /cannot use/),
    );
  });

  it("fromFile with an empty path reads it (and fails), not skips it", () => {
    assert.throws(() => NodeBuilder.fromFile("", {}, {}), configError("(file)"));
  });

  it("misuse of the lifecycle gets a usage error: ready() before start, start twice", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsraft-config-"));
    const node = new NodeBuilder({
      nodeId: 1,
      dataDir: dir,
      listen: "127.0.0.1:0",
      raft: { tickMs: 10 },
      initialCluster: { "1": "127.0.0.1:1" },
    }).build();
    try {
      await assert.rejects(
        node.ready(),
        (e: unknown) => e instanceof InvalidArgumentError && /start the node first/.test(e.message),
      );
      const starting = node.startRpcServer();
      // ready() while still starting waits for the start, then for a leader (a single node elects itself).
      const ready = node.ready(5000);
      await starting;
      await ready;
      assert.equal(node.status().role, "leader");
      await assert.rejects(
        node.startRpcServer(),
        (e: unknown) => e instanceof InvalidArgumentError && /started already/.test(e.message),
      );
      await node.stop();
      await assert.rejects(node.startRpcServer(), StoppedError);
    } finally {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    }
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
