// `npm run bench -- transport [--duration-ms N]`: throughput of the TCP
// transport between two nodes in this process over loopback. Append messages
// carry 1, 16 or 256 entries of 256 B; the sender keeps a bounded window of
// unacknowledged messages (as Raft's inflight limits would) so nothing is
// dropped. Also RPC round trips per second at concurrency 1 and 64.
import type { Message } from "../src/raft/types.ts";
import { TcpTransport } from "../src/transport/tcp.ts";
import { printTable } from "./_table.ts";

const ENTRY_BYTES = 256;

function parseArgs(args: string[]): { durationMs: number } {
  const i = args.indexOf("--duration-ms");
  const durationMs = i >= 0 ? Number(args[i + 1]) : 2000;
  if (!Number.isInteger(durationMs) || durationMs <= 0)
    throw new Error("--duration-ms must be a positive integer");
  return { durationMs };
}

async function pair(): Promise<[TcpTransport, TcpTransport]> {
  const opts = {
    clusterId: "bench",
    listen: "127.0.0.1:0",
    maxQueueBytes: 256 << 20,
    maxFrameBytes: 64 << 20,
  };
  const a = new TcpTransport({ nodeId: 1, ...opts });
  const b = new TcpTransport({ nodeId: 2, ...opts });
  await a.start();
  await b.start();
  a.addPeer(2, b.listenAddress());
  b.addPeer(1, a.listenAddress());
  // Wait for the connection, so the measurement excludes the handshake.
  while (a.peers()[0]?.state !== "connected") {
    a.send([{ type: "timeoutNow", from: 1, to: 2, term: 0 }]);
    await new Promise((r) => setTimeout(r, 10));
  }
  return [a, b];
}

function appendOf(entries: number, index: number): Message {
  const data = new Uint8Array(ENTRY_BYTES).fill(7);
  return {
    type: "append",
    from: 1,
    to: 2,
    term: 3,
    prevIndex: index,
    prevTerm: 3,
    commit: index,
    entries: Array.from({ length: entries }, (_, k) => ({
      term: 3,
      index: index + k + 1,
      type: 0 as const,
      data,
    })),
  };
}

async function benchAppend(entries: number, durationMs: number): Promise<Record<string, string | number>> {
  const [a, b] = await pair();
  let received = 0;
  b.onMessage(() => received++);
  // Window in bytes, like Raft's max-inflight-bytes: ~8 MiB in flight.
  const window = Math.max(16, Math.floor((8 << 20) / (entries * ENTRY_BYTES)));
  const batch = Math.min(window, 256);
  const msg = appendOf(entries, 1000);
  let sent = 0;
  const start = performance.now();
  const base = b.metrics().get(1)?.bytesReceived ?? 0;
  while (performance.now() - start < durationMs) {
    if (sent - received < window) {
      a.send(Array.from({ length: Math.min(batch, window - (sent - received)) }, () => msg));
      sent += Math.min(batch, window - (sent - received));
    }
    await new Promise((r) => setImmediate(r));
  }
  const elapsedS = (performance.now() - start) / 1000;
  const bytes = (b.metrics().get(1)?.bytesReceived ?? 0) - base;
  const dropped = a.metrics().get(2)?.messagesDropped ?? 0;
  await a.close();
  await b.close();
  return {
    case: `append x${entries} entries`,
    "msgs/s": Math.round(received / elapsedS),
    "entries/s": Math.round((received * entries) / elapsedS),
    "MB/s": bytes / elapsedS / 1e6,
    dropped,
  };
}

async function benchRpc(concurrency: number, durationMs: number): Promise<Record<string, string | number>> {
  const [a, b] = await pair();
  b.handle("echo", (p) => p);
  const payload = new Uint8Array(64);
  let done = 0;
  const start = performance.now();
  const worker = async () => {
    while (performance.now() - start < durationMs) {
      await a.request(2, "echo", payload, { timeoutMs: 5000 });
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedS = (performance.now() - start) / 1000;
  await a.close();
  await b.close();
  return {
    case: `rpc echo 64 B, concurrency ${concurrency}`,
    "msgs/s": Math.round(done / elapsedS),
    "entries/s": "",
    "MB/s": (done * 2 * 64) / elapsedS / 1e6,
    dropped: 0,
  };
}

export async function main(args: string[]): Promise<void> {
  const { durationMs } = parseArgs(args);
  const rows: Record<string, string | number>[] = [];
  for (const entries of [1, 16, 256]) rows.push(await benchAppend(entries, durationMs));
  for (const c of [1, 64]) rows.push(await benchRpc(c, durationMs));
  printTable("transport", rows);
}
