import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, it } from "node:test";
import { ConfigError, PeerUnreachableError } from "../../src/errors.ts";
import type { Message } from "../../src/raft/types.ts";
import { encodeFrame, PROTOCOL_VERSION } from "../../src/transport/frame.ts";
import type { TcpTransportOptions } from "../../src/transport/options.ts";
import { backoffDelayMs } from "../../src/transport/options.ts";
import { TcpTransport } from "../../src/transport/tcp.ts";
import type { UnreachableReason } from "../../src/transport/transport.ts";
import { hb, sampleOfEveryType } from "./arbitraries.ts";
import { captureLogger, sleep, waitFor } from "./helpers.ts";

const open: TcpTransport[] = [];
after(async () => {
  await Promise.all(open.map((t) => t.close()));
});

async function node(id: number, extra: Partial<TcpTransportOptions> = {}) {
  const logger = captureLogger();
  const t = new TcpTransport({ nodeId: id, clusterId: "test", listen: "127.0.0.1:0", logger, ...extra });
  open.push(t);
  await t.start();
  const received: Message[] = [];
  const unreachable: [number, UnreachableReason][] = [];
  t.onMessage((m) => received.push(m));
  t.onUnreachable((p, r) => unreachable.push([p, r]));
  return { t, logger, received, unreachable };
}

async function pair(extra: Partial<TcpTransportOptions> = {}) {
  const a = await node(1, extra);
  const b = await node(2, extra);
  a.t.addPeer(2, b.t.listenAddress());
  b.t.addPeer(1, a.t.listenAddress());
  return { a, b };
}

/** A raw client that completes the handshake as node `from`, to test what a bad peer can do. */
async function rawPeer(address: string, from: number, to: number): Promise<net.Socket> {
  const [host, port] = address.split(":");
  const s = net.connect({ host: host!, port: Number(port) });
  await new Promise<void>((r) => s.once("connect", () => r()));
  s.write(encodeFrame({ kind: "hello", version: PROTOCOL_VERSION, clusterId: "test", from, to }));
  await new Promise<void>((r) => s.once("data", () => r()));
  return s;
}

const closed = (s: net.Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once("close", () => r())));

describe("TcpTransport", () => {
  it("delivers every message type intact, in both directions", async () => {
    const { a, b } = await pair();
    a.t.send(sampleOfEveryType(1, 2));
    b.t.send(sampleOfEveryType(2, 1));
    await waitFor(() => b.received.length === 13 && a.received.length === 13, "13 messages each way");
    assert.deepStrictEqual(b.received, sampleOfEveryType(1, 2));
    assert.deepStrictEqual(a.received, sampleOfEveryType(2, 1));
    const m = a.t.metrics().get(2)!;
    assert.equal(m.messagesSent, 13);
    assert.equal(m.messagesReceived, 13);
    assert.equal(m.messagesDropped, 0);
    assert.equal(b.t.metrics().get(1)!.messagesReceived, 13);
    assert.equal(a.t.peers()[0]!.state, "connected");
  });

  it("preserves order per peer across many sends", async () => {
    const { a, b } = await pair();
    a.t.send([hb(1, 2, 0)]);
    await waitFor(() => b.received.length === 1, "connected");
    const n = 20_000;
    // 2000 per event-loop turn: within the default queue bound (4096).
    for (let i = 1; i < n; i += 100) {
      a.t.send(Array.from({ length: 100 }, (_, k) => hb(1, 2, i + k)));
      if (i % 2000 === 1) await sleep(0);
    }
    await waitFor(() => b.received.length === n + 1, `${n + 1} messages`, 10_000);
    assert.equal(a.t.metrics().get(2)!.messagesDropped, 0);
    b.received.forEach((m, i) => {
      assert.ok(m.type === "heartbeat" && m.round === i, `message ${i} out of order`);
    });
  });

  it("reconnects after the peer restarts, reporting it unreachable meanwhile", async () => {
    const { a, b } = await pair({ reconnectBackoffBaseMs: 10, reconnectBackoffMaxMs: 50 });
    a.t.send([hb(1, 2, 0)]);
    await waitFor(() => b.received.length === 1, "first message");
    const address = b.t.listenAddress();
    await b.t.close();
    await waitFor(() => a.unreachable.some(([p]) => p === 2), "unreachable report");
    a.t.send([hb(1, 2, 1)]); // dropped: the peer is known down
    assert.equal(a.t.metrics().get(2)!.messagesDropped >= 1, true);
    const b2 = await node(2, { listen: address });
    await waitFor(() => a.t.peers()[0]!.state === "connected", "reconnected", 5000);
    a.t.send([hb(1, 2, 2)]);
    await waitFor(() => b2.received.length === 1, "message after restart");
    assert.deepStrictEqual(b2.received[0], hb(1, 2, 2));
    assert.ok(a.t.metrics().get(2)!.connects >= 2);
  });

  it("drops and reports unreachable when the send queue overflows (messages and bytes)", async () => {
    // A server that accepts but never answers the handshake: the queue can only grow.
    const sockets: net.Socket[] = [];
    const mute = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => mute.listen(0, "127.0.0.1", () => r()));
    try {
      const a = await node(1, { maxQueueMessages: 10, maxQueueBytes: 1 << 20, maxFrameBytes: 1 << 20 });
      a.t.addPeer(2, `127.0.0.1:${(mute.address() as net.AddressInfo).port}`);
      a.t.send(Array.from({ length: 15 }, (_, i) => hb(1, 2, i)));
      assert.equal(a.unreachable.length, 5);
      assert.ok(a.unreachable.every(([p, r]) => p === 2 && r === "queue-full"));
      assert.equal(a.t.metrics().get(2)!.messagesDropped, 5);
      assert.equal(a.t.peers()[0]!.queuedMessages, 10);

      const c = await node(3, { maxQueueMessages: 1000, maxQueueBytes: 1 << 20, maxFrameBytes: 1 << 20 });
      c.t.addPeer(2, `127.0.0.1:${(mute.address() as net.AddressInfo).port}`);
      const big = (i: number): Message => ({
        type: "append",
        from: 3,
        to: 2,
        term: 1,
        prevIndex: i,
        prevTerm: 1,
        commit: 0,
        entries: [{ term: 1, index: i + 1, type: 0, data: new Uint8Array(300_000) }],
      });
      c.t.send([big(0), big(1), big(2), big(3)]);
      assert.deepEqual(c.unreachable, [[2, "queue-full"]]);
      assert.ok(c.t.peers()[0]!.queuedBytes <= 1 << 20);
    } finally {
      for (const s of sockets) s.destroy();
      mute.close();
    }
  });

  it("closes a connection that sends an oversize frame, logging a clear error", async () => {
    const b = await node(2, { maxFrameBytes: 4096 });
    const s = await rawPeer(b.t.listenAddress(), 1, 2);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1_000_000);
    s.write(header);
    await closed(s);
    await waitFor(() => b.logger.has("error", /1000000 bytes exceeds maxFrameBytes \(4096\)/), "error log");
    assert.equal(b.received.length, 0);
  });

  it("before the handshake only handshake-sized frames are accepted, on both sides", async () => {
    // A stranger announcing a 1 MiB first frame is cut at once (not after buffering it).
    const b = await node(2, { handshakeTimeoutMs: 10_000 });
    const [host, port] = b.t.listenAddress().split(":");
    const s = net.connect({ host: host!, port: Number(port) });
    s.on("error", () => {});
    await new Promise<void>((r) => s.once("connect", () => r()));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1 << 20);
    s.write(header);
    s.write(Buffer.alloc(64 * 1024));
    await closed(s);
    assert.ok(b.logger.has("error", /1048576 bytes exceeds maxFrameBytes \(8192\)/));
    // A "peer" that answers our hello with a huge frame: the dialer drops the connection.
    const fake = net.createServer((c) => {
      c.on("error", () => {});
      c.write(header);
    });
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", () => r()));
    try {
      const a = await node(1, { handshakeTimeoutMs: 10_000 });
      a.t.addPeer(3, `127.0.0.1:${(fake.address() as net.AddressInfo).port}`);
      a.t.send([{ type: "timeoutNow", from: 1, to: 3, term: 1 }]);
      await waitFor(
        () => a.logger.has("error", /exceeds maxFrameBytes \(8192\)/),
        "dialer refuses the frame",
      );
      a.t.removePeer(3);
    } finally {
      fake.close();
    }
  });

  it("close() while start() is binding: start() rejects with StoppedError, close() completes", async () => {
    const t = new TcpTransport({ nodeId: 1, clusterId: "test", listen: "127.0.0.1:0" });
    const started = t.start();
    await t.close();
    await assert.rejects(started, { code: "TSRAFT_ERR_STOPPED" });
  });

  it("refuses to send a message larger than maxFrameBytes and reports it", async () => {
    const { a, b } = await pair({ maxFrameBytes: 4096 });
    const huge: Message = {
      type: "snapshot",
      from: 1,
      to: 2,
      term: 1,
      snapshot: {
        metadata: {
          index: 1,
          term: 1,
          confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
        },
        data: new Uint8Array(10_000),
      },
    };
    a.t.send([huge, hb(1, 2, 1)]);
    assert.deepEqual(a.unreachable, [[2, "message-too-large"]]);
    assert.ok(a.logger.has("error", /exceeds maxFrameBytes/));
    await waitFor(() => b.received.length === 1, "the small message still goes");
  });

  it("drops an unencodable message without losing the rest of the batch", async () => {
    const { a, b } = await pair();
    a.t.send([{ ...hb(1, 2, 1), term: -1 }, hb(1, 2, 2)]);
    await waitFor(() => b.received.length === 1, "the valid message");
    assert.deepStrictEqual(b.received[0], hb(1, 2, 2));
    assert.ok(a.logger.has("error", /cannot encode message/));
    assert.equal(a.t.metrics().get(2)!.messagesDropped, 1);
  });

  it("survives garbage bytes, HTTP requests and messages spoofing another sender", async () => {
    const { a, b } = await pair();
    const [host, port] = b.t.listenAddress().split(":");
    for (const junk of [
      Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      Buffer.from([0, 0, 0, 5, 1, 2, 3, 4, 5]),
      Buffer.alloc(64, 0xff),
    ]) {
      const s = net.connect({ host: host!, port: Number(port) });
      s.on("error", () => {});
      s.write(junk);
      await closed(s);
    }
    // A handshaken peer 3 claiming to send as node 1 is cut off.
    const s = await rawPeer(b.t.listenAddress(), 3, 2);
    s.write(encodeFrame({ kind: "message", message: hb(1, 2, 99) }));
    await closed(s);
    assert.equal(b.received.length, 0);
    assert.ok(b.logger.has("error", /protocol error/));
    // The server still serves real peers.
    a.t.send([hb(1, 2, 7)]);
    await waitFor(() => b.received.length === 1, "a real message after the garbage");
  });

  it("refuses a node from another cluster: both sides log why, the dialer reports it", async () => {
    const b = await node(2);
    const c = await node(3, { clusterId: "other-cluster" });
    c.t.addPeer(2, b.t.listenAddress());
    c.t.send([hb(3, 2, 1)]);
    await waitFor(() => c.unreachable.some(([, r]) => r === "handshake-refused"), "refusal reported");
    assert.ok(b.logger.has("warn", /cluster id "other-cluster" does not match this node's cluster "test"/));
    assert.ok(c.logger.has("error", /refused us: cluster-id-mismatch/));
    assert.match(c.t.peers()[0]!.lastError ?? "", /cluster-id-mismatch/);
    assert.notEqual(c.t.peers()[0]!.state, "connected");
    assert.equal(b.received.length, 0);
    // A dialer that reached the wrong node id is refused too.
    const d = await node(4);
    d.t.addPeer(9, b.t.listenAddress());
    d.t.send([hb(4, 9, 1)]);
    await waitFor(
      () => d.unreachable.some(([, r]) => r === "handshake-refused"),
      "node id mismatch reported",
    );
    assert.ok(b.logger.has("warn", /dialed node 9 but reached node 2/));
  });

  it("flushes queued messages on graceful close", async () => {
    const { a, b } = await pair();
    a.t.send([hb(1, 2, 0)]);
    await waitFor(() => b.received.length === 1, "connected");
    // Within the default queue bound (4096): all of them must arrive.
    a.t.send(Array.from({ length: 4000 }, (_, i) => hb(1, 2, i + 1)));
    await a.t.close();
    await waitFor(() => b.received.length === 4001, "all queued messages");
    assert.equal(a.t.metrics().get(2)!.messagesDropped, 0);
    // After close, send is a no-op and never throws.
    a.t.send([hb(1, 2, 0)]);
  });

  it("never throws from send: unknown peers and down peers are reported", async () => {
    const a = await node(1, { reconnectBackoffBaseMs: 10, connectTimeoutMs: 200 });
    a.t.send([hb(1, 5, 1)]);
    assert.deepEqual(a.unreachable, [[5, "unknown-peer"]]);
    // Port 1 on loopback: nothing listens, the connection is refused.
    a.t.addPeer(6, "127.0.0.1:1");
    a.t.send([hb(1, 6, 1)]);
    await waitFor(
      () => a.unreachable.some(([p, r]) => p === 6 && r === "connection-lost"),
      "connection failure",
    );
    await assert.rejects(a.t.request(6, "x", new Uint8Array(), { timeoutMs: 100 }), PeerUnreachableError);
  });

  it("validates options with ConfigError naming the key", () => {
    assert.throws(() => new TcpTransport({ nodeId: 0, clusterId: "c", listen: "127.0.0.1:0" }), /"nodeId"/);
    assert.throws(() => new TcpTransport({ nodeId: 1, clusterId: "", listen: "127.0.0.1:0" }), ConfigError);
    assert.throws(() => new TcpTransport({ nodeId: 1, clusterId: "c", listen: "nope" }), /"listen"/);
    assert.throws(
      () =>
        new TcpTransport({
          nodeId: 1,
          clusterId: "c",
          listen: "127.0.0.1:0",
          reconnectBackoffBaseMs: 10,
          reconnectBackoffMaxMs: 5,
        }),
      /reconnectBackoffBaseMs/,
    );
    assert.throws(
      () => new TcpTransport({ nodeId: 1, clusterId: "c", listen: "127.0.0.1:0", maxQueueMessages: -1 }),
      /maxQueueMessages/,
    );
  });

  it("backs off exponentially with jitter, bounded by the max", () => {
    assert.equal(
      backoffDelayMs(0, 50, 2000, () => 0),
      25,
    );
    assert.equal(
      backoffDelayMs(0, 50, 2000, () => 0.999999),
      50,
    );
    assert.equal(
      backoffDelayMs(3, 50, 2000, () => 0),
      200,
    );
    for (const attempt of [10, 100, 10_000]) {
      const d = backoffDelayMs(attempt, 50, 2000, Math.random);
      assert.ok(d >= 1000 && d <= 2000, `attempt ${attempt}: ${d}`);
    }
  });
});
