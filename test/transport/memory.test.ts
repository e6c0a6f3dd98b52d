import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Message } from "../../src/raft/types.ts";
import { MemoryNetwork } from "../../src/transport/memory.ts";
import type { UnreachableReason } from "../../src/transport/transport.ts";
import { hb, sampleOfEveryType } from "./arbitraries.ts";
import { captureLogger, sleep, waitFor } from "./helpers.ts";

async function cluster(net: MemoryNetwork, ids: number[]) {
  const nodes = new Map<number, { received: Message[]; unreachable: [number, UnreachableReason][] }>();
  const transports = ids.map((id) => net.transport(id));
  for (const t of transports) {
    await t.start();
    for (const p of ids) if (p !== t.nodeId) t.addPeer(p, `mem://${p}`);
    const rec = { received: [] as Message[], unreachable: [] as [number, UnreachableReason][] };
    t.onMessage((m) => rec.received.push(m));
    t.onUnreachable((p, r) => rec.unreachable.push([p, r]));
    nodes.set(t.nodeId, rec);
  }
  return { transports, nodes };
}

describe("MemoryTransport", () => {
  it("delivers every type asynchronously, as decoded copies, in order", async () => {
    const net = new MemoryNetwork();
    const { transports, nodes } = await cluster(net, [1, 2]);
    const sent = sampleOfEveryType(1, 2);
    transports[0]!.send(sent);
    assert.equal(nodes.get(2)!.received.length, 0, "never delivered inside send()");
    await waitFor(() => nodes.get(2)!.received.length === 13, "13 messages");
    assert.deepStrictEqual(nodes.get(2)!.received, sent);
    const first = nodes.get(2)!.received[0]!;
    assert.ok(first.type === "append" && sent[0]!.type === "append");
    assert.notEqual(first.entries[0]!.data, sent[0]!.entries[0]!.data, "receiver owns its copy");
    assert.equal(transports[0]!.metrics().get(2)!.messagesSent, 13);
  });

  it("reports unreachable for stopped peers, partitions and overflow", async () => {
    const net = new MemoryNetwork({ maxInflightMessages: 5 });
    const { transports, nodes } = await cluster(net, [1, 2, 3]);
    const [t1, t2] = transports;
    net.partition([1], [2, 3]);
    t1!.send([hb(1, 2, 1), hb(1, 3, 1)]);
    assert.deepEqual(nodes.get(1)!.unreachable, [
      [2, "not-connected"],
      [3, "not-connected"],
    ]);
    net.heal();
    t1!.send(Array.from({ length: 8 }, (_, i) => hb(1, 2, i)));
    assert.equal(nodes.get(1)!.unreachable.filter(([, r]) => r === "queue-full").length, 3);
    await waitFor(() => nodes.get(2)!.received.length === 5, "5 in-flight messages");
    await t2!.close();
    t1!.send([hb(1, 2, 9)]);
    assert.deepEqual(nodes.get(1)!.unreachable.at(-1), [2, "not-connected"]);
    assert.equal(t1!.peers().find((p) => p.id === 2)!.state, "backoff");
  });

  it("applies fault hooks: drop and delay", async () => {
    const net = new MemoryNetwork();
    const { transports, nodes } = await cluster(net, [1, 2]);
    net.setFaultHook((m) => (m.type === "heartbeat" && m.round % 2 === 0 ? "drop" : { delayMs: 30 }));
    transports[0]!.send([hb(1, 2, 0), hb(1, 2, 1), hb(1, 2, 2), hb(1, 2, 3)]);
    await sleep(10);
    assert.equal(nodes.get(2)!.received.length, 0, "delayed");
    await waitFor(() => nodes.get(2)!.received.length === 2, "odd rounds");
    assert.deepEqual(
      nodes.get(2)!.received.map((m) => m.type === "heartbeat" && m.round),
      [1, 3],
    );
    assert.equal(transports[0]!.metrics().get(2)!.messagesDropped, 2);
  });

  it("refuses nodes of another cluster, with a logged reason", async () => {
    const logger = captureLogger();
    const net = new MemoryNetwork({ clusterId: "a", logger });
    const t1 = net.transport(1);
    const t2 = net.transport(2, { clusterId: "b" });
    await t1.start();
    await t2.start();
    t1.addPeer(2, "mem://2");
    const reasons: UnreachableReason[] = [];
    t1.onUnreachable((_, r) => reasons.push(r));
    t1.send([hb(1, 2, 1)]);
    assert.deepEqual(reasons, ["handshake-refused"]);
    assert.ok(logger.has("warn", /cluster id mismatch/));
  });
});
