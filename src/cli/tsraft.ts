#!/usr/bin/env node
/** The tsraft command line. */

import { Command } from "commander";
import { TsraftError } from "../errors.ts";
import { runDemo } from "./demo.ts";
import { runNodeCommand } from "./node-command.ts";

const program = new Command("tsraft").description(
  "A Raft consensus engine and replicated key-value service for Node.js",
);

program
  .command("node")
  .description("run one node of the key-value service (HTTP API + peer RPC)")
  .option("-c, --config <file>", "config file (TOML or JSON)")
  .option("--id <n>", "node id")
  .option("--listen <host:port>", "peer address to listen on")
  .option("--http <host:port>", "HTTP API address", "127.0.0.1:0")
  .option("--data-dir <dir>", "data directory")
  .option("--initial-cluster <list>", "founding members: 1=host:port,2=host:port,...")
  .option("--join <list>", "existing members to join through: 1=host:port,...")
  .option("--cluster-id <id>", "cluster id (peers with another are refused)")
  .option("--log-level <level>", "pino log level")
  .option("--exit-with-parent", "shut down when stdin closes (for supervisors and tests)")
  .action(runNodeCommand);

program
  .command("demo")
  .description("run a local 3-node cluster (3 processes, file storage under ./data) and show it working")
  .option("--data-dir <dir>", "where the nodes keep their data", "data")
  .option("--writes <n>", "writes in the demo workload", "200")
  .option("--once", "exit after the workload instead of showing live status")
  .action(runDemo);

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof TsraftError) {
    console.error(`tsraft: ${e.message} (${e.code})`);
  } else {
    console.error(e);
  }
  process.exit(1);
});
