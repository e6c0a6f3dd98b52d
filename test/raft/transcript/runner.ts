/**
 * A transcript (datadriven) runner in the style of etcd-io/raft's
 * interaction tests. A scenario file is a list of blocks:
 *
 *   # comments (kept on rewrite)
 *   command arg arg key=value
 *   ----
 *   expected output
 *
 * separated by blank lines. The runner drives a {@link LocalCluster} and
 * prints what happened: Readys handled, messages delivered (or dropped) and
 * every change of a node's role, term or leader.
 */

import { TsraftError } from "../../../src/errors.ts";
import { type ConfChangeSingle, type ConfChangeTransition, ConfChangeType } from "../../../src/raft/types.ts";
import { LocalCluster, type NodeOptions } from "../../../src/testing/local-cluster.ts";
import { fmtConfChange, fmtConfState, fmtEntries, fmtEntry, fmtMsg } from "./format.ts";

export interface Block {
  /** Comment lines and blank lines preceding the command, verbatim. */
  readonly preamble: string[];
  readonly command: string;
  readonly expected: string;
  /** 1-based line of the command, for error messages. */
  readonly line: number;
}

export function parseTranscript(text: string): { blocks: Block[]; trailer: string[] } {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  let preamble: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.trim() === "" || l.startsWith("#")) {
      preamble.push(l);
      i++;
      continue;
    }
    const line = i + 1;
    const command = l;
    i++;
    if (lines[i] !== "----") throw new Error(`line ${line}: expected ---- after command "${command}"`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i] !== "") out.push(lines[i++]!);
    blocks.push({ preamble, command, expected: out.join("\n"), line });
    preamble = [];
  }
  return { blocks, trailer: preamble };
}

export function renderTranscript(
  blocks: readonly Block[],
  actual: readonly string[],
  trailer: string[],
): string {
  const parts: string[] = [];
  blocks.forEach((b, i) => {
    parts.push(...b.preamble, b.command, "----", actual[i]!);
  });
  // Blocks are separated by one blank line, which parse keeps in the next preamble.
  let text = parts.join("\n");
  const tail = trailer.join("\n").replace(/\n+$/, "");
  if (tail.trim() !== "") text += `\n${tail}`;
  return `${text}\n`;
}

interface NodeView {
  role: string;
  term: number;
  lead: number;
}

const BOOL = (v: string) => v === "true";

/** Executes transcript commands against one cluster. */
export class TranscriptRunner {
  private c: LocalCluster | null = null;
  private out: string[] = [];
  private views = new Map<number, NodeView>();
  private bootstrapVoters: number[] = [];

  run(command: string): string {
    this.out = [];
    const [name, ...rest] = command.trim().split(/\s+/);
    const args = rest.filter((a) => !a.includes("="));
    const kv = new Map(rest.filter((a) => a.includes("=")).map((a) => a.split("=") as [string, string]));
    try {
      this.dispatch(name!, args, kv);
    } catch (e) {
      if (!(e instanceof TsraftError)) throw e;
      const reason = (e as { reason?: string }).reason;
      const lead = (e as { leaderId?: number }).leaderId;
      this.out.push(
        `error: ${e.name}${reason ? `(${reason})` : ""}${lead !== undefined ? `(leader=${lead})` : ""}`,
      );
    }
    this.noteStateChanges();
    return this.out.length === 0 ? "ok" : this.out.join("\n");
  }

  get cluster(): LocalCluster {
    if (!this.c) throw new Error("no cluster: run add-nodes first");
    return this.c;
  }

  private dispatch(name: string, args: string[], kv: Map<string, string>): void {
    const c = () => this.cluster;
    const id = (i: number) => {
      const v = Number(args[i]);
      if (!Number.isInteger(v)) throw new Error(`${name}: argument ${i + 1} must be a node id`);
      return v;
    };
    switch (name) {
      case "add-nodes":
        this.addNodes(id(0), kv);
        return;
      case "add-node": {
        // A new member bootstraps with the cluster's initial configuration, like every other node.
        c().addNode(id(0), {
          voters: this.bootstrapVoters,
          learners: [],
          votersOutgoing: [],
          learnersNext: [],
          autoLeave: false,
        });
        this.noteStateChanges(true);
        return;
      }
      case "campaign":
        c().node(id(0)).raw.campaign();
        return;
      case "tick":
        for (let i = 0; i < Number(args[1] ?? 1); i++) {
          c().tick(id(0));
          this.noteStateChanges();
        }
        return;
      case "tick-all":
        for (let i = 0; i < Number(args[0] ?? 1); i++) {
          c().tickAll(1);
          this.noteStateChanges();
        }
        return;
      case "propose": {
        const pos = c()
          .node(id(0))
          .raw.propose(args.slice(1).map((d) => new TextEncoder().encode(d)));
        this.out.push(`proposed ${pos.firstIndex}..${pos.lastIndex} t=${pos.term}`);
        return;
      }
      case "propose-conf-change":
        this.proposeConfChange(id(0), args.slice(1), kv);
        return;
      case "transfer-leader":
        c().node(id(0)).raw.transferLeader(id(1));
        return;
      case "read-index":
        c()
          .node(id(0))
          .raw.readIndex(args[1]!, args[2] === "lease" ? "lease" : "safe");
        return;
      case "report-snapshot":
        c()
          .node(id(0))
          .raw.reportSnapshot(id(1), args[2] !== "fail");
        return;
      case "report-unreachable":
        c().node(id(0)).raw.reportUnreachable(id(1));
        return;
      case "process-ready":
        for (let i = 0; i < args.length; i++) this.processReady(id(i));
        return;
      case "deliver-msgs":
        this.deliver(args[0]);
        return;
      case "drop-msgs": {
        const match = msgFilter(args[0]);
        const before = c().queue.length;
        c().queue = c().queue.filter((m) => !match(m));
        this.out.push(`dropped ${before - c().queue.length}`);
        return;
      }
      case "stabilize":
        this.stabilize(args.map(Number));
        return;
      case "partition":
        c().partition(...args.map((g) => g.split(",").map(Number)));
        return;
      case "isolate":
        c().isolate(id(0));
        return;
      case "cut":
        for (const a of args) {
          const [f, t] = a.split("->").map(Number);
          c().cutLink(f!, t!);
        }
        return;
      case "heal":
        c().heal();
        return;
      case "restart":
        c().restart(id(0));
        this.noteStateChanges(true);
        return;
      case "compact": {
        const n = c().node(id(0));
        const index = id(1);
        const applied = n.raw.status().applied;
        if (index > applied) throw new Error(`compact: ${index} is beyond applied ${applied}`);
        n.storage.createSnapshot(index, n.raw.confState(), new Uint8Array(0));
        n.storage.compact(index);
        return;
      }
      case "raft-state":
        for (const n of this.sortedNodes()) {
          const s = n.raw.status();
          this.out.push(
            `${s.id}: ${s.role} t=${s.term} lead=${s.lead} commit=${s.commit} applied=${s.applied} last=${s.lastIndex}`,
          );
        }
        return;
      case "status":
        this.status(id(0));
        return;
      case "log":
        this.log(id(0));
        return;
      case "applied": {
        const n = c().node(id(0));
        this.out.push(`${n.id}: ${fmtEntries(n.applied) || "(none)"}`);
        return;
      }
      case "reads": {
        const n = c().node(id(0));
        for (const r of n.readStates) this.out.push(`read ${r.ctx}@${r.index}`);
        for (const d of n.droppedReads) this.out.push(`dropped ${d.ctx} (${d.reason})`);
        return;
      }
      default:
        throw new Error(`unknown command ${name}`);
    }
  }

  private addNodes(n: number, kv: Map<string, string>): void {
    const opts: Record<string, unknown> = {};
    const keys: Record<string, [string, (v: string) => unknown]> = {
      prevote: ["preVote", BOOL],
      checkquorum: ["checkQuorum", BOOL],
      lease: ["leaseTicks", Number],
      election: ["electionTick", Number],
      heartbeat: ["heartbeatTick", Number],
      "max-size-per-msg": ["maxSizePerMsg", Number],
      "max-inflight": ["maxInflightMsgs", Number],
      "max-inflight-bytes": ["maxInflightBytes", Number],
      "max-uncommitted": ["maxUncommittedEntriesSize", Number],
    };
    let seed = 1;
    for (const [k, v] of kv) {
      if (k === "seed") {
        seed = Number(v);
        continue;
      }
      const spec = keys[k];
      if (!spec) throw new Error(`add-nodes: unknown option ${k}`);
      opts[spec[0]] = spec[1](v);
    }
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    this.bootstrapVoters = ids;
    this.c = new LocalCluster(ids, opts as NodeOptions, seed);
    this.c.onDeliver = (m) => {
      this.out.push(fmtMsg(m));
    };
    this.c.onDrop = (m) => {
      this.out.push(`${fmtMsg(m)} DROPPED`);
    };
    this.views.clear();
    this.noteStateChanges(true);
  }

  private sortedNodes() {
    return [...this.cluster.nodes.values()].sort((a, b) => a.id - b.id);
  }

  /** Prints every node whose role, term or leader changed since last printed. */
  private noteStateChanges(quietNew = false): void {
    if (!this.c) return;
    for (const n of this.sortedNodes()) {
      const s = n.raw.status();
      const prev = this.views.get(n.id);
      const now = { role: s.role, term: s.term, lead: s.lead };
      if (prev && prev.role === now.role && prev.term === now.term && prev.lead === now.lead) continue;
      this.views.set(n.id, now);
      if (prev || !quietNew) this.out.push(`~ ${n.id} is ${now.role} t=${now.term} lead=${now.lead}`);
    }
  }

  private processReady(id: number): boolean {
    const n = this.cluster.node(id);
    if (!n.raw.hasReady()) return false;
    // Peek at the Ready by wrapping ready(): LocalCluster handles it exactly as a runtime does.
    const raw = n.raw;
    const orig = raw.ready.bind(raw);
    const lines: string[] = [];
    raw.ready = () => {
      const rd = orig();
      if (rd.hardState) {
        const h = rd.hardState;
        lines.push(`  hard: term=${h.term} vote=${h.vote} commit=${h.commit}`);
      }
      if (rd.snapshot) {
        const md = rd.snapshot.metadata;
        lines.push(`  snapshot: ${md.index}/${md.term} ${fmtConfState(md.confState)}`);
      }
      if (rd.entries.length > 0) lines.push(`  entries: ${fmtEntries(rd.entries)}`);
      if (rd.committedEntries.length > 0) lines.push(`  apply: ${fmtEntries(rd.committedEntries)}`);
      for (const r of rd.readStates) lines.push(`  read-state: ${r.ctx}@${r.index}`);
      for (const d of rd.droppedReads) lines.push(`  dropped-read: ${d.ctx} (${d.reason})`);
      const sends = rd.messagesNow.length + rd.messages.length;
      if (sends > 0) lines.push(`  send: ${rd.messagesNow.length} now, ${rd.messages.length} after persist`);
      return rd;
    };
    try {
      this.cluster.processReady(id);
    } finally {
      // Remove the own-property wrapper so the prototype method is used again.
      delete (raw as { ready?: unknown }).ready;
    }
    this.out.push(`> ${id} ready`, ...lines);
    this.noteStateChanges();
    return true;
  }

  private deliver(spec: string | undefined): number {
    return this.deliverWhere(msgFilter(spec));
  }

  private stabilize(only: number[]): void {
    const c = this.cluster;
    for (let round = 0; round < 1000; round++) {
      let moved = false;
      for (const n of this.sortedNodes()) {
        if (only.length > 0 && !only.includes(n.id)) continue;
        moved = this.processReady(n.id) || moved;
      }
      const spec = only.length > 0 ? (m: { from: number; to: number }) => only.includes(m.to) : undefined;
      const before = c.queue.length;
      const delivered = spec ? this.deliverWhere(spec) : this.deliver(undefined);
      moved = moved || delivered > 0 || c.queue.length !== before;
      if (!moved) return;
    }
    throw new Error("stabilize: no quiescence after 1000 rounds");
  }

  private deliverWhere(f: (m: { from: number; to: number }) => boolean): number {
    const c = this.cluster;
    const batch = c.queue.filter(f);
    c.queue = c.queue.filter((m) => !f(m));
    for (const m of batch) {
      c.queue.push(m);
      c.deliverAll((x) => x === m);
      this.noteStateChanges();
    }
    return batch.length;
  }

  private proposeConfChange(leader: number, args: string[], kv: Map<string, string>): void {
    const types: Record<string, ConfChangeType> = {
      "add-node": ConfChangeType.AddNode,
      "add-learner": ConfChangeType.AddLearner,
      "remove-node": ConfChangeType.RemoveNode,
    };
    const changes: ConfChangeSingle[] = [];
    for (let i = 0; i < args.length; i++) {
      if (args[i] === "leave") continue;
      const type = types[args[i]!];
      if (type === undefined) throw new Error(`propose-conf-change: unknown change ${args[i]}`);
      changes.push({ type, nodeId: Number(args[++i]) });
    }
    const transition = (kv.get("transition") ?? "auto") as ConfChangeTransition;
    const cc = { changes, transition, context: new Uint8Array(0) };
    const pos = this.cluster.node(leader).raw.proposeConfChange(cc);
    this.out.push(`proposed ${pos.index}/${pos.term} conf(${fmtConfChange(cc)})`);
  }

  private status(id: number): void {
    const s = this.cluster.node(id).raw.status();
    this.out.push(
      `${s.id}: ${s.role} t=${s.term} vote=${s.vote} lead=${s.lead} ${fmtConfState(s.confState)}` +
        (s.leadTransferee ? ` transferee=${s.leadTransferee}` : ""),
    );
    for (const p of s.progress) {
      let line = `  ${p.id}: match=${p.match} next=${p.next} ${p.state}`;
      if (p.inflight > 0) line += ` inflight=${p.inflight}`;
      if (p.pendingSnapshot > 0) line += ` pending-snap=${p.pendingSnapshot}`;
      if (p.learner) line += " learner";
      if (!p.recentActive) line += " inactive";
      this.out.push(line);
    }
  }

  private log(id: number): void {
    const log = this.cluster.node(id).raw.internals.log;
    const first = log.firstIndex();
    const last = log.lastIndex();
    const ents = first <= last ? log.slice(first, last + 1, Number.MAX_SAFE_INTEGER) : [];
    const head = first > 1 ? `(compacted to ${first - 1}/${log.term(first - 1)}) ` : "";
    this.out.push(`${id}: ${head}${ents.map(fmtEntry).join(", ") || "(empty)"}`);
  }
}

/** `1->2`, `->2` (to 2), `1->` (from 1), `2` (to 2) or nothing (all). */
function msgFilter(spec: string | undefined): (m: { from: number; to: number }) => boolean {
  if (!spec) return () => true;
  if (!spec.includes("->")) {
    const to = Number(spec);
    return (m) => m.to === to;
  }
  const [f, t] = spec.split("->");
  return (m) => (f === "" || m.from === Number(f)) && (t === "" || m.to === Number(t));
}
