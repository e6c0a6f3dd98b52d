import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { NotLeaderError } from "../../src/errors.ts";
import {
  dec,
  enc,
  FAST,
  freePorts,
  type KvNode,
  kvNode,
  leaderOf,
  put,
  tempDir,
  waitFor,
} from "./helpers.ts";

describe("a 3-node cluster in one process (real TCP, file storage)", () => {
  const tmp = tempDir();
  const nodes: KvNode[] = [];
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    tmp.cleanup();
  });

  it("elects a leader, replicates, serves linearizable reads everywhere and redirects with NotLeaderError", async () => {
    const ports = await freePorts(3);
    const initialCluster = Object.fromEntries(ports.map((p, i) => [String(i + 1), `127.0.0.1:${p}`]));
    for (let i = 0; i < 3; i++) {
      nodes.push(
        kvNode({
          ...FAST,
          nodeId: i + 1,
          listen: `127.0.0.1:${ports[i]}`,
          dataDir: `${tmp.dir}/n${i + 1}`,
          initialCluster,
        }),
      );
    }
    await Promise.all(nodes.map((n) => n.startRpcServer()));
    await Promise.all(nodes.map((n) => n.ready()));
    const leader = await waitFor("a leader", () => leaderOf(nodes));
    const res = await leader.propose(put("k", "v1"));
    assert.equal(res.op, "put");
    for (const n of nodes) {
      assert.equal(dec(await n.read(enc("k"), { consistency: "linearizable" })), "v1", `node ${n.id}`);
    }
    const follower = nodes.find((n) => n !== leader)!;
    await assert.rejects(follower.propose(put("k", "v2")), (e: unknown) => {
      assert.ok(e instanceof NotLeaderError);
      assert.equal(e.leaderId, leader.id);
      assert.equal(e.leaderAddress, leader.advertisedAddress());
      return true;
    });
    const st = leader.status();
    assert.equal(st.members.length, 3);
    assert.ok(st.members.every((m) => m.role === "voter" && m.address.startsWith("127.0.0.1:")));
  });
});
