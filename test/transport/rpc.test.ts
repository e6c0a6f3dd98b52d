import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  NotLeaderError,
  PeerUnreachableError,
  RemoteError,
  ResourceExhaustedError,
  StoppedError,
  TimeoutError,
} from "../../src/errors.ts";
import type { Message } from "../../src/raft/types.ts";
import { MemoryNetwork } from "../../src/transport/memory.ts";
import type { TcpTransportOptions, TlsOptions } from "../../src/transport/options.ts";
import { RPC_NO_HANDLER } from "../../src/transport/rpc.ts";
import { TcpTransport } from "../../src/transport/tcp.ts";
import type { Transport, UnreachableReason } from "../../src/transport/transport.ts";
import { sampleOfEveryType } from "./arbitraries.ts";
import { captureLogger, waitFor } from "./helpers.ts";

const open: Transport[] = [];
after(async () => {
  await Promise.all(open.map((t) => t.close()));
});

async function tcpPair(extra: Partial<TcpTransportOptions> = {}, extraB: Partial<TcpTransportOptions> = {}) {
  const a = new TcpTransport({ nodeId: 1, clusterId: "rpc", listen: "127.0.0.1:0", ...extra });
  const b = new TcpTransport({ nodeId: 2, clusterId: "rpc", listen: "127.0.0.1:0", ...extra, ...extraB });
  open.push(a, b);
  await a.start();
  await b.start();
  a.addPeer(2, b.listenAddress());
  b.addPeer(1, a.listenAddress());
  return { a, b };
}

async function memoryPair() {
  const net = new MemoryNetwork();
  const a = net.transport(1);
  const b = net.transport(2);
  open.push(a, b);
  await a.start();
  await b.start();
  a.addPeer(2, "mem://2");
  b.addPeer(1, "mem://1");
  return { a, b, net };
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

// The same RPC contract, proven against both implementations.
for (const [name, makePair] of [
  ["tcp", tcpPair],
  ["memory", memoryPair],
] as const) {
  describe(`RPC over ${name}`, () => {
    it("answers requests, with the caller's authenticated id", async () => {
      const { a, b } = await makePair();
      b.handle("echo", (p, ctx) => enc(`${ctx.from}:${ctx.method}:${dec(p)}`));
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) => a.request(2, "echo", enc(`n${i}`), { timeoutMs: 2000 })),
      );
      for (const [i, r] of replies.entries()) assert.equal(dec(r), `1:echo:n${i}`);
      // Both directions, large payloads.
      a.handle("size", (p) => enc(String(p.length)));
      assert.equal(dec(await b.request(1, "size", new Uint8Array(500_000), { timeoutMs: 2000 })), "500000");
    });

    it("propagates remote errors with their code and message", async () => {
      const { a, b } = await makePair();
      b.handle("propose", () => {
        throw new NotLeaderError(3, "10.0.0.3:7000");
      });
      b.handle("buggy", async () => {
        throw new TypeError("oops");
      });
      const err = await a.request(2, "propose", enc("x"), { timeoutMs: 2000 }).catch((e: unknown) => e);
      assert.ok(err instanceof RemoteError);
      assert.equal(err.code, "TSRAFT_ERR_NOT_LEADER");
      assert.match(
        err.message,
        /propose on peer 2 failed: not the leader; the leader is node 3 at 10.0.0.3:7000/,
      );
      assert.equal(err.peer, 2);
      await assert.rejects(a.request(2, "buggy", enc(""), { timeoutMs: 2000 }), {
        code: "TSRAFT_ERR_RPC_INTERNAL",
        message: /oops/,
      });
      await assert.rejects(a.request(2, "nope", enc(""), { timeoutMs: 2000 }), { code: RPC_NO_HANDLER });
      // A thrown value String() cannot convert must not take the process down.
      b.handle("weird", () => {
        throw Object.create(null);
      });
      await assert.rejects(a.request(2, "weird", enc(""), { timeoutMs: 2000 }), {
        code: "TSRAFT_ERR_RPC_INTERNAL",
        message: /unprintable object thrown/,
      });
      assert.equal(
        dec(await a.request(2, "propose", enc("x"), { timeoutMs: 2000 }).catch(() => enc("still up"))),
        "still up",
      );
    });

    it("times out, bounds outstanding requests, and fails with StoppedError on close", async () => {
      const net = name === "tcp" ? await tcpPair({ maxOutstandingRequests: 3 }) : await makePair();
      const { a, b } = net;
      b.handle("never", () => new Promise<Uint8Array>(() => {}));
      const t0 = Date.now();
      await assert.rejects(a.request(2, "never", enc(""), { timeoutMs: 100 }), TimeoutError);
      assert.ok(Date.now() - t0 >= 95);
      if (name === "tcp") {
        const pending = [1, 2, 3].map(() =>
          assert.rejects(a.request(2, "never", enc(""), { timeoutMs: 10_000 }), StoppedError),
        );
        await assert.rejects(a.request(2, "never", enc(""), { timeoutMs: 10_000 }), ResourceExhaustedError);
        await a.close();
        await Promise.all(pending);
      } else {
        const p = assert.rejects(a.request(2, "never", enc(""), { timeoutMs: 10_000 }), StoppedError);
        await a.close();
        await p;
      }
      await assert.rejects(a.request(2, "never", enc(""), { timeoutMs: 100 }), StoppedError);
    });

    it("honours an abort signal and rejects unknown peers", async () => {
      const { a, b } = await makePair();
      b.handle("never", () => new Promise<Uint8Array>(() => {}));
      const ac = new AbortController();
      const p = a.request(2, "never", enc(""), { timeoutMs: 10_000, signal: ac.signal });
      ac.abort(new Error("caller gave up"));
      await assert.rejects(p, /caller gave up/);
      await assert.rejects(a.request(9, "x", enc(""), { timeoutMs: 100 }), PeerUnreachableError);
      await assert.rejects(a.request(2, "", enc(""), { timeoutMs: 100 }), {
        code: "TSRAFT_ERR_INVALID_ARGUMENT",
      });
      await assert.rejects(a.request(2, "x", enc(""), { timeoutMs: 0 }), {
        code: "TSRAFT_ERR_INVALID_ARGUMENT",
      });
      // Beyond what a Node timer keeps (it would fire after 1 ms): refused, not a near-instant timeout.
      await assert.rejects(a.request(2, "x", enc(""), { timeoutMs: 2 ** 31 }), {
        code: "TSRAFT_ERR_INVALID_ARGUMENT",
        message: /2147483647/,
      });
    });
  });
}

describe("TcpTransport RPC failure modes", () => {
  it("fails in-flight requests when the peer goes away", async () => {
    const { a, b } = await tcpPair();
    b.handle("never", () => new Promise<Uint8Array>(() => {}));
    const p = assert.rejects(a.request(2, "never", enc(""), { timeoutMs: 10_000 }), PeerUnreachableError);
    await waitFor(() => (b.metrics().get(1)?.requestsServed ?? 0) === 1, "request served");
    await b.close();
    await p;
  });

  it("refuses a response larger than the frame limit with a clear error", async () => {
    const { a, b } = await tcpPair({ maxFrameBytes: 4096, maxQueueBytes: 1 << 20 });
    b.handle("big", () => new Uint8Array(10_000));
    await assert.rejects(a.request(2, "big", enc(""), { timeoutMs: 2000 }), {
      code: "TSRAFT_ERR_RESOURCE_EXHAUSTED",
      message: /exceeds maxFrameBytes/,
    });
    await assert.rejects(
      a.request(2, "big", new Uint8Array(10_000), { timeoutMs: 2000 }),
      ResourceExhaustedError,
    );
  });
});

describe("TLS", () => {
  const haveOpenssl = spawnSync("which", ["openssl"]).status === 0;
  let dir = "";
  let creds: TlsOptions | undefined;
  let other: TlsOptions | undefined;
  if (haveOpenssl) {
    dir = mkdtempSync(join(tmpdir(), "tsraft-tls-"));
    const gen = (name: string) => {
      execFileSync(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
          .concat(["-subj", `/CN=${name}`, "-addext", "subjectAltName=IP:127.0.0.1"])
          .concat(["-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.crt`)]),
        { stdio: "ignore" },
      );
      const key = readFileSync(join(dir, `${name}.key`));
      const cert = readFileSync(join(dir, `${name}.crt`));
      return { key, cert, ca: cert };
    };
    creds = gen("tsraft-test");
    other = gen("intruder");
    after(() => rmSync(dir, { recursive: true, force: true }));
  }
  const skip = haveOpenssl ? false : "openssl is not installed: cannot generate a test certificate";

  it("carries messages and RPCs over mTLS", { skip }, async () => {
    const { a, b } = await tcpPair({ tls: creds! });
    const got: Message[] = [];
    b.onMessage((m) => got.push(m));
    b.handle("echo", (p) => p);
    a.send(sampleOfEveryType(1, 2));
    await waitFor(() => got.length === 13, "13 messages over TLS");
    assert.deepStrictEqual(got, sampleOfEveryType(1, 2));
    assert.equal(dec(await a.request(2, "echo", enc("hi"), { timeoutMs: 2000 })), "hi");
  });

  it("rejects a client whose certificate the server does not trust", { skip }, async () => {
    const logB = captureLogger();
    const { a } = await tcpPair(
      { tls: { ...other!, ca: creds!.cert }, reconnectBackoffBaseMs: 50 },
      { tls: creds!, logger: logB },
    );
    const reasons: UnreachableReason[] = [];
    a.onUnreachable((_, r) => reasons.push(r));
    a.send([{ type: "timeoutNow", from: 1, to: 2, term: 1 }]);
    await waitFor(() => reasons.length > 0, "TLS failure reported");
    assert.notEqual(a.peers()[0]!.state, "connected");
    await waitFor(() => logB.has("warn", /TLS handshake failed/), "server logs the TLS failure");
  });

  it("cuts a client that never completes its TLS handshake, and close() does not wait for it", {
    skip,
  }, async () => {
    const b = new TcpTransport({
      nodeId: 2,
      clusterId: "rpc",
      listen: "127.0.0.1:0",
      tls: creds!,
      handshakeTimeoutMs: 300,
    });
    open.push(b);
    await b.start();
    const [host, port] = b.listenAddress().split(":");
    const connectIdle = async () => {
      const s = net.connect({ host: host!, port: Number(port) });
      await new Promise<void>((r) => s.once("connect", () => r()));
      s.on("error", () => {});
      return s;
    };
    // Says nothing: cut after handshakeTimeoutMs, not Node's TLS default of 120 s.
    const idle = await connectIdle();
    const t0 = Date.now();
    await new Promise<void>((r) => idle.once("close", () => r()));
    const waited = Date.now() - t0;
    assert.ok(waited >= 250 && waited < 5000, `cut after ${waited} ms`);
    // close() with a silent client connected returns at once instead of waiting for it.
    await connectIdle();
    const t1 = Date.now();
    await b.close();
    assert.ok(Date.now() - t1 < 250, `close() took ${Date.now() - t1} ms`);
  });

  it("a plaintext dialer cannot talk to a TLS node", { skip }, async () => {
    const a = new TcpTransport({ nodeId: 1, clusterId: "rpc", listen: "127.0.0.1:0" });
    const b = new TcpTransport({ nodeId: 2, clusterId: "rpc", listen: "127.0.0.1:0", tls: creds! });
    open.push(a, b);
    await a.start();
    await b.start();
    a.addPeer(2, b.listenAddress());
    const got: Message[] = [];
    b.onMessage((m) => got.push(m));
    const reasons: UnreachableReason[] = [];
    a.onUnreachable((_, r) => reasons.push(r));
    a.send([{ type: "timeoutNow", from: 1, to: 2, term: 1 }]);
    await waitFor(() => reasons.length > 0, "failure reported");
    assert.equal(got.length, 0);
  });
});
