// fast-check arbitraries for every Message variant. Each is typed against its
// interface, so a field added to src/raft/types.ts breaks this file's types
// until the arbitrary (and therefore the codec round-trip test) covers it.
import fc from "fast-check";
import type {
  AppendMessage,
  AppendResponseMessage,
  ConfState,
  Entry,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Message,
  MessageType,
  ReadIndexMessage,
  ReadIndexResponseMessage,
  SnapshotMessage,
  TimeoutNowMessage,
  TransferLeaderMessage,
  VoteMessage,
  VoteResponseMessage,
} from "../../src/raft/types.ts";

// Bias towards edge values of the varint encoding as well as small ones.
const uint = fc.oneof(
  fc.nat({ max: 200 }),
  fc.constantFrom(0, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER),
  fc.maxSafeNat(),
);
const nodeId = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));
const bytes = fc.uint8Array({ maxLength: 300 });
// Well-formed strings only: the codec documents that ctx must be valid UTF-16.
const str = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }));
const ids = fc.array(nodeId, { maxLength: 7 });

// Plain-prototype objects, so deepStrictEqual compares them with decoded messages.
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

const base = { from: nodeId, to: nodeId, term: uint };

const entry: fc.Arbitrary<Entry> = rec({
  term: uint,
  index: uint,
  type: fc.constantFrom(0 as const, 1 as const),
  data: bytes,
});

const confState: fc.Arbitrary<ConfState> = rec({
  voters: ids,
  learners: ids,
  votersOutgoing: ids,
  learnersNext: ids,
  autoLeave: fc.boolean(),
});

export const arbitraries: { readonly [K in MessageType]: fc.Arbitrary<Message & { readonly type: K }> } = {
  append: rec<AppendMessage>({
    type: fc.constant("append"),
    ...base,
    prevIndex: uint,
    prevTerm: uint,
    entries: fc.array(entry, { maxLength: 8 }),
    commit: uint,
  }),
  appendResp: rec<AppendResponseMessage>({
    type: fc.constant("appendResp"),
    ...base,
    index: uint,
    reject: fc.boolean(),
    hintIndex: uint,
    hintTerm: uint,
  }),
  vote: rec<VoteMessage & { type: "vote" }>({
    type: fc.constant("vote"),
    ...base,
    lastIndex: uint,
    lastTerm: uint,
    transfer: fc.boolean(),
  }),
  preVote: rec<VoteMessage & { type: "preVote" }>({
    type: fc.constant("preVote"),
    ...base,
    lastIndex: uint,
    lastTerm: uint,
    transfer: fc.boolean(),
  }),
  voteResp: rec<VoteResponseMessage & { type: "voteResp" }>({
    type: fc.constant("voteResp"),
    ...base,
    reject: fc.boolean(),
  }),
  preVoteResp: rec<VoteResponseMessage & { type: "preVoteResp" }>({
    type: fc.constant("preVoteResp"),
    ...base,
    reject: fc.boolean(),
  }),
  snapshot: rec<SnapshotMessage>({
    type: fc.constant("snapshot"),
    ...base,
    snapshot: rec({
      metadata: rec({ index: uint, term: uint, confState }),
      data: fc.uint8Array({ maxLength: 2000 }),
    }),
  }),
  heartbeat: rec<HeartbeatMessage>({ type: fc.constant("heartbeat"), ...base, commit: uint, round: uint }),
  heartbeatResp: rec<HeartbeatResponseMessage>({
    type: fc.constant("heartbeatResp"),
    ...base,
    round: uint,
  }),
  timeoutNow: rec<TimeoutNowMessage>({ type: fc.constant("timeoutNow"), ...base }),
  readIndex: rec<ReadIndexMessage>({ type: fc.constant("readIndex"), ...base, ctx: str }),
  readIndexResp: rec<ReadIndexResponseMessage>({
    type: fc.constant("readIndexResp"),
    ...base,
    ctx: str,
    index: uint,
    reject: fc.boolean(),
  }),
  transferLeader: rec<TransferLeaderMessage>({
    type: fc.constant("transferLeader"),
    ...base,
    target: nodeId,
  }),
};

export const anyMessage: fc.Arbitrary<Message> = fc.oneof(
  ...(Object.values(arbitraries) as fc.Arbitrary<Message>[]),
);

/** One fixed sample of every variant (for the TCP/memory round-trip tests). */
export function sampleOfEveryType(from: number, to: number): Message[] {
  const data = new Uint8Array([1, 2, 3, 255]);
  const cs: ConfState = {
    voters: [1, 2, 3],
    learners: [4],
    votersOutgoing: [],
    learnersNext: [],
    autoLeave: false,
  };
  const b = { from, to, term: 7 };
  return [
    {
      type: "append",
      ...b,
      prevIndex: 10,
      prevTerm: 6,
      commit: 9,
      entries: [{ term: 7, index: 11, type: 0, data }],
    },
    { type: "appendResp", ...b, index: 11, reject: true, hintIndex: 5, hintTerm: 3 },
    { type: "vote", ...b, lastIndex: 11, lastTerm: 7, transfer: true },
    { type: "preVote", ...b, lastIndex: 11, lastTerm: 7, transfer: false },
    { type: "voteResp", ...b, reject: false },
    { type: "preVoteResp", ...b, reject: true },
    { type: "snapshot", ...b, snapshot: { metadata: { index: 100, term: 6, confState: cs }, data } },
    { type: "heartbeat", ...b, commit: 11, round: 42 },
    { type: "heartbeatResp", ...b, round: 42 },
    { type: "timeoutNow", ...b },
    { type: "readIndex", ...b, ctx: "read-1 ✓" },
    { type: "readIndexResp", ...b, ctx: "read-1 ✓", index: 11, reject: false },
    { type: "transferLeader", ...b, target: 3 },
  ];
}

/** A heartbeat of term 1 carrying `round`: the plain message the transport tests send. */
export const hb = (from: number, to: number, round: number): Message => ({
  type: "heartbeat",
  from,
  to,
  term: 1,
  commit: 0,
  round,
});
