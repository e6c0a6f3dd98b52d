/**
 * NodeBuilder: wires a node from a config, a log store, a state machine and a
 * transport, with the embedded file storage as the default.
 *
 *   const node = await new NodeBuilder(config)
 *     .storageEngine(new FileStorageEngine({ dir: join(dir, "storage") }))
 *     .stateMachine(new FileStateMachine({ dir: join(dir, "state_machine") }))
 *     .build()
 *     .startRpcServer();
 *   await node.ready();
 *   await node.run(controller.signal);
 */

import { accessSync, constants, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { FileStorageEngine } from "../storage/file/engine.ts";
import { FileStateMachine } from "../storage/file-state-machine.ts";
import type { LogStore } from "../storage/log-store.ts";
import { FileSnapshotStore, type SnapshotStore } from "../storage/snapshot-store.ts";
import type { StateMachine } from "../storage/state-machine.ts";
import { TcpTransport } from "../transport/tcp.ts";
import type { Logger, Transport } from "../transport/transport.ts";
import { loadNodeConfig, type NodeConfig, type NodeConfigInput } from "./config.ts";
import { RaftNode } from "./raft-node.ts";

export class NodeBuilder<R = unknown, Q = unknown, A = unknown> {
  readonly config: NodeConfig;
  private log: LogStore | null = null;
  private sm: StateMachine<R, Q, A> | null = null;
  private snaps: SnapshotStore | null = null;
  private net: Transport | null = null;
  private logr: Logger | undefined;
  private random: (() => number) | undefined;

  /** `config` is validated at once (defaults filled in; `TSRAFT_*` variables are not read here). */
  constructor(config: NodeConfigInput | NodeConfig) {
    this.config = loadNodeConfig({ overrides: config as NodeConfigInput });
  }

  /** defaults → file (TOML or JSON) → `TSRAFT_*` environment → `overrides`. */
  static fromFile(
    path: string,
    overrides?: NodeConfigInput,
    env: NodeJS.ProcessEnv = process.env,
  ): NodeBuilder {
    const b = Object.create(NodeBuilder.prototype) as NodeBuilder;
    Object.assign(b, { log: null, sm: null, snaps: null, net: null, logr: undefined, random: undefined });
    (b as { config: NodeConfig }).config = loadNodeConfig({
      file: path,
      env,
      ...(overrides ? { overrides } : {}),
    });
    return b;
  }

  storageEngine(store: LogStore): this {
    this.log = store;
    return this;
  }

  stateMachine<R2, Q2, A2>(sm: StateMachine<R2, Q2, A2>): NodeBuilder<R2, Q2, A2> {
    const self = this as unknown as NodeBuilder<R2, Q2, A2>;
    self.sm = sm;
    return self;
  }

  snapshotStore(store: SnapshotStore): this {
    this.snaps = store;
    return this;
  }

  /** Default: TCP on `config.listen` (with mTLS when `config.tls` is set). */
  transport(t: Transport): this {
    this.net = t;
    return this;
  }

  logger(l: Logger): this {
    this.logr = l;
    return this;
  }

  /** Seeded randomness for election timeouts (tests, simulations). */
  rng(r: () => number): this {
    this.random = r;
    return this;
  }

  build(): RaftNode<R, Q, A> {
    const c = this.config;
    const needDir = !this.log || !this.sm || !this.snaps;
    if (needDir && !c.dataDir) {
      throw new ConfigError(
        "dataDir",
        "is required unless a storage engine, state machine and snapshot store are all given",
      );
    }
    if (c.dataDir) checkDataDir(c.dataDir);
    const log = this.log ?? new FileStorageEngine({ dir: join(c.dataDir, "storage") });
    const sm =
      this.sm ??
      (new FileStateMachine({ dir: join(c.dataDir, "state_machine") }) as unknown as StateMachine<R, Q, A>);
    const snaps = this.snaps ?? new FileSnapshotStore({ dir: join(c.dataDir, "snapshots") });
    const transport = this.net ?? this.tcpTransport();
    return new RaftNode<R, Q, A>({
      config: c,
      logStore: log,
      stateMachine: sm,
      snapshotStore: snaps,
      transport,
      ...(this.logr ? { logger: this.logr } : {}),
      ...(this.random ? { rng: this.random } : {}),
      membersFile: c.dataDir ? join(c.dataDir, "members.json") : null,
    });
  }

  private tcpTransport(): TcpTransport {
    const c = this.config;
    const read = (key: string, path: string) => {
      try {
        return readFileSync(path);
      } catch (e) {
        throw new ConfigError(key, `cannot read ${path}: ${(e as Error).message}`);
      }
    };
    return new TcpTransport({
      nodeId: c.nodeId,
      clusterId: c.clusterId,
      listen: c.listen,
      ...(this.logr ? { logger: this.logr } : {}),
      ...(c.tls.cert
        ? {
            tls: {
              cert: read("tls.cert", c.tls.cert),
              key: read("tls.key", c.tls.key),
              ca: read("tls.ca", c.tls.ca),
            },
          }
        : {}),
    });
  }
}

/** Creates the data directory if needed; one that cannot be used is a config error, not a stack trace. */
function checkDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    if (!statSync(dir).isDirectory()) throw new Error("not a directory");
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new ConfigError("dataDir", `cannot use ${dir}: ${(e as Error).message}`);
  }
}
