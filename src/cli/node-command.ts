/**
 * `tsraft node`: runs one node of the default key-value service with its
 * HTTP API, until SIGINT/SIGTERM (graceful: a leader hands leadership over
 * first; a second signal exits at once). Prints one JSON line on stdout when
 * ready, so scripts and tests can wait for it.
 */

import pino from "pino";
import { ConfigError } from "../errors.ts";
import { NodeBuilder } from "../node/builder.ts";
import { loadNodeConfig, type NodeConfigInput } from "../node/config.ts";
import { checkAddress } from "../node/config-schema.ts";
import { HttpApi, type KvRaftNode } from "../server/http-api.ts";
import { isDuplicateSignal } from "./signals.ts";

export interface NodeCommandOptions {
  readonly config?: string;
  readonly id?: string;
  readonly listen?: string;
  readonly http?: string;
  readonly dataDir?: string;
  readonly initialCluster?: string;
  readonly join?: string;
  readonly clusterId?: string;
  readonly logLevel?: string;
  /** Shut down when stdin closes: a parent (demo, test) that dies takes its nodes with it. */
  readonly exitWithParent?: boolean;
}

export async function runNodeCommand(opts: NodeCommandOptions): Promise<void> {
  const overrides: Record<string, unknown> = {};
  if (opts.id !== undefined) {
    if (!/^[1-9]\d*$/.test(opts.id))
      throw new ConfigError("id", `expected a positive integer, got "${opts.id}"`);
    overrides.nodeId = Number(opts.id);
  }
  if (opts.listen !== undefined) overrides.listen = opts.listen;
  if (opts.dataDir !== undefined) overrides.dataDir = opts.dataDir;
  if (opts.initialCluster !== undefined) overrides.initialCluster = opts.initialCluster;
  if (opts.join !== undefined) overrides.join = opts.join;
  if (opts.clusterId !== undefined) overrides.clusterId = opts.clusterId;
  const config = loadNodeConfig({
    ...(opts.config !== undefined ? { file: opts.config } : {}),
    env: process.env,
    overrides: overrides as NodeConfigInput,
  });
  const level = opts.logLevel ?? process.env.TSRAFT_LOG_LEVEL ?? "info";
  const levels = [...Object.keys(pino.levels.values), "silent"];
  if (!levels.includes(level)) {
    throw new ConfigError(
      opts.logLevel !== undefined ? "log-level" : "TSRAFT_LOG_LEVEL",
      `expected one of ${levels.join(", ")}, got "${level}"`,
    );
  }
  const logger = pino({ level, base: { node: config.nodeId } }, pino.destination(2));
  // Checked before anything is opened: a typo must not leave a half-started node.
  const [host, port] = splitHostPort(opts.http ?? "127.0.0.1:0");
  const node = new NodeBuilder(config).logger(logger).build() as unknown as KvRaftNode;
  const controller = new AbortController();
  let firstSignalAt = 0;
  const onSignal = (sig: string) => {
    if (firstSignalAt > 0) {
      if (isDuplicateSignal(firstSignalAt)) return;
      logger.warn({ sig }, "second signal: exiting now");
      process.exit(130);
    }
    firstSignalAt = Date.now();
    logger.info({ sig }, "shutting down gracefully (send again to force)");
    controller.abort();
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  if (opts.exitWithParent) {
    process.stdin.on("end", () => onSignal("parent-exit"));
    process.stdin.on("error", () => onSignal("parent-exit"));
    process.stdin.resume();
  }

  // A fatal error (storage failed) stops the node like a shutdown does: exit non-zero, so a
  // supervisor sees a failure and not a clean stop.
  node.once("fatal", (e) => {
    logger.error({ err: String(e) }, "node failed");
    process.exitCode = 1;
  });
  const api = new HttpApi(node);
  // Starting (opening storage, joining, waiting for a leader) can take until readyTimeoutMs:
  // a signal meanwhile stops the node as gracefully as one after it.
  const aborted = new Promise<"aborted">((resolve) =>
    controller.signal.addEventListener("abort", () => resolve("aborted"), { once: true }),
  );
  const startup = (async () => {
    await node.startRpcServer();
    const httpAddress = await api.listen(host, port);
    await node.ready();
    return httpAddress;
  })();
  let first: string;
  try {
    first = await Promise.race([startup, aborted]);
  } catch (e) {
    // A start that failed (a port in use, storage that cannot open) still closes what it
    // opened: the storage lock, the peer listener.
    await node.stop().catch(() => {});
    await api.close().catch(() => {});
    throw e;
  }
  if (first === "aborted") {
    startup.catch(() => {}); // cut short by the stop below
    await node.stop();
  } else {
    process.stdout.write(
      `${JSON.stringify({ event: "ready", id: node.id, peer: node.advertisedAddress(), http: first })}\n`,
    );
    await node.run(controller.signal);
  }
  await api.close();
  // Reading stdin keeps the event loop alive: stop, or the process never exits after a shutdown.
  if (opts.exitWithParent) process.stdin.destroy();
  logger.flush();
}

function splitHostPort(s: string): [string, number] {
  checkAddress(s, "http", 0);
  const i = s.lastIndexOf(":");
  return [s.slice(0, i), Number(s.slice(i + 1))];
}
