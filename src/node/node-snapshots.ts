/**
 * Snapshots on a running node: taking them by policy (entries, log bytes,
 * interval), on demand or never; compacting the log behind them while
 * keeping a tail; streaming them to lagging followers in checksummed chunks
 * (optionally rate-limited); assembling and installing them on followers.
 */

import { mkdir, open, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CorruptionError, InvalidArgumentError, ProtocolError, StoppedError } from "../errors.ts";
import { type Entry, NONE, type NodeId, type Snapshot, type SnapshotMessage } from "../raft/types.ts";
import { crc32c } from "../storage/crc32c.ts";
import type { SnapshotInfo } from "../storage/state-machine.ts";
import type { RaftNode } from "./raft-node.ts";
import {
  decodeSnapshotMeta,
  decodeWithBody,
  encodeSnapshotMeta,
  encodeWithBody,
  num,
  RPC_SNAPSHOT,
  type SnapshotMeta,
} from "./wire.ts";

interface Latest {
  readonly info: SnapshotInfo;
  readonly meta: SnapshotMeta;
}

interface Incoming {
  readonly path: string;
  readonly index: number;
  offset: number;
  crc: number;
}

interface Assembled {
  /** A file of its own: a new transfer of the same image never writes to it. */
  readonly path: string;
  readonly term: number;
  readonly meta: Uint8Array;
  /** The data's checksum, checked again as the install reads it. */
  readonly crc: number;
}

/** A chunk request in flight must finish within this (per chunk, not per snapshot). */
const CHUNK_TIMEOUT_MS = 30_000;

export class Snapshots<R, Q, A> {
  private readonly node: RaftNode<R, Q, A>;
  private latest: Latest | null = null;
  private entriesSince = 0;
  private bytesSince = 0;
  private intervalDue = false;
  private lastTakenAtMs = performance.now();
  private taking: Promise<SnapshotInfo> | null = null;
  private readonly requests: { resolve(i: SnapshotInfo): void; reject(e: Error): void }[] = [];
  private readonly outgoing = new Set<NodeId>();
  /** Peers the newest snapshot predates (they joined after it): they wait for a fresh one. */
  private readonly awaitingFresh = new Set<NodeId>();
  private readonly incoming = new Map<string, Incoming>();
  private readonly assembled = new Map<number, Assembled>();
  private incomingDir = "";
  private assembledSeq = 0;

  constructor(node: RaftNode<R, Q, A>) {
    this.node = node;
  }

  /** At start: find the newest snapshot; restore the state machine from it if it is behind. */
  async recover(): Promise<void> {
    const n = this.node;
    this.incomingDir = n.config.dataDir
      ? join(n.config.dataDir, "incoming")
      : join(tmpdir(), `tsraft-incoming-${n.id}-${process.pid}`);
    await rm(this.incomingDir, { recursive: true, force: true });
    await mkdir(this.incomingDir, { recursive: true });
    const info = n.snapshotStore.latest();
    if (!info) return;
    this.latest = { info, meta: decodeSnapshotMeta(info.meta) };
    for (const [id, addr] of Object.entries(this.latest.meta.members)) {
      if (!n.members.get(Number(id))) n.members.set(Number(id), addr);
    }
    if (n.stateMachine.lastApplied().index < info.index) {
      n.logger.info({ index: info.index }, "restoring the state machine from the newest snapshot");
      await n.stateMachine.restore(n.snapshotStore.read(info.index, n.config.snapshot.chunkBytes), {
        index: info.index,
        term: info.term,
      });
    }
  }

  latestIndex(): number {
    return this.latest?.info.index ?? 0;
  }

  /** The snapshot the core sends to followers behind the compaction point (bytes are streamed apart). */
  latestForCore(): Snapshot | null {
    if (!this.latest) return null;
    return {
      metadata: {
        index: this.latest.info.index,
        term: this.latest.info.term,
        confState: this.latest.meta.confState,
      },
      data: new Uint8Array(0),
    };
  }

  noteApplied(e: Entry): void {
    this.entriesSince++;
    this.bytesSince += e.data.length;
  }

  onTick(): void {
    const s = this.node.config.snapshot;
    // The interval counts from the end of the last snapshot: never due while one is written.
    if (s.policy === "interval" && !this.taking && performance.now() - this.lastTakenAtMs >= s.intervalMs)
      this.intervalDue = true;
  }

  /**
   * An on-demand snapshot. It is captured by the loop between two Readies: in
   * the middle of one, the state machine may have applied a membership change
   * that the core (which applies it in advance()) does not show yet. It is at
   * least as new as the applied index when asked for.
   */
  request(): Promise<SnapshotInfo> {
    return new Promise<SnapshotInfo>((resolve, reject) => {
      this.requests.push({ resolve, reject });
      this.node.schedule();
    });
  }

  /**
   * A snapshot asked for, or due by time, can start: the loop starts it even
   * when no Ready comes (an idle node). Requests wait while a snapshot is
   * being written: it may predate them.
   */
  dueWithoutReady(): boolean {
    return (this.requests.length > 0 || this.intervalDue) && this.canStart();
  }

  /**
   * Called by the loop between Readies, never awaited by it: the state
   * machine's image, the configuration and the members are captured at once;
   * writing, syncing and compacting go on in the background while the loop
   * keeps replicating and heartbeating (a leader that stopped sending for the
   * length of a large snapshot write would lose its followers). One snapshot
   * at a time; what is due meanwhile waits for the next call after it ends.
   */
  startDue(): void {
    if (!this.canStart()) return;
    const s = this.node.config.snapshot;
    if (this.requests.length > 0) {
      const waiting = this.requests.splice(0);
      this.take("on-demand").then(
        (info) => {
          for (const w of waiting) w.resolve(info);
        },
        (e: unknown) => {
          for (const w of waiting) w.reject(e as Error);
        },
      );
    } else if (this.awaitingFresh.size > 0) {
      const peers = [...this.awaitingFresh];
      this.awaitingFresh.clear();
      // The core retries them with the snapshot its storage now offers: the fresh one.
      this.background(
        this.take("peer-not-in-snapshot").then(() => {
          for (const p of peers) this.report(p, false);
        }),
      );
    } else if (
      (s.policy === "entries" && this.entriesSince >= s.entries) ||
      (s.policy === "bytes" && this.bytesSince >= s.logBytes) ||
      (s.policy === "interval" && this.intervalDue)
    ) {
      // Nothing applied yet (a learner waiting to be admitted): nothing to snapshot.
      if (this.node.stateMachine.lastApplied().index === 0) this.intervalDue = false;
      else this.background(this.take("policy"));
    }
  }

  /** One snapshot at a time, and none once stopping (stop() waits for the one in progress, not for new ones). */
  private canStart(): boolean {
    return !this.taking && this.node.running;
  }

  /** A snapshot the node did not ask for failed: storage is failing, stop (fail-stop). */
  private background(p: Promise<unknown>): void {
    p.catch((e: unknown) => void this.node.fatal(e as Error));
  }

  /** Snapshots the state machine at the applied index, then compacts the log behind a tail. */
  private take(reason: string): Promise<SnapshotInfo> {
    this.taking = this.doTake(reason).finally(() => {
      this.taking = null;
      this.lastTakenAtMs = performance.now();
      // Whatever came due while this one was written.
      this.node.schedule();
    });
    return this.taking;
  }

  private async doTake(reason: string): Promise<SnapshotInfo> {
    const n = this.node;
    const index = n.stateMachine.lastApplied().index;
    this.entriesSince = 0;
    this.bytesSince = 0;
    this.intervalDue = false;
    if (this.latest && index <= this.latest.info.index) return this.latest.info;
    if (index === 0) throw new InvalidArgumentError("nothing applied yet: no snapshot to take");
    // The state machine's own record: with asynchronous writes it may have applied entries
    // the log store has not taken in yet (they wait behind its write gate).
    const term = n.stateMachine.lastApplied().term;
    const meta: SnapshotMeta = { confState: n.raw.confState(), members: n.members.toRecord() };
    const info = await n.snapshotStore.write(
      index,
      term,
      encodeSnapshotMeta(meta),
      n.stateMachine.snapshot(),
    );
    this.latest = { info, meta };
    await this.compact();
    n.logger.info({ index, term, sizeBytes: info.sizeBytes, reason }, "snapshot taken");
    n.emit("snapshotTaken", info);
    return info;
  }

  /**
   * Compacts the log to the newest snapshot at least `keepTailEntries` behind
   * the newest one: compaction needs the exact membership at its index, and
   * a snapshot records exactly that.
   */
  private async compact(): Promise<void> {
    const n = this.node;
    const newest = this.latestIndex();
    const tail = n.config.snapshot.keepTailEntries;
    const candidates = n.snapshotStore.list(); // newest first
    const target = candidates.find((s) => s.index <= newest - tail);
    if (target && target.index > n.logStore.firstIndex() - 1 && target.index <= n.logStore.lastIndex()) {
      const meta = decodeSnapshotMeta(target.meta);
      await n.logStore.compact({ index: target.index, term: target.term, confState: meta.confState });
    }
    // Besides the newest `keep`: the compaction point's snapshot, and the oldest one above it,
    // the next compaction point waiting to fall `keepTailEntries` behind (pruned, a snapshot
    // closer together than the tail would never leave one to compact to).
    const point = n.logStore.firstIndex() - 1;
    const above = candidates.filter((s) => s.index > point);
    const keepAlso = [point, ...(above.length > 0 ? [above[above.length - 1]!.index] : [])];
    await n.snapshotStore.prune(n.config.snapshot.keep, keepAlso);
  }

  // ---------------------------------------------------------------------------
  // Leader side: streaming to a follower
  // ---------------------------------------------------------------------------

  send(m: SnapshotMessage): void {
    if (this.outgoing.has(m.to)) return;
    const cs = m.snapshot.metadata.confState;
    if (![cs.voters, cs.learners, cs.votersOutgoing, cs.learnersNext].some((ids) => ids.includes(m.to))) {
      // The peer was added after the newest snapshot: it would refuse a snapshot whose
      // configuration lacks it (and the core would ask again at once, forever). Take a
      // fresh snapshot, which includes it, after this Ready; then let the core retry.
      this.node.logger.info(
        { peer: m.to, index: m.snapshot.metadata.index },
        "newest snapshot predates the peer: taking a fresh one",
      );
      this.awaitingFresh.add(m.to);
      this.node.schedule();
      return;
    }
    this.outgoing.add(m.to);
    void this.stream(m)
      .then(
        () => this.report(m.to, true),
        (e: unknown) => {
          this.node.logger.warn(
            { peer: m.to, index: m.snapshot.metadata.index, err: String(e) },
            "snapshot transfer failed",
          );
          this.report(m.to, false);
        },
      )
      .finally(() => this.outgoing.delete(m.to));
  }

  private report(peer: NodeId, ok: boolean): void {
    if (!this.node.running) return;
    this.node.raw.reportSnapshot(peer, ok);
    this.node.schedule();
  }

  private async stream(m: SnapshotMessage): Promise<void> {
    const n = this.node;
    const latest = this.latest;
    const { index, term } = m.snapshot.metadata;
    if (!latest || latest.info.index !== index) throw new Error(`snapshot ${index} is no longer the newest`);
    const { chunkBytes, bandwidthBytesPerSec } = n.config.snapshot;
    const started = performance.now();
    let offset = 0;
    let crc = 0;
    for await (const chunk of n.snapshotStore.read(index, chunkBytes)) {
      crc = crc32c(chunk, crc);
      const header = { index, term, leaderTerm: m.term, offset, done: false };
      await n.transport.request(m.to, RPC_SNAPSHOT, encodeWithBody(header, chunk), {
        timeoutMs: CHUNK_TIMEOUT_MS,
      });
      offset += chunk.length;
      if (bandwidthBytesPerSec > 0) {
        const dueMs = (offset / bandwidthBytesPerSec) * 1000 - (performance.now() - started);
        if (dueMs > 0) await sleep(dueMs);
      }
    }
    // The store verified its own checksum as it streamed; this one covers the wire and the follower's disk.
    const header = { index, term, leaderTerm: m.term, offset, done: true, crc };
    await n.transport.request(m.to, RPC_SNAPSHOT, encodeWithBody(header, latest.info.meta), {
      timeoutMs: CHUNK_TIMEOUT_MS,
    });
    n.logger.info({ peer: m.to, index, sizeBytes: offset, ms: performance.now() - started }, "snapshot sent");
  }

  // ---------------------------------------------------------------------------
  // Follower side: assembling and installing
  // ---------------------------------------------------------------------------

  registerHandlers(): void {
    this.node.transport.handle(RPC_SNAPSHOT, (payload, ctx) => this.onChunk(payload, ctx.from));
  }

  private async onChunk(payload: Uint8Array, from: NodeId): Promise<Uint8Array> {
    const { header, body } = decodeWithBody(payload);
    const index = num(header, "index");
    const term = num(header, "term");
    const offset = num(header, "offset");
    // Only the leader streams snapshots: a stale leader's, or another peer's, are refused
    // before they take any disk.
    const st = this.node.raw.status();
    const leaderTerm = num(header, "leaderTerm");
    if (leaderTerm < st.term || (leaderTerm === st.term && st.lead !== NONE && st.lead !== from)) {
      throw new ProtocolError(
        `snapshot ${index} from node ${from} in term ${leaderTerm}: not the leader (term ${st.term}, leader ${st.lead})`,
      );
    }
    const key = `${from}:${index}`;
    let inc = this.incoming.get(key);
    if (offset === 0 && (!header.done || !inc)) {
      // A new transfer from this peer supersedes its unfinished ones: one per peer on disk.
      for (const [k, old] of this.incoming) {
        if (!k.startsWith(`${from}:`)) continue;
        this.incoming.delete(k);
        await rm(old.path, { force: true });
      }
      inc = { path: join(this.incomingDir, `${from}-${index}.snap`), index, offset: 0, crc: 0 };
      this.incoming.set(key, inc);
      await rm(inc.path, { force: true });
      // An empty image (an empty state machine) comes as the last chunk alone.
      if (header.done) await writeFile(inc.path, new Uint8Array(0));
    }
    if (!inc || inc.offset !== offset) {
      throw new ProtocolError(
        `snapshot ${index} chunk at ${offset} out of order (expected ${inc?.offset ?? 0})`,
      );
    }
    if (!header.done) {
      const fh = await open(inc.path, "a");
      try {
        await fh.write(body);
      } finally {
        await fh.close();
      }
      inc.offset += body.length;
      inc.crc = crc32c(body, inc.crc);
      return new Uint8Array(0);
    }
    this.incoming.delete(key);
    let meta: SnapshotMeta;
    try {
      if (inc.crc !== num(header, "crc"))
        throw new CorruptionError(inc.path, 0, `snapshot ${index} checksum mismatch`);
      meta = decodeSnapshotMeta(body);
    } catch (e) {
      await rm(inc.path, { force: true });
      throw e;
    }
    if (this.assembled.has(index)) {
      // The same image again (a retransmit after a lost answer): the core took the first
      // copy, whose install may be waiting on it; this one is not needed.
      await rm(inc.path, { force: true });
      return new Uint8Array(0);
    }
    const path = join(this.incomingDir, `assembled-${from}-${index}-${++this.assembledSeq}.snap`);
    await rename(inc.path, path);
    this.assembled.set(index, { path, term, meta: body, crc: inc.crc });
    // The bytes are here and verified: now the core may accept the snapshot.
    this.node.stepLocal({
      type: "snapshot",
      from,
      to: this.node.id,
      term: num(header, "leaderTerm"),
      snapshot: { metadata: { index, term, confState: meta.confState }, data: new Uint8Array(0) },
    });
    // Refused (not newer than our commit index, or we stopped): its bytes are of no use.
    if (this.node.raw.pendingSnapshotIndex() !== index) {
      this.assembled.delete(index);
      await rm(path, { force: true });
    }
    return new Uint8Array(0);
  }

  /** Installs the snapshot of a Ready (the core accepted it): state machine, snapshot store, log. */
  async install(s: Snapshot): Promise<void> {
    const n = this.node;
    // A snapshot of our own still being written would otherwise land after this one.
    await this.taking?.catch(() => {});
    const { index, term, confState } = s.metadata;
    const a = this.assembled.get(index);
    if (!a)
      throw new CorruptionError(
        "(snapshot)",
        0,
        `snapshot ${index} accepted by the core but its bytes are missing`,
      );
    const chunkBytes = n.config.snapshot.chunkBytes;
    await n.stateMachine.restore(checked(readFileChunks(a.path, chunkBytes), a.crc, a.path), { index, term });
    const info = await n.snapshotStore.write(index, term, a.meta, readFileChunks(a.path, chunkBytes));
    await n.logStore.installSnapshot({ index, term, confState });
    const meta = decodeSnapshotMeta(a.meta);
    this.latest = { info, meta };
    for (const [id, addr] of Object.entries(meta.members)) {
      n.members.set(Number(id), addr);
      if (Number(id) !== n.id) n.transport.addPeer(Number(id), addr);
    }
    await n.members.persist();
    // Assembled images up to this one are of no more use (the core refused them, or this is it);
    // a newer one that arrived meanwhile stays for its own Ready.
    for (const [i, x] of this.assembled) {
      if (i > index) continue;
      this.assembled.delete(i);
      await rm(x.path, { force: true });
    }
    // The installed snapshot is the newest, and the log's compaction point: it stays.
    await n.snapshotStore.prune(n.config.snapshot.keep, [index]);
    n.afterSnapshotInstall(index);
    n.emit("snapshotInstalled", { index, term });
    n.logger.info({ index, term }, "snapshot installed");
  }

  /** Snapshots asked for and not started fail with `e` (a storage failure, or stopping). */
  failRequests(e: Error): void {
    for (const w of this.requests.splice(0)) w.reject(e);
  }

  async stop(): Promise<void> {
    this.failRequests(new StoppedError());
    await this.taking?.catch(() => {});
    await rm(this.incomingDir, { recursive: true, force: true }).catch(() => {});
  }
}

/** Passes `chunks` through; at their end, throws if their checksum is not `crc`. */
async function* checked(
  chunks: AsyncIterable<Uint8Array>,
  crc: number,
  path: string,
): AsyncIterable<Uint8Array> {
  let c = 0;
  for await (const chunk of chunks) {
    c = crc32c(chunk, c);
    yield chunk;
  }
  if (c !== crc)
    throw new CorruptionError(path, 0, "an assembled snapshot changed on disk before its install");
}

async function* readFileChunks(path: string, chunkBytes: number): AsyncIterable<Uint8Array> {
  const fh = await open(path, "r");
  try {
    for (;;) {
      const buf = new Uint8Array(chunkBytes);
      const { bytesRead } = await fh.read(buf, 0, chunkBytes, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}
