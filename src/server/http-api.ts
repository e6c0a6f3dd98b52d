/**
 * A small JSON-over-HTTP API for a node running the default key-value state
 * machine: what the demo, the process tests and the embedded benchmark
 * drive. (The etcd-compatible gRPC API is a separate server.)
 *
 *   PUT    /kv/<key>             body = value      → {"index":..}
 *   GET    /kv/<key>?consistency=linearizable|lease|eventual → value (404 if absent)
 *   DELETE /kv/<key>
 *   GET    /status                                 → NodeStatus
 *   POST   /members   {"id":4,"address":"h:p","learner":true}
 *   POST   /members/<id>/promote
 *   DELETE /members/<id>
 *   POST   /leader/transfer  {"to":2}  (optional)
 *   POST   /snapshot
 *
 * Errors are JSON {"code","message",...}: 421 not leader (with leaderId and
 * leaderAddress), 429 resource exhausted, 503 dropped / timed out / stopped,
 * 400 invalid input. Bodies are bounded.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { NotLeaderError, TsraftError } from "../errors.ts";
import type { RaftNode, ReadConsistency } from "../node/raft-node.ts";
import { encodeKvCommand, type KvResult } from "../storage/kv-command.ts";

export type KvRaftNode = RaftNode<KvResult, Uint8Array, Uint8Array | null>;

const MAX_BODY_BYTES = 4 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class HttpApi {
  private readonly server: Server;
  private readonly node: KvRaftNode;

  constructor(node: KvRaftNode) {
    this.node = node;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => sendError(res, e));
    });
    this.server.keepAliveTimeout = 60_000;
  }

  listen(host: string, port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        const a = this.server.address() as AddressInfo;
        resolve(`${a.address}:${a.port}`);
      });
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    let parts: string[];
    try {
      // The path as sent ("//kv/a" is a path here, not a host).
      url = new URL(`http://x/${(req.url ?? "").replace(/^\/+/, "")}`);
      parts = url.pathname
        .split("/")
        .filter((p) => p.length > 0)
        .map(decodeURIComponent);
    } catch {
      throw new HttpError(400, "malformed URL");
    }
    const n = this.node;
    const method = req.method ?? "GET";
    if (parts[0] === "kv" && parts.length === 2) {
      const key = new TextEncoder().encode(parts[1]!);
      if (method === "PUT" || method === "POST") {
        const value = await readBody(req);
        const r = await n.propose(encodeKvCommand({ op: "put", key, value }));
        return sendJson(res, 200, { ok: true, op: r.op });
      }
      if (method === "DELETE") {
        await n.propose(encodeKvCommand({ op: "delete", key }));
        return sendJson(res, 200, { ok: true });
      }
      if (method === "GET") {
        const consistency = (url.searchParams.get("consistency") ?? "linearizable") as ReadConsistency;
        if (!["linearizable", "lease", "eventual"].includes(consistency))
          throw new HttpError(400, "bad consistency");
        const v = await n.read(key, { consistency });
        if (v === null) return sendJson(res, 404, { code: "NOT_FOUND", message: "no such key" });
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.end(v);
        return;
      }
    }
    if (parts[0] === "status" && method === "GET") return sendJson(res, 200, n.status());
    if (parts[0] === "members") {
      if (parts.length === 1 && method === "POST") {
        const body = parseJson(await readBody(req));
        const id = Number(body.id);
        const address = String(body.address ?? "");
        const cs =
          body.learner === false
            ? await n.promote(id, address || undefined)
            : await n.addLearner(id, address);
        return sendJson(res, 200, { confState: cs });
      }
      if (parts.length === 3 && parts[2] === "promote" && method === "POST") {
        return sendJson(res, 200, { confState: await n.promote(Number(parts[1])) });
      }
      if (parts.length === 2 && method === "DELETE") {
        return sendJson(res, 200, { confState: await n.removeNode(Number(parts[1])) });
      }
    }
    if (parts[0] === "leader" && parts[1] === "transfer" && method === "POST") {
      const body = parseJson(await readBody(req));
      await n.transferLeadership(body.to === undefined ? undefined : Number(body.to));
      return sendJson(res, 200, { leader: n.status().leader });
    }
    if (parts[0] === "snapshot" && method === "POST") {
      const info = await n.snapshot();
      return sendJson(res, 200, { index: info.index, term: info.term, sizeBytes: info.sizeBytes });
    }
    throw new HttpError(404, `no route ${method} ${url.pathname}`);
  }
}

async function readBody(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function parseJson(b: Uint8Array): Record<string, unknown> {
  if (b.length === 0) return {};
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(b));
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {}
  throw new HttpError(400, "body must be a JSON object");
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, e: unknown): void {
  if (res.headersSent) {
    res.destroy();
  } else if (e instanceof HttpError) {
    sendJson(res, e.status, { code: "HTTP", message: e.message });
  } else if (e instanceof NotLeaderError) {
    sendJson(res, 421, {
      code: e.code,
      message: e.message,
      leaderId: e.leaderId,
      leaderAddress: e.leaderAddress,
    });
  } else if (e instanceof TsraftError) {
    sendJson(res, httpStatusOf(e.code), { code: e.code, message: e.message });
  } else {
    sendJson(res, 500, { code: "INTERNAL", message: String(e) });
  }
}

function httpStatusOf(code: string): number {
  if (code === "TSRAFT_ERR_RESOURCE_EXHAUSTED") return 429;
  if (code === "TSRAFT_ERR_INVALID_ARGUMENT" || code === "TSRAFT_ERR_CONF_CHANGE") return 400;
  return 503;
}
