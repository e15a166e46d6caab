// An independent safetensors reader and XXH64 for the tests: written from the format description
// only (8-byte little-endian header length, JSON header, data section), sharing no code with the
// engine, so an engine-written file is checked by a second implementation.
import { readFileSync } from 'node:fs';

export interface ParsedTensor {
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface ParsedFile {
  headerLength: number;
  headerText: string;
  metadata: Record<string, string>;
  tensors: Map<string, ParsedTensor>;
  /** Tensor names in header order. */
  order: string[];
  bytes: Buffer;
  dataStart: number;
}

const SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, U8: 1, U64: 8 };

export function parseSafetensors(path: string): ParsedFile {
  const bytes = readFileSync(path);
  if (bytes.length < 8) throw new Error(`${path}: shorter than 8 bytes`);
  const n = Number(bytes.readBigUInt64LE(0));
  if (8 + n > bytes.length) throw new Error(`${path}: header runs past the end`);
  const headerText = bytes.subarray(8, 8 + n).toString('utf8');
  const header = JSON.parse(headerText) as Record<string, unknown>;
  const tensors = new Map<string, ParsedTensor>();
  const order: string[] = [];
  let metadata: Record<string, string> = {};
  const dataLength = bytes.length - 8 - n;
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const v = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const size = SIZES[v.dtype];
    if (size === undefined) throw new Error(`${name}: unknown dtype ${v.dtype}`);
    const [begin, end] = v.data_offsets;
    const numel = v.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== numel * size) throw new Error(`${name}: offsets do not match shape`);
    if (end > dataLength) throw new Error(`${name}: past the end`);
    tensors.set(name, { dtype: v.dtype, shape: v.shape, begin, end });
    order.push(name);
  }
  return { headerLength: n, headerText, metadata, tensors, order, bytes, dataStart: 8 + n };
}

/** The float values of an F32/F16/BF16 tensor, decoded here from the raw bytes. */
export function tensorValues(file: ParsedFile, name: string): number[] {
  const t = file.tensors.get(name);
  if (!t) throw new Error(`no tensor ${name}`);
  const raw = file.bytes.subarray(file.dataStart + t.begin, file.dataStart + t.end);
  const out: number[] = [];
  if (t.dtype === 'F32') for (let i = 0; i < raw.length; i += 4) out.push(raw.readFloatLE(i));
  else if (t.dtype === 'F16') for (let i = 0; i < raw.length; i += 2) out.push(halfToNumber(raw.readUInt16LE(i)));
  else if (t.dtype === 'BF16') {
    const b = Buffer.alloc(4);
    for (let i = 0; i < raw.length; i += 2) {
      b.writeUInt32LE(raw.readUInt16LE(i) << 16 >>> 0, 0);
      out.push(b.readFloatLE(0));
    }
  } else throw new Error(`tensorValues: ${t.dtype} is not a float dtype`);
  return out;
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

// XXH64 with BigInt, from the algorithm's description.
const M = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;
const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & M;
const round = (acc: bigint, input: bigint): bigint => (rotl((acc + input * P2) & M, 31n) * P1) & M;
const merge = (acc: bigint, v: bigint): bigint => (((acc ^ round(0n, v)) * P1) & M) + P4 & M;

export function xxh64(data: Uint8Array, seed = 0n): bigint {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = data.byteLength;
  let p = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & M;
    let v2 = (seed + P2) & M;
    let v3 = seed;
    let v4 = (seed - P1) & M;
    while (p <= len - 32) {
      v1 = round(v1, view.getBigUint64(p, true));
      v2 = round(v2, view.getBigUint64(p + 8, true));
      v3 = round(v3, view.getBigUint64(p + 16, true));
      v4 = round(v4, view.getBigUint64(p + 24, true));
      p += 32;
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M;
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = (seed + P5) & M;
  }
  h = (h + BigInt(len)) & M;
  while (p + 8 <= len) {
    h ^= round(0n, view.getBigUint64(p, true));
    h = ((rotl(h, 27n) * P1) & M) + P4 & M;
    p += 8;
  }
  if (p + 4 <= len) {
    h ^= (BigInt(view.getUint32(p, true)) * P1) & M;
    h = ((rotl(h, 23n) * P2) & M) + P3 & M;
    p += 4;
  }
  while (p < len) {
    h ^= (BigInt(data[p]!) * P5) & M;
    h = (rotl(h, 11n) * P1) & M;
    p += 1;
  }
  h ^= h >> 33n;
  h = (h * P2) & M;
  h ^= h >> 29n;
  h = (h * P3) & M;
  h ^= h >> 32n;
  return h;
}
