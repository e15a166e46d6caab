// Shards for the merge tests, written with the domain's LatentLmdbWriter (what `synth` writes
// through), plus the expected merge output built straight from the spec's rules (§1.3–§1.4),
// independently of runner/merge.
import { open } from 'lmdb';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LatentLmdbWriter } from '../../runner/domain/lmdb_layout.js';

/** Rows of deterministic float16 bits (varied, all finite) for shard `seed`. */
export function rowBits(values: number, seed: number, row: number): Uint16Array {
  const out = new Uint16Array(values);
  let x = (seed * 7919 + row * 104729 + 1) >>> 0;
  for (let i = 0; i < values; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = (x >>> 16) & 0x7bff; // exponent < 31: finite
  }
  return out;
}

export async function writeShard(path: string, rowShape: readonly number[], rows: number, seed: number, batchRows = 512): Promise<void> {
  const w = LatentLmdbWriter.create(path, { rowShape, batchRows });
  const values = rowShape.reduce((a, b) => a * b, 1);
  for (let i = 0; i < rows; i++) await w.append(rowBits(values, seed, i), `shard ${seed} prompt ${i}: a red disc moving left`);
  await w.finish();
}

/** Every key → value of an LMDB, read raw. */
export function readAll(path: string): Map<string, Buffer> {
  const db = open<Buffer, string>(path, { encoding: 'binary', readOnly: true, noSubdir: false });
  const out = new Map<string, Buffer>();
  try {
    for (const { key, value } of db.getRange({ snapshot: false })) out.set(String(key), Buffer.from(value));
  } finally {
    void db.close();
  }
  return out;
}

/**
 * What upstream's merge_lmdb.py (full) or merge_and_get_clean.py (clean) writes for these shards:
 * rows re-indexed contiguously in shard order; latents kept whole (full) or cut to the last
 * trajectory entry with shape "N 1 F C H W" (clean); prompts copied; shape keys with the total N.
 */
export function expectedMerge(shards: readonly string[], mode: 'full' | 'clean'): Map<string, Buffer> {
  const expected = new Map<string, Buffer>();
  let next = 0;
  let rowShape: number[] = [];
  for (const path of shards) {
    const data = readAll(path);
    const dims = (data.get('latents_shape') ?? Buffer.alloc(0)).toString('ascii').split(' ').map(Number);
    const n = dims[0] ?? 0;
    rowShape = dims.slice(1);
    const entryValues = (rowShape.length === 4 ? rowShape : rowShape.slice(1)).reduce((a, b) => a * b, 1);
    for (let i = 0; i < n; i++) {
      const latent = data.get(`latents_${i}_data`);
      const prompt = data.get(`prompts_${i}_data`);
      if (!latent || !prompt) throw new Error(`fixture shard ${path} lacks row ${i}`);
      expected.set(`latents_${next}_data`, mode === 'full' ? latent : latent.subarray(latent.length - entryValues * 2));
      expected.set(`prompts_${next}_data`, prompt);
      next++;
    }
  }
  const entry = rowShape.length === 4 ? rowShape : rowShape.slice(1);
  expected.set('latents_shape', Buffer.from([next, ...(mode === 'full' ? rowShape : [1, ...entry])].join(' ')));
  expected.set('prompts_shape', Buffer.from(String(next)));
  return expected;
}

/** Bytes digest, mtime and file list of each shard, to show a merge left its inputs alone. */
export function snapshotInputs(shards: readonly string[]): string {
  return JSON.stringify(
    shards.map((dir) => ({
      dir,
      files: readdirSync(dir).sort(),
      data: createHash('sha256').update(readFileSync(join(dir, 'data.mdb'))).digest('hex'),
      mtime: statSync(join(dir, 'data.mdb')).mtimeMs,
    })),
  );
}

export function assertSameContent(actual: Map<string, Buffer>, expected: Map<string, Buffer>): string | undefined {
  for (const [k, v] of expected) {
    const got = actual.get(k);
    if (got === undefined) return `missing key ${k}`;
    if (!got.equals(v)) return `key ${k} differs`;
  }
  for (const k of actual.keys()) if (!expected.has(k)) return `unexpected key ${k}`;
  return undefined;
}
