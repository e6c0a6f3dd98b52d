import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { crc32c } from "../../src/storage/crc32c.ts";

/** The bitwise definition: slow, obviously correct, the reference for the fast one. */
function crc32cBitwise(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe("crc32c", () => {
  it("matches the published check values (RFC 3720 B.4, iSCSI)", () => {
    const enc = new TextEncoder();
    assert.equal(crc32c(enc.encode("123456789")), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    const inc = Uint8Array.from({ length: 32 }, (_, i) => i);
    assert.equal(crc32c(inc), 0x46dd794e);
    const dec = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
    assert.equal(crc32c(dec), 0x113fdb5c);
    assert.equal(crc32c(enc.encode("The quick brown fox jumps over the lazy dog")), 0x22620404);
  });

  it("agrees with the bitwise definition on random input and any split", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), fc.nat(), (buf, cut) => {
        const ref = crc32cBitwise(buf);
        assert.equal(crc32c(buf), ref);
        const k = buf.length === 0 ? 0 : cut % buf.length;
        assert.equal(crc32c(buf, crc32c(buf, 0, 0, k), k, buf.length), ref);
      }),
      { numRuns: 500 },
    );
  });

  it("gives the same value at every alignment of the input (word path and byte path agree)", () => {
    const backing = new Uint8Array(1100);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 131 + 7) & 0xff;
    for (let off = 0; off < 8; off++) {
      for (const len of [0, 1, 7, 8, 127, 128, 129, 1000]) {
        const copy = backing.slice(50, 50 + len);
        assert.equal(crc32c(backing.subarray(off + 50 - off, 50 + len)), crc32cBitwise(copy));
        const shifted = new Uint8Array(len + off);
        shifted.set(copy, off);
        assert.equal(crc32c(shifted.subarray(off)), crc32cBitwise(copy), `offset ${off} length ${len}`);
        assert.equal(crc32c(shifted, 0, off, off + len), crc32cBitwise(copy));
      }
    }
  });

  it("detects every single-bit flip in a record-sized buffer", () => {
    const buf = Uint8Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff);
    const good = crc32c(buf);
    for (let bit = 0; bit < buf.length * 8; bit++) {
      buf[bit >> 3]! ^= 1 << (bit & 7);
      assert.notEqual(crc32c(buf), good);
      buf[bit >> 3]! ^= 1 << (bit & 7);
    }
  });
});
