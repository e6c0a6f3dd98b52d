/** Property tests (fast-check) for the core's pure building blocks. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ConfChangeError, InvalidArgumentError } from "../../src/errors.ts";
import { applyConfChange, restoreConfState } from "../../src/raft/confchange.ts";
import { decodeConfChange, encodeConfChange } from "../../src/raft/confchange-codec.ts";
import { Inflights } from "../../src/raft/inflights.ts";
import { ENTRY_OVERHEAD_BYTES, RaftLog } from "../../src/raft/log.ts";
import { MemoryRaftLog } from "../../src/raft/memory-log.ts";
import {
  jointCommitted,
  jointVoteResult,
  majorityCommitted,
  majorityVoteResult,
  type VoteResult,
} from "../../src/raft/quorum.ts";
import { confStateOf } from "../../src/raft/tracker.ts";
import { type ConfChange, ConfChangeType, type Entry } from "../../src/raft/types.ts";
import { Unstable } from "../../src/raft/unstable.ts";

const RUNS = { numRuns: 300 };

const voterSet = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { maxLength: 7 }).map((a) => new Set(a));
const ackMap = fc.dictionary(fc.integer({ min: 1, max: 9 }).map(String), fc.integer({ min: 0, max: 20 }));

/** Brute force: the largest i such that a majority of voters acked >= i. */
function bruteCommitted(voters: Set<number>, acked: (id: number) => number): number {
  if (voters.size === 0) return Number.POSITIVE_INFINITY;
  let best = 0;
  for (let i = 0; i <= 20; i++) {
    let n = 0;
    for (const v of voters) if (acked(v) >= i) n++;
    if (n > voters.size / 2) best = i;
  }
  return best;
}

function bruteVote(voters: Set<number>, votes: Map<number, boolean>): VoteResult {
  if (voters.size === 0) return "won";
  let yes = 0;
  let undecided = 0;
  for (const v of voters) {
    const x = votes.get(v);
    if (x === true) yes++;
    else if (x === undefined) undecided++;
  }
  if (yes > voters.size / 2) return "won";
  if (yes + undecided > voters.size / 2) return "pending";
  return "lost";
}

describe("quorum math", () => {
  it("majorityCommitted equals the brute-force definition", () => {
    fc.assert(
      fc.property(voterSet, ackMap, (voters, acks) => {
        const acked = (id: number) => acks[String(id)];
        assert.equal(
          majorityCommitted(voters, acked),
          bruteCommitted(voters, (id) => acked(id) ?? 0),
        );
      }),
      RUNS,
    );
  });

  it("jointCommitted is the min of both halves", () => {
    fc.assert(
      fc.property(voterSet, voterSet, ackMap, (a, b, acks) => {
        const acked = (id: number) => acks[String(id)];
        const want = Math.min(
          bruteCommitted(a, (id) => acked(id) ?? 0),
          bruteCommitted(b, (id) => acked(id) ?? 0),
        );
        assert.equal(jointCommitted({ incoming: a, outgoing: b }, acked), want);
      }),
      RUNS,
    );
  });

  const votes = fc
    .array(fc.tuple(fc.integer({ min: 1, max: 9 }), fc.boolean()), { maxLength: 12 })
    .map((xs) => {
      const m = new Map<number, boolean>();
      for (const [id, v] of xs) if (!m.has(id)) m.set(id, v);
      return m;
    });

  it("vote results match brute force, and joint = both halves", () => {
    fc.assert(
      fc.property(voterSet, voterSet, votes, (a, b, v) => {
        assert.equal(majorityVoteResult(a, v), bruteVote(a, v));
        const ra = bruteVote(a, v);
        const rb = bruteVote(b, v);
        const want =
          ra === "won" && rb === "won" ? "won" : ra === "lost" || rb === "lost" ? "lost" : "pending";
        assert.equal(jointVoteResult({ incoming: a, outgoing: b }, v), want);
      }),
      RUNS,
    );
  });

  it("vote results are monotonic: adding votes never undoes won or lost", () => {
    fc.assert(
      fc.property(
        voterSet,
        voterSet,
        votes,
        fc.integer({ min: 1, max: 9 }),
        fc.boolean(),
        (a, b, v, id, g) => {
          if (v.has(id)) return;
          const cfg = { incoming: a, outgoing: b };
          const before = jointVoteResult(cfg, v);
          const more = new Map(v).set(id, g);
          const after = jointVoteResult(cfg, more);
          if (before !== "pending") assert.equal(after, before);
          // Granting a vote never turns a result into "lost"; refusing never into "won".
          if (g) assert.notEqual(after === "lost" && before !== "lost", true);
          else assert.notEqual(after === "won" && before !== "won", true);
        },
      ),
      RUNS,
    );
  });
});

/** A log as a plain array of terms: terms[i] is the term of index offset+1+i. */
const termsArb = fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 12 }).map((ts) => {
  // Terms in a log never decrease.
  const out: number[] = [];
  let t = 1;
  for (const x of ts) {
    t = Math.max(t, x);
    out.push(t);
  }
  return out;
});

function ents(from: number, terms: readonly number[], size = 1): Entry[] {
  return terms.map((t, i) => ({ index: from + i, term: t, type: 0, data: new Uint8Array(size) }));
}

describe("log operations", () => {
  it("Unstable.truncateAndAppend/slice/maybeTerm match an array model", () => {
    fc.assert(
      fc.property(
        termsArb,
        fc.array(fc.tuple(fc.integer({ min: 0, max: 14 }), termsArb), { maxLength: 6 }),
        (initial, ops) => {
          const u = new Unstable(1);
          let model: number[] = [];
          const apply = (at: number, ts: number[]) => {
            if (ts.length === 0) return;
            u.truncateAndAppend(ents(at, ts));
            model = [...model.slice(0, at - 1), ...ts];
          };
          apply(1, initial);
          for (const [rawAt, ts] of ops) {
            const at = Math.min(Math.max(1, rawAt), model.length + 1);
            apply(at, ts);
          }
          assert.equal(u.maybeLastIndex() ?? 0, model.length);
          for (let i = 1; i <= model.length; i++) assert.equal(u.maybeTerm(i), model[i - 1]);
          assert.equal(u.maybeTerm(model.length + 1), null);
          assert.deepEqual(
            u.slice(1, model.length + 1).map((e) => e.term),
            model,
          );
        },
      ),
      RUNS,
    );
  });

  it("RaftLog.maybeAppend keeps log matching; findConflictByTerm is the largest index with term <= t", () => {
    fc.assert(
      fc.property(
        termsArb,
        termsArb,
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: 0, max: 12 }),
        (mine, leaders, prevRaw, probe) => {
          // Only pairs Raft can produce: same term at an index implies the same prefix (Log Matching).
          for (let i = Math.min(mine.length, leaders.length) - 1; i >= 0; i--) {
            if (mine[i] === leaders[i] && mine.slice(0, i).some((t, j) => t !== leaders[j])) return;
          }
          const storage = new MemoryRaftLog();
          const log = new RaftLog(storage, 1 << 20);
          log.append(ents(1, mine));
          const prev = Math.min(prevRaw, leaders.length);
          const prevTerm = prev === 0 ? 0 : leaders[prev - 1]!;
          const sent = ents(prev + 1, leaders.slice(prev));
          const res = log.maybeAppend(prev, prevTerm, 0, sent);
          const matches = prev === 0 || (prev <= mine.length && mine[prev - 1] === prevTerm);
          if (!matches) {
            assert.equal(res, null);
            assert.equal(log.lastIndex(), mine.length, "a mismatch changes nothing");
            return;
          }
          assert.equal(res, leaders.length);
          // Model: the log up to prev, then the leader's entries where they conflict.
          let model = mine.slice();
          for (let i = prev; i < leaders.length; i++) {
            if (model[i] !== leaders[i]) {
              model = [...model.slice(0, i), ...leaders.slice(i)];
              break;
            }
          }
          assert.equal(log.lastIndex(), model.length);
          for (let i = 1; i <= model.length; i++) assert.equal(log.term(i), model[i - 1]);
          // Log matching: on every index the leader sent, we now agree with the leader.
          for (let i = 1; i <= leaders.length; i++) assert.equal(log.term(i), leaders[i - 1]);
          // findConflictByTerm against the model.
          const idx = Math.min(probe, model.length);
          for (let t = 0; t <= 5; t++) {
            let want = idx;
            while (want > 0 && model[want - 1]! > t) want--;
            assert.deepEqual(log.findConflictByTerm(idx, t), {
              index: want,
              term: want === 0 ? 0 : model[want - 1],
            });
          }
        },
      ),
      RUNS,
    );
  });

  it("RaftLog.slice across stable and unstable parts honours maxBytes (at least one entry)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 10 }), { minLength: 1, maxLength: 15 }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 1, max: 15 }),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 0, max: 200 }),
        (sizes, stableCount, loRaw, hiRaw, maxBytes) => {
          const all: Entry[] = sizes.map((s, i) => ({
            index: i + 1,
            term: 1,
            type: 0,
            data: new Uint8Array(s),
          }));
          const storage = new MemoryRaftLog();
          const k = Math.min(stableCount, all.length);
          storage.append(all.slice(0, k));
          const log = new RaftLog(storage, 1 << 20);
          log.append(all.slice(k));
          const lo = Math.min(loRaw, all.length);
          const hi = Math.min(Math.max(hiRaw, lo), all.length + 1);
          const got = log.slice(lo, hi, maxBytes);
          // Model: the longest prefix of [lo, hi) within maxBytes, each entry counted with its
          // encoding overhead (so empty entries are bounded too), but at least one entry.
          const want: Entry[] = [];
          let bytes = 0;
          for (let i = lo; i < hi; i++) {
            const e = all[i - 1]!;
            const size = e.data.length + ENTRY_OVERHEAD_BYTES;
            if (want.length > 0 && bytes + size > maxBytes) break;
            want.push(e);
            bytes += size;
          }
          assert.deepEqual(
            got.map((e) => e.index),
            want.map((e) => e.index),
          );
        },
      ),
      RUNS,
    );
  });

  it("MemoryRaftLog append/compact/term match an array model", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant("append" as const),
              at: fc.integer({ min: 1, max: 20 }),
              ts: termsArb,
            }),
            fc.record({ op: fc.constant("compact" as const), at: fc.integer({ min: 0, max: 20 }) }),
          ),
          { maxLength: 10 },
        ),
        (ops) => {
          const s = new MemoryRaftLog();
          let model: number[] = []; // terms of 1..last
          let compacted = 0; // entries <= compacted are gone (compacted itself keeps its term)
          for (const o of ops) {
            if (o.op === "append") {
              if (o.ts.length === 0) continue;
              const at = Math.min(o.at, model.length + 1);
              // Compacted entries are committed: nothing may rewrite them.
              if (at <= compacted) continue;
              s.append(ents(at, o.ts));
              model = [...model.slice(0, at - 1), ...o.ts];
            } else {
              const at = Math.min(o.at, model.length);
              s.compact(at);
              compacted = Math.max(compacted, at);
            }
            assert.equal(s.firstIndex(), compacted + 1);
            assert.equal(s.lastIndex(), model.length);
            for (let i = compacted; i <= model.length; i++)
              assert.equal(s.term(i), i === 0 ? 0 : model[i - 1]);
            if (compacted > 0) assert.throws(() => s.term(compacted - 1));
          }
        },
      ),
      RUNS,
    );
  });
});

describe("Inflights", () => {
  it("never exceeds its count or byte budget; freeLE frees exactly the acknowledged prefix", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 50 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: -30, max: 0 })), {
          maxLength: 60,
        }),
        (cap, maxBytes, ops) => {
          const inf = new Inflights(cap, maxBytes);
          const model: [number, number][] = [];
          let next = 1;
          for (const x of ops) {
            if (x > 0) {
              if (inf.full()) {
                assert.ok(
                  model.length === cap || (maxBytes > 0 && model.reduce((s, m) => s + m[1], 0) >= maxBytes),
                );
                continue;
              }
              inf.add(next, x);
              model.push([next, x]);
              next += 1 + (x % 3);
            } else {
              const upTo = next + x; // somewhere below next
              inf.freeLE(upTo);
              while (model.length > 0 && model[0]![0] <= upTo) model.shift();
            }
            assert.equal(inf.count, model.length);
            assert.equal(
              inf.bytes,
              model.reduce((s, m) => s + m[1], 0),
            );
            assert.ok(inf.count <= cap);
          }
        },
      ),
      RUNS,
    );
  });
});

const ccArb: fc.Arbitrary<ConfChange> = fc.record({
  changes: fc.array(
    fc.record({
      type: fc.constantFrom(ConfChangeType.AddNode, ConfChangeType.AddLearner, ConfChangeType.RemoveNode),
      nodeId: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    }),
    { maxLength: 6 },
  ),
  transition: fc.constantFrom("auto" as const, "implicit" as const, "explicit" as const),
  context: fc.uint8Array({ maxLength: 20 }),
});

describe("conf change codec", () => {
  it("round-trips", () => {
    fc.assert(
      fc.property(ccArb, (cc) => {
        const plain = { ...cc, changes: cc.changes.map((c) => ({ ...c })) };
        assert.deepEqual(decodeConfChange(encodeConfChange(cc)), plain);
      }),
      RUNS,
    );
  });

  it("garbage either decodes or throws InvalidArgumentError, never anything else", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }),
          // Mutations of valid encodings reach deeper into the decoder.
          fc
            .tuple(ccArb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat())
            .map(([cc, pos, byte, cut]) => {
              const b = encodeConfChange(cc).slice();
              if (b.length > 0) b[pos % b.length] = byte;
              return b.slice(0, b.length - (cut % 3));
            }),
        ),
        (buf) => {
          try {
            const cc = decodeConfChange(buf);
            // Whatever decodes re-encodes to something that decodes the same. (Overlong
            // varints are accepted, so the bytes themselves need not round-trip.)
            assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
          } catch (e) {
            assert.ok(e instanceof InvalidArgumentError, `unexpected ${String(e)}`);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("conf change application vs a model", () => {
  const ctx = { lastIndex: 10, maxInflightMsgs: 4, maxInflightBytes: 0 };
  const single = fc.record({
    type: fc.constantFrom(ConfChangeType.AddNode, ConfChangeType.AddLearner, ConfChangeType.RemoveNode),
    nodeId: fc.integer({ min: 1, max: 6 }),
  });

  it("simple and joint changes produce the configuration the rules describe", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }),
        fc.array(single, { minLength: 1, maxLength: 4 }),
        fc.constantFrom("auto" as const, "implicit" as const, "explicit" as const),
        (voters, changes, transition) => {
          const start = restoreConfState(
            { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
            ctx,
          );
          // Model of the incoming config after the changes.
          const inc = new Set(voters);
          const lrn = new Set<number>();
          for (const ch of changes) {
            if (ch.type === ConfChangeType.AddNode) {
              inc.add(ch.nodeId);
              lrn.delete(ch.nodeId);
            } else if (ch.type === ConfChangeType.AddLearner) {
              inc.delete(ch.nodeId);
              lrn.add(ch.nodeId);
            } else {
              inc.delete(ch.nodeId);
              lrn.delete(ch.nodeId);
            }
          }
          const joint = transition !== "auto" || changes.length > 1;
          let diff = 0;
          for (const v of inc) if (!voters.includes(v)) diff++;
          for (const v of voters) if (!inc.has(v)) diff++;
          const sorted = (s: Iterable<number>) => [...s].sort((a, b) => a - b);
          let res: ReturnType<typeof applyConfChange>;
          try {
            res = applyConfChange(
              start.config,
              start.progress,
              { changes, transition, context: new Uint8Array() },
              ctx,
            );
          } catch (e) {
            assert.ok(e instanceof ConfChangeError, String(e));
            assert.ok(inc.size === 0 || (!joint && diff > 1), `refused a valid change: ${String(e)}`);
            return;
          }
          assert.ok(inc.size > 0, "accepted a change that removes every voter");
          const cs = confStateOf(res.config);
          assert.deepEqual(cs.voters, sorted(inc));
          if (joint) {
            assert.deepEqual(cs.votersOutgoing, sorted(voters));
            // Outgoing voters demoted to learners wait in learnersNext.
            assert.deepEqual(sorted([...cs.learners, ...cs.learnersNext]), sorted(lrn));
            assert.equal(cs.autoLeave, transition !== "explicit");
            const left = applyConfChange(
              res.config,
              res.progress,
              { changes: [], transition: "auto", context: new Uint8Array() },
              ctx,
            );
            const after = confStateOf(left.config);
            assert.deepEqual(after.voters, sorted(inc));
            assert.deepEqual(after.learners, sorted(lrn));
            assert.deepEqual(after.votersOutgoing, []);
            assert.deepEqual(sorted(left.progress.keys()), sorted([...inc, ...lrn]));
          } else {
            assert.ok(diff <= 1);
            assert.deepEqual(cs.votersOutgoing, []);
            assert.deepEqual(cs.learners, sorted(lrn));
            assert.deepEqual(sorted(res.progress.keys()), sorted([...inc, ...lrn]));
          }
          // The input configuration was not mutated.
          assert.deepEqual(confStateOf(start.config).voters, sorted(voters));
        },
      ),
      RUNS,
    );
  });
});
