// IEEE 754 binary16 ⇄ binary32, the storage type of upstream's LMDB latents. Conversion to half
// rounds to nearest, ties to even, with gradual underflow (subnormals), overflow to ±inf, and
// NaN kept NaN (quiet, top payload bits preserved). Bulk helpers work on whole rows.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The half-precision bits nearest to `x`. */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  return bitsToHalf(scratchU32[0] ?? 0);
}

function bitsToHalf(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry may round up into inf: correct
  return sign | h;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** All 65536 halves as floats: decoding is one lookup. */
const HALF_TABLE = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = halfToFloat(h);
  return table;
})();

export function f16BitsToF32(h: number): number {
  return HALF_TABLE[h & 0xffff] ?? NaN;
}

/** float32 values → half bits (a new array, or `out` when given). */
export function f32ToF16(src: Float32Array | readonly number[], out?: Uint16Array): Uint16Array {
  const dst = out ?? new Uint16Array(src.length);
  if (dst.length < src.length) throw new RangeError('f32ToF16: output too short');
  if (src instanceof Float32Array) {
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < src.length; i++) dst[i] = bitsToHalf(bits[i] ?? 0);
  } else {
    for (let i = 0; i < src.length; i++) dst[i] = f32ToF16Bits(src[i] ?? 0);
  }
  return dst;
}

/** Half bits → float32 (a new array, or `out` when given). */
export function f16ToF32(src: Uint16Array, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(src.length);
  if (dst.length < src.length) throw new RangeError('f16ToF32: output too short');
  for (let i = 0; i < src.length; i++) dst[i] = HALF_TABLE[src[i] ?? 0] ?? NaN;
  return dst;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Half bits as little-endian bytes (the on-disk form), without a copy on little-endian hosts. */
export function f16ToBytesLE(bits: Uint16Array): Uint8Array {
  if (littleEndian) return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
  const out = new Uint8Array(bits.length * 2);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i] ?? 0;
    out[2 * i] = b & 0xff;
    out[2 * i + 1] = b >>> 8;
  }
  return out;
}

/** Little-endian bytes → half bits (always a fresh, aligned array). */
export function bytesLEToF16(bytes: Uint8Array): Uint16Array {
  if (bytes.length % 2 !== 0) throw new RangeError(`float16 data has an odd byte count (${bytes.length})`);
  const out = new Uint16Array(bytes.length / 2);
  if (littleEndian) new Uint8Array(out.buffer).set(bytes);
  else for (let i = 0; i < out.length; i++) out[i] = (bytes[2 * i] ?? 0) | ((bytes[2 * i + 1] ?? 0) << 8);
  return out;
}
