/**
 * A small JSON-over-HTTP API for a node running the default key-value state
 * machine: what the demo and the process tests drive.
 *
 *   PUT    /kv/<key>             body = value      → {"ok":true,"op":"put"}
 *   GET    /kv/<key>?consistency=linearizable|lease|eventual → value (404 if absent; HEAD too)
 *   DELETE /kv/<key>                               → {"ok":true}
 *   GET    /status                                 → NodeStatus
 *   POST   /members   {"id":4,"address":"h:p","learner":true}  (an existing member: 400)
 *   POST   /members/<id>/promote
 *   DELETE /members/<id>
 *   POST   /leader/transfer  {"to":2}  (optional)
 *   POST   /snapshot
 *
 * Keys are one path segment, percent-decoded as sent ("%2E%2E" is the key
 * ".."; the path is not normalized). Errors are JSON {"code","message",...}:
 * 421 not leader (with leaderId and leaderPeerAddress, the leader's Raft
 * address: this API does not know the other nodes' HTTP addresses), 429
 * resource exhausted, 503 dropped / timed out / stopped / busy, 400 invalid
 * input, 404 no such key or route, 405 wrong method, 413 body too large.
 * Bodies are bounded each (a value by limits.maxCommandBytes) and together.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError, NotLeaderError, TsraftError } from "../errors.ts";
import type { RaftNode, ReadConsistency } from "../node/raft-node.ts";
import { encodeKvCommand, type KvResult } from "../storage/kv-command.ts";

export type KvRaftNode = RaftNode<KvResult, Uint8Array, Uint8Array | null>;

/** A JSON body's bound (membership, transfer). */
const MAX_JSON_BODY_BYTES = 64 * 1024;
export interface HttpApiOptions {
  /** Request bodies held in memory at once, all connections together; beyond, 503. Default 64 MiB. */
  readonly maxBodiesInFlightBytes?: number;
}
/** A request as the routes see it: `parts` are the path's segments, percent-decoded. */
interface Call {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly parts: readonly string[];
  readonly query: URLSearchParams;
}

/**
 * A path (segments; "*" matches any one) and the handler of each method it
 * takes: dispatch, 404 and 405 (with its Allow header) all read this one table.
 */
interface Route {
  readonly path: readonly string[];
  readonly methods: Readonly<Record<string, (c: Call) => Promise<void>>>;
}

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
  private readonly bodies: { inFlight: number; max: number };

  constructor(node: KvRaftNode, options: HttpApiOptions = {}) {
    this.node = node;
    this.bodies = { inFlight: 0, max: options.maxBodiesInFlightBytes ?? 64 * 1024 * 1024 };
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => sendError(res, e));
    });
    this.server.keepAliveTimeout = 60_000;
    // A client that sends its request slowly (or never finishes) is cut off.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.maxConnections = 4096;
  }

  listen(host: string, port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once("error", (e: NodeJS.ErrnoException) =>
        reject(new ConfigError("http", `cannot listen on ${host}:${port}: ${e.code ?? e.message}`)),
      );
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

  private readonly routes: readonly Route[] = [
    {
      path: ["kv", "*"],
      methods: {
        GET: (c) => this.get(c),
        HEAD: (c) => this.get(c),
        PUT: (c) => this.put(c),
        POST: (c) => this.put(c),
        DELETE: async ({ res, parts }) => {
          await this.node.propose(encodeKvCommand({ op: "delete", key: keyOf(parts) }));
          sendJson(res, 200, { ok: true });
        },
      },
    },
    {
      path: ["status"],
      methods: {
        GET: async ({ res }) => sendJson(res, 200, this.node.status()),
        HEAD: async ({ res }) => sendJson(res, 200, this.node.status()),
      },
    },
    {
      path: ["members"],
      methods: {
        POST: async ({ req, res }) => {
          const body = parseJson(await readBody(req, MAX_JSON_BODY_BYTES, this.bodies));
          const id = Number(body.id);
          const address = String(body.address ?? "");
          const cs =
            body.learner === false
              ? await this.node.promote(id, address || undefined)
              : await this.node.addLearner(id, address);
          sendJson(res, 200, { confState: cs });
        },
      },
    },
    {
      path: ["members", "*", "promote"],
      methods: {
        POST: async ({ res, parts }) =>
          sendJson(res, 200, { confState: await this.node.promote(Number(parts[1])) }),
      },
    },
    {
      path: ["members", "*"],
      methods: {
        DELETE: async ({ res, parts }) =>
          sendJson(res, 200, { confState: await this.node.removeNode(Number(parts[1])) }),
      },
    },
    {
      path: ["leader", "transfer"],
      methods: {
        POST: async ({ req, res }) => {
          const body = parseJson(await readBody(req, MAX_JSON_BODY_BYTES, this.bodies));
          await this.node.transferLeadership(body.to === undefined ? undefined : Number(body.to));
          sendJson(res, 200, { leader: this.node.status().leader });
        },
      },
    },
    {
      path: ["snapshot"],
      methods: {
        POST: async ({ res }) => {
          const info = await this.node.snapshot();
          sendJson(res, 200, { index: info.index, term: info.term, sizeBytes: info.sizeBytes });
        },
      },
    },
  ];

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The path as sent, segment by segment: URL parsing would resolve "." and ".." (even
    // percent-encoded) and turn "\\" into "/", so some keys could not be named.
    const raw = req.url ?? "";
    const q = raw.indexOf("?");
    const rawPath = q < 0 ? raw : raw.slice(0, q);
    const query = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
    let parts: string[];
    try {
      parts = rawPath
        .split("/")
        .filter((p) => p.length > 0)
        .map(decodeURIComponent);
    } catch {
      throw new HttpError(400, "malformed URL");
    }
    const method = req.method ?? "GET";
    const path = parts.map(encodeURIComponent).join("/");
    const route = this.routes.find(
      (r) => r.path.length === parts.length && r.path.every((p, i) => p === "*" || p === parts[i]),
    );
    if (!route) throw new HttpError(404, `no route ${method} /${path}`);
    const handler = Object.hasOwn(route.methods, method) ? route.methods[method] : undefined;
    if (!handler) {
      const allow = Object.keys(route.methods).join(", ");
      res.setHeader("allow", allow);
      throw new HttpError(405, `${method} is not allowed on /${path} (allowed: ${allow})`);
    }
    await handler({ req, res, parts, query });
  }

  private async put({ req, res, parts }: Call): Promise<void> {
    const value = await readBody(req, this.node.config.limits.maxCommandBytes, this.bodies);
    const r = await this.node.propose(encodeKvCommand({ op: "put", key: keyOf(parts), value }));
    sendJson(res, 200, { ok: true, op: r.op });
  }

  private async get({ res, parts, query }: Call): Promise<void> {
    const consistency = (query.get("consistency") ?? "linearizable") as ReadConsistency;
    if (!["linearizable", "lease", "eventual"].includes(consistency))
      throw new HttpError(400, "bad consistency");
    const v = await this.node.read(keyOf(parts), { consistency });
    if (v === null) return sendJson(res, 404, { code: "NOT_FOUND", message: "no such key" });
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(v);
  }
}

/** The key of a /kv/<key> path. */
function keyOf(parts: readonly string[]): Uint8Array {
  return new TextEncoder().encode(parts[1]!);
}

/**
 * Reads a body of at most `max` bytes, within the budget all requests share:
 * slow or large uploads on many connections cannot run the node out of memory.
 */
async function readBody(
  req: IncomingMessage,
  max: number,
  budget: { inFlight: number; max: number },
): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"]);
  if (declared > max) {
    req.resume(); // drain, so the connection can answer
    throw new HttpError(413, `body of ${declared} bytes over the limit of ${max}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      budget.inFlight += c.length;
      if (size > max) throw new HttpError(413, `body over the limit of ${max} bytes`);
      if (budget.inFlight > budget.max) {
        throw new HttpError(503, "too many request bodies in flight; retry later");
      }
      chunks.push(c);
    }
  } finally {
    budget.inFlight -= size;
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
      message: e.leaderId
        ? `not the leader; the leader is node ${e.leaderId}`
        : "not the leader; no leader known",
      leaderId: e.leaderId,
      leaderPeerAddress: e.leaderAddress,
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
