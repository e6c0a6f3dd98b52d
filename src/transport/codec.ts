/**
 * The binary codec for Raft messages. Layout of one encoded message:
 *
 *   u8 tag | varint from | varint to | varint term | fields of the variant...
 *
 * Integers are LEB128 varints (small values — node ids, recent terms, flags —
 * take one byte; log indexes a few), booleans one byte (0/1 only), strings and
 * byte strings a varint length then the bytes. Entry data and snapshot data
 * travel as raw bytes: no JSON, no base64.
 *
 * Decoding is strict (unknown tags, bad booleans, non-canonical varints and
 * trailing bytes are all ProtocolErrors) so that garbage is detected early
 * rather than turned into a plausible-looking message.
 *
 * Strings (ReadIndex ctx) must be well-formed UTF-16: a lone surrogate would
 * not survive the UTF-8 round trip.
 */

import { ProtocolError } from "../errors.ts";
import type { ConfState, Entry, EntryType, Message, MessageType, NodeId, Snapshot } from "../raft/types.ts";
import { bytesSize, Reader, stringSize, varintSize, Writer } from "./wire.ts";

/** Wire tags. Append only: a tag, once shipped, keeps its meaning forever. */
export const MESSAGE_TAGS: Readonly<Record<MessageType, number>> = Object.freeze({
  append: 1,
  appendResp: 2,
  vote: 3,
  preVote: 4,
  voteResp: 5,
  preVoteResp: 6,
  snapshot: 7,
  heartbeat: 8,
  heartbeatResp: 9,
  timeoutNow: 10,
  readIndex: 11,
  readIndexResp: 12,
  transferLeader: 13,
});

const TAG_TO_TYPE: readonly (MessageType | undefined)[] = (() => {
  const out: (MessageType | undefined)[] = [];
  for (const [type, tag] of Object.entries(MESSAGE_TAGS)) out[tag] = type as MessageType;
  return out;
})();

// Smallest possible encodings, used to reject counts a frame cannot hold
// before allocating arrays for them.
const MIN_ENTRY_BYTES = 4; // term, index, type, data length: one byte each
const MIN_NODE_ID_BYTES = 1;
const MAX_ENTRY_TYPE = 1;

function nodeIdsSize(ids: readonly NodeId[]): number {
  let n = varintSize(ids.length);
  for (const id of ids) n += varintSize(id);
  return n;
}

function confStateSize(cs: ConfState): number {
  return (
    nodeIdsSize(cs.voters) +
    nodeIdsSize(cs.learners) +
    nodeIdsSize(cs.votersOutgoing) +
    nodeIdsSize(cs.learnersNext) +
    1
  );
}

function entrySize(e: Entry): number {
  return varintSize(e.term) + varintSize(e.index) + 1 + bytesSize(e.data);
}

function snapshotSize(s: Snapshot): number {
  const m = s.metadata;
  return varintSize(m.index) + varintSize(m.term) + confStateSize(m.confState) + bytesSize(s.data);
}

/** Exact encoded size of `m` in bytes. */
export function messageSize(m: Message): number {
  let n = 1 + varintSize(m.from) + varintSize(m.to) + varintSize(m.term);
  switch (m.type) {
    case "append": {
      n += varintSize(m.prevIndex) + varintSize(m.prevTerm) + varintSize(m.commit);
      n += varintSize(m.entries.length);
      for (const e of m.entries) n += entrySize(e);
      return n;
    }
    case "appendResp":
      return n + varintSize(m.index) + 1 + varintSize(m.hintIndex) + varintSize(m.hintTerm);
    case "vote":
    case "preVote":
      return n + varintSize(m.lastIndex) + varintSize(m.lastTerm) + 1;
    case "voteResp":
    case "preVoteResp":
      return n + 1;
    case "snapshot":
      return n + snapshotSize(m.snapshot);
    case "heartbeat":
      return n + varintSize(m.commit) + varintSize(m.round);
    case "heartbeatResp":
      return n + varintSize(m.round);
    case "readIndex":
      return n + stringSize(m.ctx);
    case "timeoutNow":
      return n;
    case "readIndexResp":
      return n + stringSize(m.ctx) + varintSize(m.index) + 1;
    case "transferLeader":
      return n + varintSize(m.target);
  }
}

function writeNodeIds(w: Writer, ids: readonly NodeId[]): void {
  w.varint(ids.length);
  for (const id of ids) w.varint(id, "node id");
}

function writeConfState(w: Writer, cs: ConfState): void {
  writeNodeIds(w, cs.voters);
  writeNodeIds(w, cs.learners);
  writeNodeIds(w, cs.votersOutgoing);
  writeNodeIds(w, cs.learnersNext);
  w.bool(cs.autoLeave);
}

/** Writes `m` at the writer's position; the caller sized the buffer with {@link messageSize}. */
export function writeMessage(w: Writer, m: Message): void {
  w.u8(MESSAGE_TAGS[m.type]);
  w.varint(m.from, "from");
  w.varint(m.to, "to");
  w.varint(m.term, "term");
  switch (m.type) {
    case "append":
      w.varint(m.prevIndex, "prevIndex");
      w.varint(m.prevTerm, "prevTerm");
      w.varint(m.commit, "commit");
      w.varint(m.entries.length);
      for (const e of m.entries) {
        w.varint(e.term, "entry term");
        w.varint(e.index, "entry index");
        w.u8(e.type);
        w.bytes(e.data);
      }
      return;
    case "appendResp":
      w.varint(m.index, "index");
      w.bool(m.reject);
      w.varint(m.hintIndex, "hintIndex");
      w.varint(m.hintTerm, "hintTerm");
      return;
    case "vote":
    case "preVote":
      w.varint(m.lastIndex, "lastIndex");
      w.varint(m.lastTerm, "lastTerm");
      w.bool(m.transfer);
      return;
    case "voteResp":
    case "preVoteResp":
      w.bool(m.reject);
      return;
    case "snapshot": {
      const md = m.snapshot.metadata;
      w.varint(md.index, "snapshot index");
      w.varint(md.term, "snapshot term");
      writeConfState(w, md.confState);
      w.bytes(m.snapshot.data);
      return;
    }
    case "heartbeat":
      w.varint(m.commit, "commit");
      w.varint(m.round, "round");
      return;
    case "heartbeatResp":
      w.varint(m.round, "round");
      return;
    case "readIndex":
      w.string(m.ctx);
      return;
    case "timeoutNow":
      return;
    case "readIndexResp":
      w.string(m.ctx);
      w.varint(m.index, "index");
      w.bool(m.reject);
      return;
    case "transferLeader":
      w.varint(m.target, "target");
      return;
  }
}

/** Encodes one message into a fresh buffer of exactly its size. */
export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer(new Uint8Array(messageSize(m)));
  writeMessage(w, m);
  return w.finish();
}

function readNodeIds(r: Reader, what: string): NodeId[] {
  const n = r.count(MIN_NODE_ID_BYTES, what);
  const ids = new Array<NodeId>(n);
  for (let i = 0; i < n; i++) ids[i] = r.varint(what);
  return ids;
}

function readConfState(r: Reader): ConfState {
  return {
    voters: readNodeIds(r, "voters"),
    learners: readNodeIds(r, "learners"),
    votersOutgoing: readNodeIds(r, "votersOutgoing"),
    learnersNext: readNodeIds(r, "learnersNext"),
    autoLeave: r.bool("autoLeave"),
  };
}

/**
 * The entries' data are copied out of the frame into one buffer shared by the
 * batch (one allocation, not one per entry: a buffer is costly to create, and
 * the entries of a batch are kept and dropped together, by the log).
 */
function readEntries(r: Reader): Entry[] {
  const n = r.count(MIN_ENTRY_BYTES, "entries");
  const heads = new Array<number>(3 * n);
  const views = new Array<Uint8Array>(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    heads[3 * i] = r.varint("entry term");
    heads[3 * i + 1] = r.varint("entry index");
    const type = r.u8("entry type");
    if (type > MAX_ENTRY_TYPE) throw new ProtocolError(`unknown entry type ${type}`);
    heads[3 * i + 2] = type;
    const data = r.bytesView("entry data");
    views[i] = data;
    total += data.length;
  }
  const slab = new Uint8Array(total);
  const entries = new Array<Entry>(n);
  let off = 0;
  for (let i = 0; i < n; i++) {
    const v = views[i]!;
    slab.set(v, off);
    const data = slab.subarray(off, off + v.length);
    off += v.length;
    entries[i] = { term: heads[3 * i]!, index: heads[3 * i + 1]!, type: heads[3 * i + 2] as EntryType, data };
  }
  return entries;
}

/**
 * Reads one message from the reader's position (the caller checks for
 * trailing bytes). Throws ProtocolError on any malformed input.
 */
export function readMessage(r: Reader): Message {
  const tag = r.u8("message tag");
  const type = TAG_TO_TYPE[tag];
  if (type === undefined) throw new ProtocolError(`unknown message tag ${tag}`);
  const from = r.varint("from");
  const to = r.varint("to");
  const term = r.varint("term");
  switch (type) {
    case "append": {
      const prevIndex = r.varint("prevIndex");
      const prevTerm = r.varint("prevTerm");
      const commit = r.varint("commit");
      return { type, from, to, term, prevIndex, prevTerm, commit, entries: readEntries(r) };
    }
    case "appendResp": {
      const index = r.varint("index");
      const reject = r.bool("reject");
      const hintIndex = r.varint("hintIndex");
      const hintTerm = r.varint("hintTerm");
      return { type, from, to, term, index, reject, hintIndex, hintTerm };
    }
    case "vote":
    case "preVote": {
      const lastIndex = r.varint("lastIndex");
      const lastTerm = r.varint("lastTerm");
      return { type, from, to, term, lastIndex, lastTerm, transfer: r.bool("transfer") };
    }
    case "voteResp":
    case "preVoteResp":
      return { type, from, to, term, reject: r.bool("reject") };
    case "snapshot": {
      const index = r.varint("snapshot index");
      const snapTerm = r.varint("snapshot term");
      const confState = readConfState(r);
      const data = r.bytes("snapshot data");
      return { type, from, to, term, snapshot: { metadata: { index, term: snapTerm, confState }, data } };
    }
    case "heartbeat": {
      const commit = r.varint("commit");
      return { type, from, to, term, commit, round: r.varint("round") };
    }
    case "heartbeatResp":
      return { type, from, to, term, round: r.varint("round") };
    case "readIndex":
      return { type, from, to, term, ctx: r.string("ctx") };
    case "timeoutNow":
      return { type, from, to, term };
    case "readIndexResp": {
      const ctx = r.string("ctx");
      const index = r.varint("index");
      return { type, from, to, term, ctx, index, reject: r.bool("reject") };
    }
    case "transferLeader":
      return { type, from, to, term, target: r.varint("target") };
  }
}

/** Decodes exactly one message occupying all of `buf`. */
export function decodeMessage(buf: Uint8Array): Message {
  const r = new Reader(buf);
  const m = readMessage(r);
  r.done(`${m.type} message`);
  return m;
}
