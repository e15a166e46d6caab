import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesLEToF16, f16BitsToF32, f16ToBytesLE, f16ToF32, f32ToF16, f32ToF16Bits } from '../../runner/domain/float16.js';
import { CounterRng } from '../../runner/domain/rng.js';

// Node 24 ships Float16Array (V8's own conversion): an independent reference.
const Reference = (globalThis as unknown as { Float16Array?: new (n: number) => { [i: number]: number; buffer: ArrayBuffer } }).Float16Array;

test('known values: rounding to nearest even, subnormals, overflow, inf and nan', () => {
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(-2), 0xc000);
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(65519), 0x7bff); // below the midpoint to 65536
  assert.equal(f32ToF16Bits(65520), 0x7c00); // the midpoint rounds to even: infinity
  assert.equal(f32ToF16Bits(1e9), 0x7c00);
  assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie → even (zero)
  assert.equal(f32ToF16Bits(1.5 * 2 ** -25), 0x0001);
  assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // tie 1.5 ulp → even 2
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x7bff), 65504);
});

test('every half decodes as the engine\'s Float16Array does, and re-encodes to itself', { skip: Reference === undefined }, () => {
  const ref = new Reference!(65536);
  const bits = new Uint16Array(ref.buffer);
  for (let h = 0; h < 65536; h++) bits[h] = h;
  const all = new Uint16Array(65536).map((_, h) => h);
  const decoded = f16ToF32(all);
  for (let h = 0; h < 65536; h++) {
    const r = ref[h]!;
    if (Number.isNaN(r)) assert.ok(Number.isNaN(decoded[h]!));
    else {
      assert.equal(decoded[h], r, `half 0x${h.toString(16)}`);
      assert.equal(f32ToF16Bits(r), h);
    }
  }
});

test('random float32 values round exactly as Float16Array does', { skip: Reference === undefined }, () => {
  const rng = new CounterRng([42]);
  const n = 200_000;
  const src = new Float32Array(n);
  const u32 = new Uint32Array(src.buffer);
  for (let i = 0; i < n; i++) u32[i] = Math.floor(rng.uniform() * 2 ** 32) >>> 0; // every bit pattern class
  const ref = new Reference!(n);
  for (let i = 0; i < n; i++) ref[i] = src[i]!;
  const refBits = new Uint16Array(ref.buffer);
  const ours = f32ToF16(src);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(src[i]!)) continue;
    assert.equal(ours[i], refBits[i], `float bits 0x${u32[i]!.toString(16)}`);
  }
});

test('little-endian byte form round-trips', () => {
  const bits = f32ToF16([1, -2, 0.5]);
  const bytes = f16ToBytesLE(bits);
  assert.deepEqual([...bytes], [0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38]);
  assert.deepEqual(bytesLEToF16(bytes.slice()), bits);
  assert.throws(() => bytesLEToF16(new Uint8Array(3)), /odd byte count/);
});
