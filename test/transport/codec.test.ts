import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ProtocolError } from "../../src/errors.ts";
import type { Message } from "../../src/raft/types.ts";
import { decodeMessage, encodeMessage, MESSAGE_TAGS, messageSize } from "../../src/transport/codec.ts";
import { Reader, varintSize, Writer } from "../../src/transport/wire.ts";
import { anyMessage, arbitraries, sampleOfEveryType } from "./arbitraries.ts";

function assertProtocolErrorOrValid(buf: Uint8Array): void {
  try {
    const m = decodeMessage(buf);
    // If garbage happens to decode, it must be canonical: re-encoding gives the same bytes.
    assert.deepEqual(encodeMessage(m), buf);
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
  }
}

describe("varint", () => {
  it("round-trips every safe integer and sizes it exactly", () => {
    fc.assert(
      fc.property(fc.oneof(fc.maxSafeNat(), fc.nat({ max: 1 << 20 })), (n) => {
        const w = new Writer(new Uint8Array(varintSize(n)));
        w.varint(n);
        w.finish();
        const r = new Reader(w.buf);
        assert.equal(r.varint(), n);
        assert.equal(r.remaining, 0);
      }),
      { numRuns: 2000 },
    );
    for (const n of [
      0,
      127,
      128,
      2 ** 31 - 1,
      2 ** 31,
      2 ** 32 - 1,
      2 ** 32,
      2 ** 49,
      Number.MAX_SAFE_INTEGER,
    ]) {
      const w = new Writer(new Uint8Array(varintSize(n)));
      w.varint(n);
      assert.equal(new Reader(w.finish()).varint(), n);
    }
  });

  it("rejects overlong, non-canonical and unsafe varints", () => {
    assert.throws(() => new Reader(new Uint8Array(9).fill(0x80)).varint(), ProtocolError);
    assert.throws(() => new Reader(new Uint8Array([0x80, 0x00])).varint(), ProtocolError);
    // 2^56 - 1: fits 8 bytes but is not a safe integer.
    assert.throws(
      () => new Reader(new Uint8Array([...new Array(7).fill(0xff), 0x7f])).varint(),
      ProtocolError,
    );
    assert.throws(() => new Reader(new Uint8Array([0x80])).varint(), ProtocolError);
  });

  it("refuses to encode negative, fractional or unsafe numbers", () => {
    for (const bad of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN]) {
      assert.throws(() => new Writer(new Uint8Array(16)).varint(bad));
    }
  });
});

describe("message codec", () => {
  for (const [type, arb] of Object.entries(arbitraries)) {
    it(`round-trips ${type}`, () => {
      fc.assert(
        fc.property(arb as fc.Arbitrary<Message>, (m) => {
          const buf = encodeMessage(m);
          assert.equal(buf.length, messageSize(m));
          assert.equal(buf[0], MESSAGE_TAGS[m.type]);
          assert.deepStrictEqual(decodeMessage(buf), m);
        }),
        { numRuns: 300 },
      );
    });
  }

  it("covers every message type with a tag of its own", () => {
    const tags = Object.values(MESSAGE_TAGS);
    assert.equal(new Set(tags).size, tags.length);
    assert.deepEqual(new Set(sampleOfEveryType(1, 2).map((m) => m.type)), new Set(Object.keys(MESSAGE_TAGS)));
  });

  it("is compact: a heartbeat fits in a handful of bytes, entry data is raw", () => {
    const hb: Message = { type: "heartbeat", from: 1, to: 2, term: 5, commit: 100, round: 3 };
    // tag + from + to + term + commit + round, one byte each.
    assert.equal(encodeMessage(hb).length, 6);
    const data = new Uint8Array(256).fill(0xab);
    const app: Message = {
      type: "append",
      from: 1,
      to: 2,
      term: 5,
      prevIndex: 1000,
      prevTerm: 5,
      commit: 999,
      entries: [{ term: 5, index: 1001, type: 0, data }],
    };
    assert.ok(encodeMessage(app).length < 256 + 20);
  });

  it("keeps a leading U+FEFF in strings (a ReadIndex ctx must come back byte for byte)", () => {
    const m = { type: "readIndex", from: 1, to: 2, term: 3, ctx: "\ufeffctx" } as const;
    assert.deepEqual(decodeMessage(encodeMessage(m)), m);
  });

  it("throws ProtocolError on every truncation of every valid message", () => {
    fc.assert(
      fc.property(anyMessage, (m) => {
        const buf = encodeMessage(m);
        for (let cut = 0; cut < buf.length; cut++) {
          assert.throws(() => decodeMessage(buf.subarray(0, cut)), ProtocolError);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("throws ProtocolError on trailing bytes", () => {
    fc.assert(
      fc.property(anyMessage, fc.uint8Array({ minLength: 1, maxLength: 8 }), (m, extra) => {
        const buf = encodeMessage(m);
        const longer = new Uint8Array(buf.length + extra.length);
        longer.set(buf);
        longer.set(extra, buf.length);
        assert.throws(() => decodeMessage(longer), ProtocolError);
      }),
      { numRuns: 200 },
    );
  });

  it("never crashes on random garbage or on corrupted valid messages", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), assertProtocolErrorOrValid), { numRuns: 5000 });
    fc.assert(
      fc.property(anyMessage, fc.nat(), fc.integer({ min: 0, max: 255 }), (m, at, byte) => {
        const buf = encodeMessage(m);
        buf[at % buf.length] = byte;
        assertProtocolErrorOrValid(buf);
      }),
      { numRuns: 3000 },
    );
  });

  it("rejects huge declared counts and lengths before allocating", () => {
    // append with an entry count of 2^53-1 in a 20-byte buffer.
    const w = new Writer(new Uint8Array(64));
    w.u8(MESSAGE_TAGS.append);
    for (let i = 0; i < 6; i++) w.varint(1);
    w.varint(Number.MAX_SAFE_INTEGER);
    const buf = w.buf.subarray(0, w.pos);
    assert.throws(() => decodeMessage(buf), /cannot fit/);
    // readIndex with a ctx length of 2^40.
    const w2 = new Writer(new Uint8Array(64));
    w2.u8(MESSAGE_TAGS.readIndex);
    for (let i = 0; i < 3; i++) w2.varint(1);
    w2.varint(2 ** 40);
    assert.throws(() => decodeMessage(w2.buf.subarray(0, w2.pos)), ProtocolError);
  });

  it("rejects unknown tags, bad booleans, bad entry types and invalid UTF-8", () => {
    assert.throws(() => decodeMessage(new Uint8Array([0, 1, 2, 3])), /unknown message tag 0/);
    assert.throws(() => decodeMessage(new Uint8Array([99, 1, 2, 3])), /unknown message tag 99/);
    assert.throws(
      () => decodeMessage(new Uint8Array([MESSAGE_TAGS.voteResp, 1, 2, 3, 2])),
      /invalid boolean/,
    );
    const app = encodeMessage({
      type: "append",
      from: 1,
      to: 2,
      term: 3,
      prevIndex: 0,
      prevTerm: 0,
      commit: 0,
      entries: [{ term: 1, index: 1, type: 0, data: new Uint8Array() }],
    });
    app[app.length - 2] = 7; // the entry type byte
    assert.throws(() => decodeMessage(app), /unknown entry type 7/);
    const ri = encodeMessage({ type: "readIndex", from: 1, to: 2, term: 3, ctx: "ab" });
    ri[ri.length - 1] = 0xff;
    assert.throws(() => decodeMessage(ri), /not valid UTF-8/);
  });

  it("decoded data never aliases the input buffer", () => {
    const buf = encodeMessage(sampleOfEveryType(1, 2)[0]!);
    const m = decodeMessage(buf);
    assert.equal(m.type, "append");
    if (m.type !== "append") return;
    const before = [...m.entries[0]!.data];
    buf.fill(0);
    assert.deepEqual([...m.entries[0]!.data], before);
  });
});
