import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ProtocolError } from "../../src/errors.ts";
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameDecoder,
  PROTOCOL_VERSION,
} from "../../src/transport/frame.ts";
import { anyMessage, sampleOfEveryType } from "./arbitraries.ts";

function sampleFrames(): Frame[] {
  return [
    { kind: "hello", version: PROTOCOL_VERSION, clusterId: "prod-eu", from: 1, to: 2 },
    { kind: "helloOk", version: PROTOCOL_VERSION, nodeId: 2 },
    { kind: "refuse", reason: "cluster-id-mismatch", message: "no" },
    ...sampleOfEveryType(1, 2).map((message): Frame => ({ kind: "message", message })),
    { kind: "request", id: 7, method: "join", payload: new Uint8Array([9, 8, 7]) },
    { kind: "response", id: 7, ok: true, payload: new Uint8Array(1000).fill(3) },
    { kind: "response", id: 8, ok: false, code: "TSRAFT_ERR_NOT_LEADER", message: "not the leader ✓" },
  ];
}

/** Feeds `stream` to a decoder in pieces cut at `cuts`, returning decoded frames. */
function decodeSplit(stream: Buffer, cuts: readonly number[], max = 1 << 20): Frame[] {
  const d = new FrameDecoder(max);
  const out: Frame[] = [];
  let prev = 0;
  for (const c of [...cuts, stream.length]) {
    d.push(stream.subarray(prev, c), (body) => out.push(decodeFrame(body)));
    prev = c;
  }
  assert.equal(d.bufferedBytes, 0);
  return out;
}

describe("framing", () => {
  it("round-trips every frame kind", () => {
    for (const f of sampleFrames()) {
      const buf = encodeFrame(f);
      assert.equal(buf.readUInt32BE(0), buf.length - 4);
      assert.deepStrictEqual(decodeFrame(buf.subarray(4)), f);
    }
  });

  it("reassembles a stream split at every single offset", () => {
    const frames = sampleFrames();
    const stream = Buffer.concat(frames.map(encodeFrame));
    for (let cut = 0; cut <= stream.length; cut++) {
      assert.deepStrictEqual(decodeSplit(stream, [cut]), frames);
    }
  });

  it("reassembles a stream fed one byte at a time", () => {
    const frames = sampleFrames();
    const stream = Buffer.concat(frames.map(encodeFrame));
    const cuts = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
    assert.deepStrictEqual(decodeSplit(stream, cuts), frames);
  });

  it("reassembles random messages split at random offsets", () => {
    fc.assert(
      fc.property(
        fc.array(anyMessage, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (messages, rawCuts) => {
          const frames = messages.map((message): Frame => ({ kind: "message", message }));
          const stream = Buffer.concat(frames.map(encodeFrame));
          const cuts = [...new Set(rawCuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          assert.deepStrictEqual(decodeSplit(stream, cuts), frames);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("rejects an oversize length as soon as the header arrives, without buffering the body", () => {
    const d = new FrameDecoder(1024);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1025);
    assert.throws(
      () => d.push(header, () => assert.fail("no frame expected")),
      /1025 bytes exceeds maxFrameBytes \(1024\)/,
    );
    assert.equal(d.bufferedBytes, 0);
    // Poisoned: the stream cannot be resynchronised.
    assert.throws(() => d.push(Buffer.from([0, 0, 0, 1, 1]), () => {}), ProtocolError);
    // Header split across chunks is checked too.
    const d2 = new FrameDecoder(1024);
    d2.push(Buffer.from([0xff, 0xff]), () => {});
    assert.throws(() => d2.push(Buffer.from([0xff, 0xff]), () => {}), ProtocolError);
  });

  it("rejects empty frames, unknown kinds, bad magic and trailing bytes", () => {
    assert.throws(() => new FrameDecoder(1024).push(Buffer.alloc(4), () => {}), /empty frame/);
    assert.throws(() => decodeFrame(new Uint8Array([42])), /unknown frame kind 42/);
    const hello = encodeFrame({ kind: "hello", version: 1, clusterId: "c", from: 1, to: 2 });
    hello[5] ^= 0xff;
    assert.throws(() => decodeFrame(hello.subarray(4)), /magic/);
    const ok = encodeFrame({ kind: "helloOk", version: 1, nodeId: 2 });
    assert.throws(() => decodeFrame(Buffer.concat([ok.subarray(4), Buffer.from([0])])), /trailing/);
  });

  it("never crashes on random garbage streams", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const d = new FrameDecoder(256);
        try {
          d.push(Buffer.from(bytes), (body) => decodeFrame(body));
        } catch (err) {
          assert.ok(err instanceof ProtocolError, String(err));
        }
        assert.ok(d.bufferedBytes <= 4 + 256);
      }),
      { numRuns: 3000 },
    );
  });

  it("truncates long error messages to a bounded size", () => {
    const f = encodeFrame({ kind: "response", id: 1, ok: false, code: "X", message: "é".repeat(10_000) });
    const d = decodeFrame(f.subarray(4));
    assert.ok(
      d.kind === "response" && !d.ok && Buffer.byteLength(d.message) <= 4096 && d.message.endsWith("..."),
    );
  });
});
