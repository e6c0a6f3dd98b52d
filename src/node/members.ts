/**
 * Member addresses (node id → host:port), learned from membership entries,
 * join responses and snapshots, and persisted atomically so a restarted node
 * can reach its peers before it replays anything. Also the index a joiner
 * was admitted at: removals of its id before it are history, even after a
 * restart in the middle of catching up.
 *
 * File: `{"members": {"<id>": "host:port", ...}, "admittedAt": n}` (earlier
 * versions wrote the members map alone; it still loads).
 */

import { open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { ConfigError } from "../errors.ts";
import type { NodeId } from "../raft/types.ts";
import { parsePeers } from "./config-schema.ts";

export class MemberRegistry {
  private readonly addrs = new Map<NodeId, string>();
  private readonly file: string | null;
  private writing: Promise<void> = Promise.resolve();
  /** The commit index the leader reported when it admitted this node (0: founded, or never joined). */
  admittedAt = 0;

  constructor(file: string | null) {
    this.file = file;
  }

  async load(): Promise<void> {
    if (!this.file) return;
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    let parsed: Record<string, string>;
    try {
      const raw: unknown = JSON.parse(text);
      const current = typeof raw === "object" && raw !== null && Object.hasOwn(raw, "members");
      parsed = parsePeers(current ? (raw as { members: unknown }).members : raw, "members");
      if (current) {
        const at = (raw as { admittedAt?: unknown }).admittedAt ?? 0;
        if (typeof at !== "number" || !Number.isSafeInteger(at) || at < 0)
          throw new Error(`admittedAt must be a non-negative integer, got ${JSON.stringify(at)}`);
        this.admittedAt = at;
      }
    } catch (e) {
      throw new ConfigError("members", `${this.file} is unreadable: ${(e as Error).message}`);
    }
    for (const [id, addr] of Object.entries(parsed)) this.addrs.set(Number(id), addr);
  }

  get(id: NodeId): string | undefined {
    return this.addrs.get(id);
  }

  set(id: NodeId, address: string): void {
    this.addrs.set(id, address);
  }

  delete(id: NodeId): void {
    this.addrs.delete(id);
  }

  entries(): [NodeId, string][] {
    return [...this.addrs.entries()].sort((a, b) => a[0] - b[0]);
  }

  toRecord(): Record<string, string> {
    return Object.fromEntries(this.entries().map(([id, a]) => [String(id), a]));
  }

  /** Writes temp → fsync → rename → fsync dir, serialized so the newest state wins. */
  persist(): Promise<void> {
    if (!this.file) return Promise.resolve();
    const file = this.file;
    const body = JSON.stringify({ members: this.toRecord(), admittedAt: this.admittedAt });
    this.writing = this.writing.then(async () => {
      const tmp = `${file}.tmp`;
      const fh = await open(tmp, "w");
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
      const dir = await open(dirname(file), "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    });
    return this.writing;
  }
}
