/**
 * The HTTP API in front of one node (in-memory transport, file storage):
 * malformed requests get a clear 4xx, never a 500.
 */

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { HttpApi, type KvRaftNode } from "../../src/server/http-api.ts";
import { MemoryNetwork } from "../../src/transport/memory.ts";
import { memAddress, memCluster, memNode, tempDir, waitFor } from "./helpers.ts";

const tmp = tempDir("tsraft-http-");
after(() => tmp.cleanup());

async function solo() {
  const net = new MemoryNetwork({ clusterId: "http" });
  const node = memNode(net, 1, tmp.dir, { initialCluster: memCluster(1) }) as unknown as KvRaftNode;
  await node.startRpcServer();
  await node.ready();
  await waitFor("leader", () => node.status().role === "leader");
  const api = new HttpApi(node);
  const base = `http://${await api.listen("127.0.0.1", 0)}`;
  return {
    node,
    base,
    close: async () => {
      await api.close();
      await node.stop();
    },
  };
}

describe("HTTP API", () => {
  it("answers a malformed URL with 400, and reads a doubled slash as part of the path", async () => {
    const { base, close } = await solo();
    try {
      const bad = await fetch(`${base}/kv/%ZZ`);
      assert.equal(bad.status, 400);
      assert.match(((await bad.json()) as { message: string }).message, /malformed URL/);
      const put = await fetch(`${base}//kv/a`, { method: "PUT", body: "1" });
      assert.equal(put.status, 200, await put.text());
      const got = await fetch(`${base}/kv/a`);
      assert.equal(got.status, 200);
      assert.equal(await got.text(), "1");
    } finally {
      await close();
    }
  });

  it("POST /members with learner:false adds a voter at the address given", async () => {
    const { node, base, close } = await solo();
    try {
      const r = await fetch(`${base}/members`, {
        method: "POST",
        body: JSON.stringify({ id: 5, address: memAddress(5), learner: false }),
      });
      assert.equal(r.status, 200, await r.clone().text());
      const { confState } = (await r.json()) as { confState: { voters: number[] } };
      assert.deepEqual(confState.voters, [1, 5]);
      assert.equal(node.status().members.find((m) => m.id === 5)?.address, memAddress(5));
    } finally {
      await close();
    }
  });
});
