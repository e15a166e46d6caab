// Scan and validate the shards of a merge before anything is written (spec §1.3): every shard
// must hold the same set of `<name>_shape` keys with `latents` among them, agree on the row shape,
// and (for a full-trajectory merge) store 6-D latents `N S F C H W`. Problems come back as
// values, one sentence each, naming the shard and the key.

import type { ShardDb } from './shards.js';
import { openShardReadOnly, readShapes, shapeKey, shardFingerprint, shardFormat, shardProblem } from './shards.js';

/** `full`: rows kept whole (merge_lmdb.py). `clean`: only the last trajectory entry (merge_and_get_clean.py). */
export type MergeMode = 'full' | 'clean';

export interface ShardInfo {
  readonly path: string;
  readonly rows: number;
  /** Index of this shard's first row in the merged output. */
  readonly firstRow: number;
  readonly fingerprint: string;
  /** LMDB data format of the shard: 1 (LMDB 0.9, Python lmdb: upstream's shards) or 2 (lmdb-js). */
  readonly format: 1 | 2;
}

export interface MergePlan {
  readonly mode: MergeMode;
  readonly shards: readonly ShardInfo[];
  readonly totalRows: number;
  /** Array names, `latents` first, then the rest sorted (prompts, ...). */
  readonly names: readonly string[];
  /** Stored row shape of `latents` in the shards (without N). */
  readonly latentRowShape: readonly number[];
  /** Bytes of one stored latents row (fp16). */
  readonly latentRowBytes: number;
  /** Bytes of the part of a latents row that is written (the whole row, or the last entry). */
  readonly latentOutBytes: number;
  /** Output shape text of each name, with the merged N: what `<name>_shape` will hold. */
  readonly outShapes: Readonly<Record<string, string>>;
}

export type PlanResult = { readonly ok: true; readonly plan: MergePlan } | { readonly ok: false; readonly problems: readonly string[] };

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);
const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

export function planMerge(shardPaths: readonly string[], mode: MergeMode): PlanResult {
  const problems: string[] = [];
  if (shardPaths.length === 0) return { ok: false, problems: ['no shards to merge'] };
  const scanned: { path: string; shapes: Map<string, number[]> }[] = [];
  for (const path of shardPaths) {
    const problem = shardProblem(path);
    if (problem !== undefined) {
      problems.push(problem);
      continue;
    }
    let db: ShardDb | undefined;
    try {
      db = openShardReadOnly(path);
      scanned.push({ path, shapes: readShapes(db) });
    } catch (err) {
      problems.push(`shard ${path}: ${(err as Error).message}`);
    } finally {
      void db?.close();
    }
  }
  if (problems.length > 0) return { ok: false, problems };

  const first = scanned[0];
  if (first === undefined) return { ok: false, problems: ['no shards to merge'] };
  const firstNames = [...first.shapes.keys()].sort();
  for (const { path, shapes } of scanned) {
    const latents = shapes.get('latents');
    if (latents === undefined) {
      problems.push(`shard ${path} has no \`latents_shape\` key (not a latent LMDB, or its build did not finish)`);
      continue;
    }
    if (mode === 'full' && latents.length !== 6) {
      problems.push(`shard ${path}: \`latents_shape\` is "${latents.join(' ')}" (${latents.length} dims); a full-trajectory merge needs 6 dims "N S F C H W"`);
    }
    if (mode === 'clean' && latents.length !== 5 && latents.length !== 6) {
      problems.push(`shard ${path}: \`latents_shape\` is "${latents.join(' ')}"; expected "N F C H W" or "N S F C H W"`);
    }
    const rows = latents[0] ?? 0;
    for (const [name, shape] of shapes) {
      if ((shape[0] ?? -1) !== rows) problems.push(`shard ${path}: \`${shapeKey(name)}\` says ${shape[0] ?? 'no'} rows but \`latents_shape\` says ${rows}`);
    }
    if (path === first.path) continue;
    const names = [...shapes.keys()].sort();
    for (const n of names) if (!first.shapes.has(n)) problems.push(`shard ${path} has \`${shapeKey(n)}\`, which shard ${first.path} lacks`);
    for (const n of firstNames) if (!shapes.has(n)) problems.push(`shard ${path} lacks \`${shapeKey(n)}\`, which shard ${first.path} has`);
    for (const [name, shape] of shapes) {
      const ref = first.shapes.get(name);
      if (ref !== undefined && !same(shape.slice(1), ref.slice(1))) {
        problems.push(`shard ${path}: \`${shapeKey(name)}\` is "${shape.join(' ')}" but shard ${first.path} has "${ref.join(' ')}": the row shapes [${shape.slice(1).join(', ')}] and [${ref.slice(1).join(', ')}] differ`);
      }
    }
  }
  if (problems.length > 0) return { ok: false, problems };

  const latentShape = first.shapes.get('latents') ?? [];
  const rowShape = latentShape.slice(1);
  // A 4-D row [F, C, H, W] is one entry; a 5-D row [S, F, C, H, W] has S entries.
  const entryShape = rowShape.length === 4 ? rowShape : rowShape.slice(1);
  const latentRowBytes = product(rowShape) * 2;
  const latentOutBytes = mode === 'full' ? latentRowBytes : product(entryShape) * 2;
  const shards: ShardInfo[] = [];
  let total = 0;
  for (const { path, shapes } of scanned) {
    const rows = shapes.get('latents')?.[0] ?? 0;
    shards.push({ path, rows, firstRow: total, fingerprint: shardFingerprint(path), format: shardFormat(path) });
    total += rows;
  }
  const names = ['latents', ...firstNames.filter((n) => n !== 'latents')];
  const outShapes: Record<string, string> = {};
  for (const name of names) {
    const rest = name === 'latents' ? (mode === 'full' ? rowShape : [1, ...entryShape]) : (first.shapes.get(name) ?? []).slice(1);
    outShapes[name] = [total, ...rest].join(' ');
  }
  return { ok: true, plan: { mode, shards, totalRows: total, names, latentRowShape: rowShape, latentRowBytes, latentOutBytes, outShapes } };
}
