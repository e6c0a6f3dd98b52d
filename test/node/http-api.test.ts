/**
 * The HTTP API in front of one node (in-memory transport, file storage):
 * malformed requests get a clear 4xx, never a 500.
 */

import assert from "node:assert/strict";
import { request } from "node:http";
import { after, describe, it } from "node:test";
import type { NodeConfigInput } from "../../src/node/config.ts";
import { HttpApi, type HttpApiOptions, type KvRaftNode } from "../../src/server/http-api.ts";
import { MemoryNetwork } from "../../src/transport/memory.ts";
import { memAddress, memCluster, memNode, tempDir, waitFor } from "./helpers.ts";

const tmp = tempDir("tsraft-http-");
after(() => tmp.cleanup());

let seq = 0;
async function solo(config: NodeConfigInput = {}, options: HttpApiOptions = {}) {
  const net = new MemoryNetwork({ clusterId: "http" });
  const node = memNode(net, 1, `${tmp.dir}/${++seq}`, {
    ...config,
    initialCluster: memCluster(1),
  }) as unknown as KvRaftNode;
  await node.startRpcServer();
  await node.ready();
  await waitFor("leader", () => node.status().role === "leader");
  const api = new HttpApi(node, options);
  const address = await api.listen("127.0.0.1", 0);
  const base = `http://${address}`;
  return {
    node,
    base,
    port: Number(address.split(":")[1]),
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

  it("keys are one raw path segment: '.', '..' and a backslash can be named (the path is not normalized)", async () => {
    const { port, close } = await solo();
    try {
      for (const [path, value] of [
        ["/kv/%2E%2E", "two dots"],
        ["/kv/%2E", "one dot"],
        ["/kv/a%5Cb", "backslash"],
        ["/kv/a\\c", "raw backslash"],
      ] as const) {
        const put = await raw(port, "PUT", path, value);
        assert.equal(put.status, 200, `${path}: ${put.body}`);
        const got = await raw(port, "GET", path);
        assert.equal(got.body, value, path);
      }
      assert.equal((await raw(port, "GET", "/kv/a%5Cc")).body, "raw backslash");
    } finally {
      await close();
    }
  });

  it("HEAD reads like GET without a body; a known path with the wrong method is 405 with Allow", async () => {
    const { base, close } = await solo();
    try {
      await fetch(`${base}/kv/h`, { method: "PUT", body: "v" });
      assert.equal((await fetch(`${base}/kv/h`, { method: "HEAD" })).status, 200);
      assert.equal((await fetch(`${base}/kv/missing`, { method: "HEAD" })).status, 404);
      for (const [method, path, allow] of [
        ["PUT", "/status", "GET, HEAD"],
        ["GET", "/members", "POST"],
        ["PATCH", "/kv/x", "GET, HEAD, PUT, POST, DELETE"],
      ] as const) {
        const r = await fetch(`${base}${path}`, { method });
        assert.equal(r.status, 405, `${method} ${path}`);
        assert.equal(r.headers.get("allow"), allow);
      }
      assert.equal((await fetch(`${base}/nowhere`)).status, 404);
    } finally {
      await close();
    }
  });

  it("a value over limits.maxCommandBytes is refused from its Content-Length, before it is read", async () => {
    const { port, close } = await solo({ limits: { maxCommandBytes: 1024 } });
    try {
      const r = await raw(port, "PUT", "/kv/big", undefined, { "content-length": "100000000" });
      assert.equal(r.status, 413);
      assert.match(r.body, /over the limit of 1024/);
    } finally {
      await close();
    }
  });

  it("bodies in flight on all connections together are bounded: beyond, 503", async () => {
    const { port, close } = await solo(
      { limits: { maxCommandBytes: 3000 } },
      { maxBodiesInFlightBytes: 4096 },
    );
    const held = [];
    try {
      // Two slow uploads of 2,500 of their 3,000 bytes each: the second goes over the budget.
      const first = slowPut(port, "/kv/a", 3000, 2500);
      held.push(first);
      await new Promise((r) => setTimeout(r, 100));
      const second = slowPut(port, "/kv/b", 3000, 2500);
      held.push(second);
      assert.equal((await second.response).status, 503);
    } finally {
      for (const h of held) h.abort();
      await close();
    }
  });

  it("POST /members never demotes or moves an existing member (an add must not cut a voter off)", async () => {
    const { node, base, close } = await solo();
    try {
      const post = (body: object) => fetch(`${base}/members`, { method: "POST", body: JSON.stringify(body) });
      const voter = await post({ id: 1, address: "127.0.0.1:9999" });
      assert.equal(voter.status, 400, await voter.clone().text());
      assert.match(
        ((await voter.json()) as { message: string }).message,
        /member at n1:1, not 127.0.0.1:9999/,
      );
      assert.equal(
        (await post({ id: 1, address: memAddress(1) })).status,
        400,
        "a voter is not made a learner",
      );
      assert.deepEqual(
        node.status().members.map((m) => [m.id, m.role, m.address]),
        [[1, "voter", memAddress(1)]],
      );
      // A learner added twice at the same address: the second is a no-op, not an error.
      assert.equal((await post({ id: 7, address: memAddress(7) })).status, 200);
      assert.equal((await post({ id: 7, address: memAddress(7) })).status, 200);
      assert.equal((await post({ id: 7, address: "h:1" })).status, 400);
    } finally {
      await close();
    }
  });
});

/** A request sent as written (no URL normalization), with an optional body. */
function raw(
  port: number,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    if (body === undefined && headers["content-length"]) req.flushHeaders();
    else req.end(body);
  });
}

/** A PUT that declares `total` bytes, sends `sent` of them and holds the rest back. */
function slowPut(port: number, path: string, total: number, sent: number) {
  let abort = (): void => {};
  const response = new Promise<{ status: number }>((resolve) => {
    const req = request(
      { host: "127.0.0.1", port, method: "PUT", path, headers: { "content-length": String(total) } },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      },
    );
    req.on("error", () => resolve({ status: 0 }));
    req.write(Buffer.alloc(sent, 1));
    abort = () => req.destroy();
  });
  return { response, abort: () => abort() };
}
