/**
 * The data types of the pure Raft core. Everything here is plain data: the
 * storage layer persists it, the transport encodes it, the runtime moves it.
 *
 * Node ids are positive safe integers (0 means "none").
 */

export type NodeId = number;

/** 0 means "no node" (no vote cast, no leader known). */
export const NONE: NodeId = 0;

export const EntryType = {
  /** An application command (or an empty entry a new leader appends). */
  Normal: 0,
  /** A membership change; `data` is an encoded {@link ConfChange}. */
  ConfChange: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** The state that must be durable before any message depending on it is sent. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

/**
 * A membership configuration. In a joint configuration `votersOutgoing` is
 * non-empty: decisions need a majority of `voters` AND of `votersOutgoing`.
 * `learnersNext` are voters of the outgoing config that become learners when
 * the joint configuration is left.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  readonly learnersNext: readonly NodeId[];
  readonly autoLeave: boolean;
}

export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: [],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/**
 * A snapshot. `data` is opaque to the core; a runtime that streams large
 * snapshots in chunks may carry an empty `data` here and move the bytes itself.
 */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

export const ConfChangeType = {
  AddNode: 0,
  AddLearner: 1,
  RemoveNode: 2,
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

/**
 * How a change is carried out.
 * - `auto`: a single change of one voter uses the simple protocol; anything
 *   else enters a joint configuration that the leader leaves automatically.
 * - `implicit`: always joint, left automatically.
 * - `explicit`: always joint, left only by proposing an empty ConfChange.
 */
export type ConfChangeTransition = "auto" | "implicit" | "explicit";

/** A membership change. No `changes` at all means "leave the joint configuration". */
export interface ConfChange {
  readonly changes: readonly ConfChangeSingle[];
  readonly transition: ConfChangeTransition;
  /** Opaque to the core (e.g. the new member's address). */
  readonly context: Uint8Array;
}

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** Volatile state the application may want to observe; reported only when it changes. */
export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
}

/** A read that may be served once the local state machine has applied `index`. */
export interface ReadState {
  readonly index: number;
  readonly ctx: string;
}

export type DropReason =
  | "not-leader"
  | "no-leader"
  | "transferring-leadership"
  | "uncommitted-size-exceeded"
  | "conf-change-pending"
  | "not-committed-in-term"
  | "lease-unavailable"
  | "stepped-down"
  | "removed";

/** A request the core accepted earlier but had to abandon; reported in a Ready. */
export interface DroppedRead {
  readonly ctx: string;
  readonly reason: DropReason;
}

// ---------------------------------------------------------------------------
// Messages exchanged between nodes. Every message carries `from`, `to` and the
// sender's `term`; the rest depends on `type`.
// ---------------------------------------------------------------------------

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** AppendEntries (also used as a probe with no entries). */
export interface AppendMessage extends MessageBase {
  readonly type: "append";
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

export interface AppendResponseMessage extends MessageBase {
  readonly type: "appendResp";
  /** On success: the highest index now matching the leader. On reject: the rejected prevIndex. */
  readonly index: number;
  readonly reject: boolean;
  /** On reject: a (hintIndex, hintTerm) pair for fast backtracking. */
  readonly hintIndex: number;
  readonly hintTerm: number;
}

/** RequestVote and PreVote. For a pre-vote, `term` is the term the sender would campaign for. */
export interface VoteMessage extends MessageBase {
  readonly type: "vote" | "preVote";
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Set when campaigning because of a leader transfer: bypasses leader stickiness. */
  readonly transfer: boolean;
}

export interface VoteResponseMessage extends MessageBase {
  readonly type: "voteResp" | "preVoteResp";
  readonly reject: boolean;
}

export interface SnapshotMessage extends MessageBase {
  readonly type: "snapshot";
  readonly snapshot: Snapshot;
}

/**
 * Heartbeats are numbered in rounds (per leader term). An acknowledged round
 * proves the follower still followed this leader when the round was sent:
 * that confirms pending ReadIndex requests and extends the leader lease.
 */
export interface HeartbeatMessage extends MessageBase {
  readonly type: "heartbeat";
  readonly commit: number;
  readonly round: number;
}

export interface HeartbeatResponseMessage extends MessageBase {
  readonly type: "heartbeatResp";
  /** The round being acknowledged. */
  readonly round: number;
}

/** Tells the leader-transfer target to campaign at once. */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: "timeoutNow";
}

/** A follower forwarding a ReadIndex request to its leader. */
export interface ReadIndexMessage extends MessageBase {
  readonly type: "readIndex";
  readonly ctx: string;
}

export interface ReadIndexResponseMessage extends MessageBase {
  readonly type: "readIndexResp";
  readonly ctx: string;
  readonly index: number;
  /** The leader could not serve the read (e.g. lost leadership): the follower reports it dropped. */
  readonly reject: boolean;
}

/** A follower forwarding a leader-transfer request to its leader. */
export interface TransferLeaderMessage extends MessageBase {
  readonly type: "transferLeader";
  readonly target: NodeId;
}

export type Message =
  | AppendMessage
  | AppendResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | SnapshotMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage
  | TransferLeaderMessage;

export type MessageType = Message["type"];

/**
 * One batch of work for the runtime. The contract:
 *  1. Persist `snapshot` (if any), then `entries`, then `hardState` — durably
 *     (fsync) when `mustSync`.
 *  2. Only then send `messages`. `messagesNow` carry no dependency on this
 *     Ready's persistence (a leader's replication traffic, Raft thesis
 *     §10.2.1) and may be sent before or during the write.
 *  3. Apply `committedEntries` in order, exactly once.
 *  4. Release `readStates` once the state machine has applied their index;
 *     reject `droppedReads`.
 *  5. Call `advance()`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly messagesNow: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly droppedReads: readonly DroppedRead[];
  readonly mustSync: boolean;
}

/** Where a peer's replication stands (see docs/architecture.md for the state machine). */
export type ProgressState = "probe" | "replicate" | "snapshot";

export interface ProgressStatus {
  readonly id: NodeId;
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly learner: boolean;
  readonly recentActive: boolean;
  readonly inflight: number;
  readonly pendingSnapshot: number;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly lead: NodeId;
  readonly role: Role;
  readonly lastIndex: number;
  readonly confState: ConfState;
  readonly leadTransferee: NodeId;
  /** Only on the leader. */
  readonly progress: readonly ProgressStatus[];
}
