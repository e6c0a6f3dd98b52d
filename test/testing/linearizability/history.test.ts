// History recording and the JSON-lines format.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { HistoryFormatError, InvalidArgumentError, ResourceExhaustedError } from "../../../src/errors.ts";
import {
  formatHistory,
  type HistoryRecord,
  HistoryRecorder,
  parseHistory,
  readHistoryFile,
  writeHistoryFile,
} from "../../../src/testing/history.ts";
import { checkKvHistory, generateKvHistory } from "../../../src/testing/linearizability/index.ts";
import { Prng } from "../../../src/testing/prng.ts";

function clock() {
  let t = 0;
  return { now: () => t, set: (v: number) => (t = v) };
}

describe("HistoryRecorder", () => {
  it("records call and return times from the injected clock, and each outcome", () => {
    const c = clock();
    const rec = new HistoryRecorder({ now: c.now });
    c.set(10);
    const a = rec.invoke(1, "put", "k", "v1");
    const b = rec.invoke(2, "get", "k");
    const d = rec.invoke(3, "delete", "k");
    const e = rec.invoke(4, "put", "k", "v2");
    assert.equal(rec.pending, 4);
    c.set(15);
    rec.ok(a);
    c.set(17);
    rec.ok(b, "v1");
    rec.fail(d);
    rec.unknown(e);
    assert.equal(rec.pending, 0);
    assert.deepEqual(rec.records(), [
      { client: 1, op: "put", key: "k", input: "v1", output: null, call: 10, return: 15, status: "ok" },
      { client: 2, op: "get", key: "k", input: null, output: "v1", call: 10, return: 17, status: "ok" },
      { client: 3, op: "delete", key: "k", input: null, output: null, call: 10, return: 17, status: "fail" },
      {
        client: 4,
        op: "put",
        key: "k",
        input: "v2",
        output: null,
        call: 10,
        return: null,
        status: "unknown",
      },
    ]);
  });

  it("reports operations still in flight as unknown outcome", () => {
    const rec = new HistoryRecorder({ now: () => 3 });
    rec.invoke(1, "put", "k", "v");
    const [r] = rec.records();
    assert.equal(r!.status, "unknown");
    assert.equal(r!.return, null);
  });

  it("refuses double completion, unknown handles, a clock going backwards, and overflow", () => {
    const c = clock();
    const rec = new HistoryRecorder({ now: c.now, maxOperations: 2 });
    c.set(5);
    const a = rec.invoke(1, "get", "k");
    rec.ok(a, null);
    assert.throws(() => rec.ok(a, null), InvalidArgumentError);
    assert.throws(() => rec.unknown(99), InvalidArgumentError);
    const b = rec.invoke(1, "get", "k");
    c.set(4);
    assert.throws(() => rec.ok(b, null), InvalidArgumentError);
    assert.throws(() => rec.invoke(2, "get", "k"), ResourceExhaustedError);
  });

  it("feeds the checker directly", () => {
    const c = clock();
    const rec = new HistoryRecorder({ now: c.now });
    const w = rec.invoke(1, "put", "k", "a");
    c.set(1);
    rec.ok(w);
    c.set(2);
    const r = rec.invoke(2, "get", "k");
    c.set(3);
    rec.ok(r, null); // the acknowledged write is missing
    assert.equal(checkKvHistory(rec.records()).ok, false);
  });
});

describe("JSON lines", () => {
  it("writes one documented object per line, keys in order", () => {
    const text = formatHistory([
      {
        client: 1,
        op: "cas",
        key: "k",
        input: { expected: null, new: "a" },
        output: true,
        call: 1,
        return: 2,
        status: "ok",
      },
      {
        client: "c2",
        op: "get",
        key: "k",
        input: null,
        output: null,
        call: 3,
        return: null,
        status: "unknown",
      },
    ]);
    assert.equal(
      text,
      '{"client":1,"op":"cas","key":"k","input":{"expected":null,"new":"a"},"output":true,"call":1,"return":2,"status":"ok"}\n' +
        '{"client":"c2","op":"get","key":"k","input":null,"output":null,"call":3,"return":null,"status":"unknown"}\n',
    );
  });

  it("round-trips bytes as base64 and text as text", () => {
    const bytes = new Uint8Array([0, 255, 128, 10]);
    const h: HistoryRecord[] = [
      { client: 1, op: "put", key: "k", input: bytes, output: null, call: 0, return: 1, status: "ok" },
      { client: 1, op: "put", key: "k", input: "héllo ✓", output: null, call: 2, return: 3, status: "ok" },
    ];
    const text = formatHistory(h);
    assert.ok(text.includes('"input":{"$bytes":"AP+ACg=="}'), text);
    const back = parseHistory(text);
    assert.ok(back[0]!.input instanceof Uint8Array);
    assert.deepEqual([...(back[0]!.input as Uint8Array)], [0, 255, 128, 10]);
    assert.equal(back[1]!.input, "héllo ✓");
  });

  it("treats UTF-8 bytes and the same text as one value when checking", () => {
    const h: HistoryRecord[] = [
      { client: 1, op: "put", key: "k", input: "abc", output: null, call: 0, return: 1, status: "ok" },
      {
        client: 2,
        op: "get",
        key: "k",
        input: null,
        output: new TextEncoder().encode("abc"),
        call: 2,
        return: 3,
        status: "ok",
      },
      {
        client: 2,
        op: "put",
        key: "k",
        input: new Uint8Array([255]),
        output: null,
        call: 4,
        return: 5,
        status: "ok",
      },
      { client: 2, op: "get", key: "k", input: null, output: "\u00ff", call: 6, return: 7, status: "ok" },
    ];
    assert.deepEqual(checkKvHistory(h.slice(0, 2)), { ok: true });
    // Invalid UTF-8 never equals any text, not even its Latin-1 reading.
    assert.equal(checkKvHistory(h).ok, false);
  });

  it("round-trips a generated history through a file and gets the same verdict", async () => {
    const h = generateKvHistory(new Prng(3), {
      operations: 500,
      keys: 4,
      clients: 5,
      unknownRate: 0.1,
      failRate: 0.05,
    });
    const dir = await mkdtemp(join(tmpdir(), "tsraft-history-"));
    try {
      const file = join(dir, "h.jsonl");
      await writeHistoryFile(file, h);
      const text = await readFile(file, "utf8");
      assert.equal(text.trimEnd().split("\n").length, 500);
      const back = await readHistoryFile(file);
      assert.deepEqual(back, h);
      assert.deepEqual(checkKvHistory(back), { ok: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("skips blank lines and names the line of a malformed record", () => {
    const good =
      '{"client":1,"op":"get","key":"k","input":null,"output":null,"call":1,"return":2,"status":"ok"}';
    assert.equal(parseHistory(`\n${good}\n\n`).length, 1);
    const cases: [string, RegExp][] = [
      ["{not json", /not JSON/],
      ["[1]", /JSON object/],
      [good.replace('"status":"ok"', '"status":"maybe"'), /status/],
      [good.replace('"return":2', '"return":null'), /"ok" operation needs/],
      [good.replace('"return":2', '"return":0'), /before "call"/],
      [good.replace('"key":"k"', '"key":3'), /"key"/],
      [good.replace('"input":null', '"input":{"$bytes":"%%"}'), /base64/],
    ];
    for (const [line, why] of cases) {
      assert.throws(
        () => parseHistory(`${good}\n${line}`),
        (err: unknown) => err instanceof HistoryFormatError && err.line === 2 && why.test(err.message),
        line,
      );
    }
  });

  it("drops a return time written for an unknown outcome", () => {
    const [r] = parseHistory(
      '{"client":1,"op":"put","key":"k","input":"v","output":null,"call":1,"return":9,"status":"unknown"}',
    );
    assert.equal(r!.return, null);
  });
});
