/**
 * The LogStore conformance suite. Every backend in tsraft runs it, and so can
 * yours (see docs/custom-storage.md):
 *
 * ```ts
 * import { runLogStoreSuite } from "tsraft/testing";
 * runLogStoreSuite("my backend", async (options) => {
 *   const dir = await mkdtemp(join(tmpdir(), "my-"));
 *   const open = async () => { const s = new MyStore(dir, options); await s.open(); return s; };
 *   return { store: await open(), reopen: open, destroy: () => rm(dir, { recursive: true }) };
 * });
 * ```
 *
 * It registers `node:test` tests; run the file with `node --test`.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { CompactedError, InvalidArgumentError, StoppedError, UnavailableError } from "../errors.ts";
import type { ConfState, Entry, HardState, SnapshotMetadata } from "../raft/types.ts";
import type { CrashableLogStore, LogStore, LogStoreOptions } from "../storage/log-store.ts";

export interface StorageFixture {
  /** A store opened over fresh, empty storage. */
  readonly store: LogStore;
  /** Opens another store over the same storage; the suite closes (or crashes) the previous one first. */
  reopen(): Promise<LogStore>;
  /** Removes the storage. The suite calls it after closing every store it opened. */
  destroy(): Promise<void>;
}

/** Makes a fixture; `options` lets the suite shrink the tail cache so reads hit the backend. */
export type StorageFixtureFactory = (options: LogStoreOptions) => Promise<StorageFixture>;

export interface StorageSuiteOptions {
  /** Runs of the randomized model test. Default 25 (TSRAFT_LONG=1: 200). */
  readonly modelRuns?: number;
}

const CONF: ConfState = {
  voters: [1, 2, 3],
  learners: [4],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};

/** Deterministic, index-dependent payload: a wrong entry can never look right. */
export function payloadFor(index: number, term: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  let x = (index * 2654435761 + term * 40503) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export function makeEntries(lo: number, hi: number, term: number, size = 16): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i < hi; i++) out.push({ index: i, term, type: 0, data: payloadFor(i, term, size) });
  return out;
}

function plain(e: Entry): { index: number; term: number; type: number; data: number[] } {
  return { index: e.index, term: e.term, type: e.type, data: [...e.data] };
}

function assertEntriesEqual(actual: readonly Entry[], expected: readonly Entry[], msg?: string): void {
  assert.equal(actual.length, expected.length, `${msg ?? ""} length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (
      a.index !== e.index ||
      a.term !== e.term ||
      a.type !== e.type ||
      !Buffer.from(a.data).equals(e.data)
    ) {
      assert.deepEqual(plain(a), plain(e), `${msg ?? ""} entry ${i}`);
    }
  }
}

/** The reference log the model test compares against. */
class ModelLog {
  snapshot: SnapshotMetadata = { index: 0, term: 0, confState: CONF };
  entries: Entry[] = [];
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  get first(): number {
    return this.snapshot.index + 1;
  }
  get last(): number {
    return this.snapshot.index + this.entries.length;
  }
  term(i: number): number {
    return i === this.snapshot.index ? this.snapshot.term : this.entries[i - this.first]!.term;
  }
}

/** Checks every synchronous read of `store` against `model`. */
function assertAgrees(store: LogStore, model: ModelLog, where: string): void {
  const r = store.reader();
  assert.equal(r.firstIndex(), model.first, `${where}: firstIndex`);
  assert.equal(r.lastIndex(), model.last, `${where}: lastIndex`);
  assert.deepEqual(store.hardState(), model.hardState, `${where}: hard state`);
  assert.equal(r.term(model.first - 1), model.snapshot.term, `${where}: term at snapshot`);
  for (let i = model.first; i <= model.last; i++)
    assert.equal(r.term(i), model.term(i), `${where}: term(${i})`);
  if (model.last >= model.first) {
    assertEntriesEqual(r.entries(model.first, model.last + 1, Number.MAX_SAFE_INTEGER), model.entries, where);
  }
  assert.throws(() => r.term(model.last + 1), UnavailableError);
  if (model.first > 1) assert.throws(() => r.entries(model.first - 1, model.first, 1e9), CompactedError);
}

async function withFixture(
  factory: StorageFixtureFactory,
  options: LogStoreOptions,
  body: (fx: StorageFixture, handle: { store: LogStore }) => Promise<void>,
): Promise<void> {
  const fx = await factory(options);
  const handle = { store: fx.store };
  try {
    await body(fx, handle);
  } finally {
    await handle.store.close().catch(() => undefined);
    await fx.destroy();
  }
}

async function reopen(fx: StorageFixture, handle: { store: LogStore }): Promise<LogStore> {
  await handle.store.close();
  handle.store = await fx.reopen();
  return handle.store;
}

/** Runs `check` on the open store, then again on a reopened one. */
async function beforeAndAfterReopen(
  fx: StorageFixture,
  handle: { store: LogStore },
  check: (s: LogStore) => void,
): Promise<void> {
  check(handle.store);
  check(await reopen(fx, handle));
}

export function runLogStoreSuite(
  name: string,
  factory: StorageFixtureFactory,
  suiteOptions: StorageSuiteOptions = {},
): void {
  const long = process.env.TSRAFT_LONG === "1";
  const modelRuns = suiteOptions.modelRuns ?? (long ? 200 : 25);
  const tiny: LogStoreOptions = { cacheMaxEntries: 4, cacheMaxBytes: 256 };

  describe(`LogStore conformance: ${name}`, () => {
    it("starts empty", () =>
      withFixture(factory, {}, async (fx) => {
        const s = fx.store;
        assert.equal(s.firstIndex(), 1);
        assert.equal(s.lastIndex(), 0);
        assert.equal(s.term(0), 0);
        assert.deepEqual(s.hardState(), { term: 0, vote: 0, commit: 0 });
        assert.deepEqual(s.entries(1, 1, 100), []);
        assert.throws(() => s.term(1), UnavailableError);
        assert.throws(() => s.entries(1, 2, 100), UnavailableError);
        assert.equal(s.snapshot().metadata.index, 0);
        assert.equal(typeof s.capabilities.backend, "string");
      }));

    it("appends in order and reads back through the synchronous reader, at once and after reopen", () =>
      withFixture(factory, tiny, async (fx, h) => {
        const es = [...makeEntries(1, 50, 1, 10), ...makeEntries(50, 120, 2, 100)];
        const p = h.store.append(es);
        // Visible synchronously, before the append resolves.
        assert.equal(h.store.lastIndex(), 119);
        assertEntriesEqual(h.store.entries(1, 120, 1e9), es);
        await p;
        await h.store.sync();
        await beforeAndAfterReopen(fx, h, (s) => {
          assert.equal(s.lastIndex(), 119);
          assert.equal(s.term(49), 1);
          assert.equal(s.term(50), 2);
          assertEntriesEqual(s.entries(1, 120, 1e9), es);
          assertEntriesEqual(s.entries(30, 70, 1e9), es.slice(29, 69));
        });
      }));

    it("honours maxBytes and always returns at least one entry", () =>
      withFixture(factory, tiny, async (fx) => {
        const s = fx.store;
        await s.append(makeEntries(1, 21, 1, 100));
        assert.equal(s.entries(1, 21, 0).length, 1);
        assert.equal(s.entries(1, 21, 99).length, 1);
        assert.equal(s.entries(1, 21, 100).length, 1);
        assert.equal(s.entries(1, 21, 250).length, 2);
        assert.equal(s.entries(1, 21, 1000).length, 10);
        assert.equal(s.entries(15, 21, 1000).length, 6);
        assertEntriesEqual(s.entries(3, 8, 300), makeEntries(3, 6, 1, 100));
      }));

    it("stores empty and large entries", () =>
      withFixture(factory, tiny, async (fx, h) => {
        const big = Math.min(4 * 1024 * 1024, h.store.capabilities.maxEntryBytes);
        const es: Entry[] = [
          { index: 1, term: 1, type: 0, data: new Uint8Array(0) },
          { index: 2, term: 1, type: 1, data: payloadFor(2, 1, big) },
          { index: 3, term: 1, type: 0, data: new Uint8Array(0) },
        ];
        await h.store.append(es);
        await h.store.sync();
        assertEntriesEqual(h.store.entries(1, 4, 1e12), es);
        assertEntriesEqual((await reopen(fx, h)).entries(1, 4, 1e12), es);
        await assert.rejects(
          h.store.append([
            { index: 4, term: 1, type: 0, data: new Uint8Array(h.store.capabilities.maxEntryBytes + 1) },
          ]),
          InvalidArgumentError,
        );
        assert.equal(h.store.lastIndex(), 3);
      }));

    it("rejects gaps, decreasing terms and bad indexes without changing anything", () =>
      withFixture(factory, {}, async (fx) => {
        const s = fx.store;
        await s.append(makeEntries(1, 6, 2));
        await assert.rejects(s.append(makeEntries(8, 9, 2)), InvalidArgumentError);
        await assert.rejects(s.append(makeEntries(6, 7, 1)), InvalidArgumentError);
        await assert.rejects(
          s.append([...makeEntries(6, 7, 2), ...makeEntries(8, 9, 2)]),
          InvalidArgumentError,
        );
        await assert.rejects(s.append(makeEntries(0, 1, 2)), InvalidArgumentError);
        assert.equal(s.lastIndex(), 5);
        await s.append([]);
        assert.equal(s.lastIndex(), 5);
      }));

    it("replaces a conflicting suffix on overlapping append, durably after sync", () =>
      withFixture(factory, tiny, async (fx, h) => {
        await h.store.append(makeEntries(1, 11, 1));
        await h.store.append(makeEntries(6, 9, 2));
        assert.equal(h.store.lastIndex(), 8);
        const expected = [...makeEntries(1, 6, 1), ...makeEntries(6, 9, 2)];
        assertEntriesEqual(h.store.entries(1, 9, 1e9), expected);
        await h.store.sync();
        assertEntriesEqual((await reopen(fx, h)).entries(1, 9, 1e9), expected);
        assert.throws(() => h.store.term(9), UnavailableError);
      }));

    it("truncates a suffix durably", () =>
      withFixture(factory, tiny, async (fx, h) => {
        await h.store.append(makeEntries(1, 21, 1));
        await h.store.sync();
        await h.store.truncateSuffix(12);
        assert.equal(h.store.lastIndex(), 11);
        await h.store.truncateSuffix(30); // beyond the end: no-op
        assert.equal((await reopen(fx, h)).lastIndex(), 11);
        await h.store.append(makeEntries(12, 15, 3));
        await h.store.sync();
        const expected = [...makeEntries(1, 12, 1), ...makeEntries(12, 15, 3)];
        assertEntriesEqual((await reopen(fx, h)).entries(1, 15, 1e9), expected);
      }));

    it("refuses to truncate or overwrite committed entries", () =>
      withFixture(factory, {}, async (fx) => {
        const s = fx.store;
        await s.append(makeEntries(1, 11, 1));
        await s.saveHardState({ term: 1, vote: 1, commit: 5 });
        await assert.rejects(s.truncateSuffix(5), InvalidArgumentError);
        await assert.rejects(s.append(makeEntries(4, 6, 2)), InvalidArgumentError);
        assert.equal(s.lastIndex(), 10);
        await s.append(makeEntries(4, 7, 1)); // identical committed prefix is fine
        assert.equal(s.lastIndex(), 6);
      }));

    it("an append at or below the commit index may repeat committed entries, never cut or change them", () =>
      withFixture(factory, {}, async (fx, h) => {
        await h.store.append([...makeEntries(1, 6, 1), ...makeEntries(6, 11, 2)]);
        await h.store.saveHardState({ term: 2, vote: 1, commit: 8 });
        // A stale, short duplicate would replace the suffix after it: entries up to 8 are committed.
        await assert.rejects(h.store.append(makeEntries(3, 4, 1)), /cut off committed entries up to 8/);
        // A later entry of the batch (not only the first) may not differ from a committed one.
        await assert.rejects(
          h.store.append([...makeEntries(2, 4, 1), ...makeEntries(4, 10, 3)]),
          /overwrite a committed entry/,
        );
        assert.equal(h.store.lastIndex(), 10);
        assert.equal(h.store.term(4), 1);
        // Repeating the committed prefix and replacing what follows it is fine.
        await h.store.append([...makeEntries(3, 6, 1), ...makeEntries(6, 9, 2), ...makeEntries(9, 10, 3)]);
        await h.store.sync();
        const s = await reopen(fx, h);
        assert.equal(s.lastIndex(), 9);
        assert.equal(s.term(8), 2);
        assert.equal(s.term(9), 3);
      }));

    it("refuses a hard state Raft never writes: a second vote in a term, a commit that goes back or past the log", () =>
      withFixture(factory, {}, async (fx) => {
        const s = fx.store;
        await s.append(makeEntries(1, 4, 1));
        await s.saveHardState({ term: 1, vote: 1, commit: 2 });
        await assert.rejects(s.saveHardState({ term: 1, vote: 2, commit: 2 }), /vote changed from 1 to 2/);
        await assert.rejects(s.saveHardState({ term: 1, vote: 1, commit: 1 }), /commit went back/);
        await assert.rejects(s.saveHardState({ term: 1, vote: 1, commit: 4 }), /beyond the last index 3/);
        assert.deepEqual(s.hardState(), { term: 1, vote: 1, commit: 2 });
        // A new term may vote again; the commit may reach the last index.
        await s.saveHardState({ term: 2, vote: 3, commit: 3 });
        assert.deepEqual(s.hardState(), { term: 2, vote: 3, commit: 3 });
      }));

    it("refuses a snapshot that contradicts a committed entry", () =>
      withFixture(factory, {}, async (fx) => {
        const s = fx.store;
        await s.append(makeEntries(1, 11, 1));
        await s.saveHardState({ term: 1, vote: 1, commit: 8 });
        await assert.rejects(
          s.installSnapshot({ index: 5, term: 2, confState: CONF }),
          /contradicts committed entry 5\/1/,
        );
        assert.equal(s.firstIndex(), 1);
        assert.equal(s.lastIndex(), 10);
        // Above the commit index a conflicting snapshot replaces the log, as before.
        await s.installSnapshot({ index: 9, term: 2, confState: CONF });
        assert.equal(s.lastIndex(), 9);
      }));

    it("close: a second call waits for the first to finish (then the storage can be opened again)", async () => {
      const fx = await factory({});
      try {
        await fx.store.append(makeEntries(1, 4, 1));
        void fx.store.saveHardState({ term: 1, vote: 1, commit: 2 });
        const first = fx.store.close();
        await fx.store.close();
        const again = await fx.reopen();
        assert.deepEqual(again.hardState(), { term: 1, vote: 1, commit: 2 });
        assert.equal(again.lastIndex(), 3);
        await first;
        await again.close();
      } finally {
        await fx.destroy();
      }
    });

    it("crash() on a store that cannot simulate one is refused, and the store stays usable", async (t) => {
      const fx = await factory({});
      try {
        const s = fx.store as CrashableLogStore;
        if (s.capabilities.crashSimulation) {
          t.skip("this backend simulates crashes");
          return;
        }
        await assert.rejects(s.crash(), InvalidArgumentError);
        await s.append(makeEntries(1, 2, 1));
        await s.close();
        assert.equal((await fx.reopen()).lastIndex(), 1);
      } finally {
        await fx.destroy();
      }
    });

    it("saves and reloads the hard state", () =>
      withFixture(factory, {}, async (fx, h) => {
        await h.store.saveHardState({ term: 3, vote: 2, commit: 0 });
        await h.store.saveHardState({ term: 4, vote: 0, commit: 0 });
        assert.deepEqual(h.store.hardState(), { term: 4, vote: 0, commit: 0 });
        await h.store.sync();
        assert.deepEqual((await reopen(fx, h)).hardState(), { term: 4, vote: 0, commit: 0 });
        await h.store.append(makeEntries(1, 4, 4));
        await h.store.saveHardState({ term: 4, vote: 1, commit: 3 });
        await h.store.sync();
        const s = await reopen(fx, h);
        assert.deepEqual(s.hardState(), { term: 4, vote: 1, commit: 3 });
        assert.deepEqual(s.initialState().hardState, { term: 4, vote: 1, commit: 3 });
        await assert.rejects(s.saveHardState({ term: 3, vote: 0, commit: 3 }), InvalidArgumentError);
        await assert.rejects(s.saveHardState({ term: -1, vote: 0, commit: 0 }), InvalidArgumentError);
      }));

    it("compacts to a snapshot, with errors exactly at the bounds, and keeps it across reopen", () =>
      withFixture(factory, tiny, async (fx, h) => {
        await h.store.append([...makeEntries(1, 31, 1), ...makeEntries(31, 61, 2)]);
        await h.store.saveHardState({ term: 2, vote: 1, commit: 50 });
        await h.store.sync();
        await assert.rejects(h.store.compact({ index: 55, term: 2, confState: CONF }), InvalidArgumentError);
        await assert.rejects(h.store.compact({ index: 40, term: 1, confState: CONF }), InvalidArgumentError);
        await h.store.compact({ index: 40, term: 2, confState: CONF });
        await beforeAndAfterReopen(fx, h, (s) => {
          assert.equal(s.firstIndex(), 41);
          assert.equal(s.lastIndex(), 60);
          assert.equal(s.term(40), 2);
          assert.throws(() => s.term(39), CompactedError);
          assert.throws(() => s.entries(40, 45, 1e9), CompactedError);
          assert.throws(() => s.entries(41, 62, 1e9), UnavailableError);
          assertEntriesEqual(s.entries(41, 61, 1e9), makeEntries(41, 61, 2));
          assert.deepEqual(s.snapshot().metadata.confState, CONF);
          assert.deepEqual(s.initialState().confState, CONF);
          assert.equal(s.snapshotMetadata().index, 40);
        });
        await assert.rejects(h.store.compact({ index: 30, term: 1, confState: CONF }), CompactedError);
        await assert.rejects(h.store.truncateSuffix(40), CompactedError);
        // Entries at or below the snapshot are skipped on append.
        await h.store.append(makeEntries(39, 62, 2));
        assert.equal(h.store.lastIndex(), 61);
        await h.store.compact({ index: 50, term: 2, confState: CONF });
        await h.store.sync();
        const s = await reopen(fx, h);
        assert.equal(s.firstIndex(), 51);
        assertEntriesEqual(s.entries(51, 62, 1e9), makeEntries(51, 62, 2));
      }));

    it("installs a snapshot: keeps a matching suffix, discards a conflicting log", () =>
      withFixture(factory, tiny, async (fx, h) => {
        await h.store.append(makeEntries(1, 21, 1));
        await h.store.sync();
        await h.store.installSnapshot({ index: 10, term: 1, confState: CONF });
        assert.equal(h.store.firstIndex(), 11);
        assert.equal(h.store.lastIndex(), 20);
        await h.store.installSnapshot({ index: 15, term: 3, confState: CONF });
        await beforeAndAfterReopen(fx, h, (s) => {
          assert.equal(s.firstIndex(), 16);
          assert.equal(s.lastIndex(), 15);
          assert.equal(s.term(15), 3);
        });
        await h.store.installSnapshot({ index: 100, term: 4, confState: CONF });
        await h.store.append(makeEntries(101, 104, 4));
        await h.store.sync();
        const s = await reopen(fx, h);
        assert.equal(s.firstIndex(), 101);
        assertEntriesEqual(s.entries(101, 104, 1e9), makeEntries(101, 104, 4));
        assert.equal(s.term(100), 4);
      }));

    it("installs a snapshot far ahead of a short log (a new follower, index 2^24 + 10) and reopens intact", () =>
      withFixture(factory, tiny, async (fx, h) => {
        // A backend that walked every index up to the snapshot took seconds and gigabytes
        // here, and past 2^24 indexes failed midway, leaving the log corrupt.
        const far = 2 ** 24 + 10;
        await h.store.append(makeEntries(1, 4, 1));
        await h.store.sync();
        await h.store.installSnapshot({ index: far, term: 5, confState: CONF });
        await h.store.append(makeEntries(far + 1, far + 3, 5));
        await h.store.sync();
        await beforeAndAfterReopen(fx, h, (s) => {
          assert.equal(s.firstIndex(), far + 1);
          assert.equal(s.lastIndex(), far + 2);
          assert.equal(s.term(far), 5);
          assertEntriesEqual(s.entries(far + 1, far + 3, 1e9), makeEntries(far + 1, far + 3, 5));
        });
      }));

    it("serves many appends issued while a sync is in flight (group commit)", () =>
      withFixture(factory, tiny, async (fx, h) => {
        const pending: Promise<void>[] = [];
        let next = 1;
        for (let round = 0; round < 20; round++) {
          for (let k = 0; k < 10; k++) {
            pending.push(h.store.append(makeEntries(next, next + 3, 1 + (round >> 2), 40)));
            next += 3;
          }
          pending.push(h.store.saveHardState({ term: 1 + (round >> 2), vote: 1, commit: next - 10 }));
          pending.push(h.store.sync());
        }
        assert.equal(h.store.lastIndex(), next - 1);
        await Promise.all(pending);
        const s = await reopen(fx, h);
        assert.equal(s.lastIndex(), next - 1);
        assert.equal(s.hardState().commit, next - 10);
        const all = s.entries(1, next, 1e12);
        assert.equal(all.length, next - 1);
        for (const e of all) assert.deepEqual([...e.data], [...payloadFor(e.index, e.term, 40)]);
      }));

    it("fails cleanly after close", () =>
      withFixture(factory, {}, async (fx) => {
        const s = fx.store;
        await s.append(makeEntries(1, 3, 1));
        await s.close();
        await s.close();
        assert.throws(() => s.lastIndex(), StoppedError);
        await assert.rejects(s.append(makeEntries(3, 4, 1)), StoppedError);
        await assert.rejects(s.sync(), StoppedError);
      }));

    it("agrees with a reference model over random operation sequences", { timeout: 120_000 }, async () => {
      const op = fc.oneof(
        fc.record({
          kind: fc.constant("append" as const),
          back: fc.nat(6),
          count: fc.integer({ min: 1, max: 12 }),
          size: fc.oneof(fc.constant(0), fc.nat(300)),
          bump: fc.boolean(),
        }),
        fc.record({ kind: fc.constant("truncate" as const), back: fc.nat(8) }),
        fc.record({ kind: fc.constant("commit" as const), back: fc.nat(8) }),
        fc.record({ kind: fc.constant("compact" as const), back: fc.nat(8) }),
        fc.record({
          kind: fc.constant("install" as const),
          ahead: fc.integer({ min: -5, max: 5 }),
          bump: fc.boolean(),
        }),
        fc.record({ kind: fc.constant("sync" as const) }),
        fc.record({ kind: fc.constant("reopen" as const) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
          await withFixture(factory, tiny, async (fx, h) => {
            const m = new ModelLog();
            let term = 1;
            for (const [step, o] of ops.entries()) {
              const where = `step ${step} ${JSON.stringify(o)}`;
              switch (o.kind) {
                case "append": {
                  const from = Math.max(m.hardState.commit + 1, m.first, m.last + 1 - o.back);
                  if (o.bump) term++;
                  const es = makeEntries(from, from + o.count, term, o.size);
                  await h.store.append(es);
                  m.entries = [...m.entries.slice(0, from - m.first), ...es];
                  break;
                }
                case "truncate": {
                  const from = Math.max(m.hardState.commit + 1, m.first, m.last + 1 - o.back);
                  await h.store.truncateSuffix(from);
                  m.entries = m.entries.slice(0, Math.max(0, from - m.first));
                  break;
                }
                case "commit": {
                  m.hardState = { term, vote: 1, commit: Math.max(m.hardState.commit, m.last - o.back, 0) };
                  await h.store.saveHardState(m.hardState);
                  break;
                }
                case "compact": {
                  const idx = Math.min(m.hardState.commit, m.last) - o.back;
                  if (idx <= m.snapshot.index) break;
                  const meta = { index: idx, term: m.term(idx), confState: CONF };
                  await h.store.compact(meta);
                  m.entries = m.entries.slice(idx - m.snapshot.index);
                  m.snapshot = meta;
                  break;
                }
                case "install": {
                  // A follower installs only snapshots beyond its commit index.
                  const idx = Math.max(m.snapshot.index + 1, m.hardState.commit + 1, m.last + o.ahead);
                  const matches = idx <= m.last && !o.bump;
                  if (o.bump) term++;
                  const meta = { index: idx, term: matches ? m.term(idx) : term, confState: CONF };
                  await h.store.installSnapshot(meta);
                  m.entries = matches ? m.entries.slice(idx - m.snapshot.index) : [];
                  m.snapshot = meta;
                  break;
                }
                case "sync":
                  await h.store.sync();
                  break;
                case "reopen":
                  await reopen(fx, h);
                  break;
              }
              assertAgrees(h.store, m, where);
            }
            await h.store.sync();
            assertAgrees(await reopen(fx, h), m, "final reopen");
          });
        }),
        { numRuns: modelRuns },
      );
    });

    it("loses only unsynced writes on a simulated crash (if supported)", async (t) => {
      const probe = await factory({});
      const supported = probe.store.capabilities.crashSimulation;
      await probe.store.close();
      await probe.destroy();
      if (!supported) {
        t.skip("backend does not simulate crashes");
        return;
      }
      await withFixture(factory, {}, async (fx, h) => {
        await h.store.append(makeEntries(1, 11, 1));
        await h.store.saveHardState({ term: 1, vote: 2, commit: 4 });
        await h.store.sync();
        await h.store.append(makeEntries(11, 21, 1));
        await h.store.saveHardState({ term: 1, vote: 2, commit: 15 });
        await (h.store as CrashableLogStore).crash();
        h.store = await fx.reopen();
        assert.equal(h.store.lastIndex(), 10);
        assert.deepEqual(h.store.hardState(), { term: 1, vote: 2, commit: 4 });
        assertEntriesEqual(h.store.entries(1, 11, 1e9), makeEntries(1, 11, 1));
      });
    });
  });
}
