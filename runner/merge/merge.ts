// Merge upstream-layout shards into one LMDB without touching them (upstream deletes its inputs;
// spec §6.4). Rows are re-indexed contiguously in shard order and streamed in write batches
// (bounded by rows and by bytes), so memory stays at about one batch whatever the data size.
// The output is built in the work dir; after each committed batch the number of rows done is
// recorded there, so an interrupted merge (Ctrl-C, kill -9) continues from the last batch and
// ends with exactly the output an uninterrupted merge writes. The shape keys go in last, then
// the finished environment is moved to the output path.
//
// Shards in either LMDB data format are read (format 1 is what upstream's Python tools write).
// The output is format 2 (lmdb-js, resumable batch by batch) or, when asked or when every shard
// is format 1, format 1 so upstream's Python readers open it: LmdbV1Writer streams each row's
// latents to overflow pages as it goes and writes the tree at the end. That writer builds the file
// in one pass, so an interrupted format-1 merge starts over instead of resuming.

import { cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { MergePlan } from './plan.js';
import { copyBytes, dataKey, openOutput, openShardReadOnly, shapeKey, shardFingerprint } from './shards.js';
import type { ShardDb } from './shards.js';
import { LmdbV1Writer } from '../domain/lmdb_v1.js';

export interface MergeOptions {
  readonly plan: MergePlan;
  /** Where the merged LMDB directory is published (must not exist yet). */
  readonly outPath: string;
  /** Kept across interruptions: the environment being built and the progress record. */
  readonly workDir: string;
  /** Rows per write transaction (upstream: 512). */
  readonly batchRows?: number;
  /** Also commit once this many bytes are pending (default 64 MiB). */
  readonly batchBytes?: number;
  /** Initial map size of the output; lmdb-js grows it as the data grows. */
  readonly initialMapSize?: number;
  /** LMDB data format of the output; default 1 when every shard is format 1, else 2. */
  readonly format?: 1 | 2;
  readonly signal?: AbortSignal;
  readonly onProgress?: (rowsDone: number, totalRows: number, bytesWritten: number) => void;
  /** Called after each batch is committed and recorded (tests use it to interrupt). */
  readonly onBatch?: (rowsDone: number) => void;
  readonly log?: (line: string) => void;
}

export interface MergeResult {
  readonly rows: number;
  /** Row index the merge started from (0, or where an interrupted run stopped). */
  readonly resumedAtRow: number;
  /** Value bytes written by this call. */
  readonly bytesWritten: number;
  /** Largest amount of row data held in memory at once. */
  readonly peakBatchBytes: number;
  /** LMDB data format written. */
  readonly format: 1 | 2;
}

/** A shard whose content contradicts its shape keys; the message names the shard and the key. */
export class MergeDataError extends Error {
  override readonly name = 'MergeDataError';
}

interface Progress {
  readonly planId: string;
  readonly rowsDone: number;
}

/** The output format a merge writes when none is asked for: the shards' own, if they agree on 1. */
export const defaultOutputFormat = (plan: MergePlan): 1 | 2 => (plan.shards.length > 0 && plan.shards.every((s) => s.format === 1) ? 1 : 2);

export async function mergeShards(o: MergeOptions): Promise<MergeResult> {
  const { plan } = o;
  const format = o.format ?? defaultOutputFormat(plan);
  if (format === 1) return mergeToV1(o);
  const batchRows = o.batchRows ?? 512;
  const batchBytes = o.batchBytes ?? 64 * 1024 * 1024;
  if (existsSync(o.outPath)) throw new MergeDataError(`the merge output ${o.outPath} already exists`);
  await mkdir(o.workDir, { recursive: true });
  const buildPath = join(o.workDir, 'merged.lmdb');
  const progressPath = join(o.workDir, 'merge-progress.json');
  const planId = planIdentity(plan);

  // Resume only a build of this very plan over unchanged shards; anything else starts over.
  let progress = await readProgress(progressPath);
  if (progress === undefined || progress.planId !== planId) {
    await rm(buildPath, { recursive: true, force: true });
    progress = { planId, rowsDone: 0 };
    await writeProgress(progressPath, progress);
  } else if (progress.rowsDone > 0) {
    o.log?.(`resuming the merge at row ${progress.rowsDone} of ${plan.totalRows}`);
  }
  const resumedAtRow = progress.rowsDone;

  const out = openOutput(buildPath, o.initialMapSize);
  let bytesWritten = 0;
  let peakBatchBytes = 0;
  try {
    let pending: { key: string; value: Buffer }[] = [];
    let pendingBytes = 0;
    let pendingRowsEnd = resumedAtRow;
    const commit = async (): Promise<void> => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      peakBatchBytes = Math.max(peakBatchBytes, pendingBytes);
      pendingBytes = 0;
      await out.transaction(() => {
        for (const { key, value } of batch) void out.put(key, value);
      });
      await out.flushed;
      for (const { value } of batch) bytesWritten += value.length;
      await writeProgress(progressPath, { planId, rowsDone: pendingRowsEnd });
      o.onBatch?.(pendingRowsEnd);
      o.onProgress?.(pendingRowsEnd, plan.totalRows, bytesWritten);
    };

    for (const shard of plan.shards) {
      if (shard.firstRow + shard.rows <= resumedAtRow) continue;
      if (shardFingerprint(shard.path) !== shard.fingerprint) throw new MergeDataError(`shard ${shard.path} changed while it was being merged`);
      const db = openShardReadOnly(shard.path);
      try {
        for (let i = Math.max(0, resumedAtRow - shard.firstRow); i < shard.rows; i++) {
          const outRow = shard.firstRow + i;
          let rowBytes = 0;
          for (const name of plan.names) {
            const value = readValue(db, shard.path, name, i, plan);
            pending.push({ key: dataKey(name, outRow), value });
            rowBytes += value.length;
          }
          pendingBytes += rowBytes;
          pendingRowsEnd = outRow + 1;
          if (pending.length >= batchRows * plan.names.length || pendingBytes >= batchBytes) {
            await commit();
            if (o.signal?.aborted) throw o.signal.reason ?? new Error('merge interrupted');
          }
        }
        await commit();
      } finally {
        await db.close();
      }
    }
    await commit();

    // Shape keys last: a reader of an unfinished build finds no latents_shape, never a wrong N.
    await out.transaction(() => {
      for (const name of plan.names) void out.put(shapeKey(name), Buffer.from(plan.outShapes[name] ?? '', 'ascii'));
    });
    await out.flushed;
  } finally {
    await out.close();
  }
  await publishDir(buildPath, o.outPath);
  await rm(progressPath, { force: true });
  return { rows: plan.totalRows, resumedAtRow, bytesWritten, peakBatchBytes, format: 2 };
}

/** The format-1 path: one pass, rows in order, shape keys with the rest; no resume. */
async function mergeToV1(o: MergeOptions): Promise<MergeResult> {
  const { plan } = o;
  await mkdir(o.workDir, { recursive: true });
  const buildPath = join(o.workDir, 'merged-v1.lmdb');
  if (existsSync(buildPath)) o.log?.('an earlier format-1 merge was interrupted; format-1 output is written in one pass, so it starts over');
  await rm(buildPath, { recursive: true, force: true });
  const writer = new LmdbV1Writer(buildPath);
  const batchRows = o.batchRows ?? 512;
  let bytesWritten = 0;
  let peakRowBytes = 0;
  try {
    for (const shard of plan.shards) {
      if (shardFingerprint(shard.path) !== shard.fingerprint) throw new MergeDataError(`shard ${shard.path} changed while it was being merged`);
      const db = openShardReadOnly(shard.path);
      try {
        for (let i = 0; i < shard.rows; i++) {
          const outRow = shard.firstRow + i;
          let rowBytes = 0;
          for (const name of plan.names) {
            const value = readValue(db, shard.path, name, i, plan);
            writer.put(dataKey(name, outRow), value);
            rowBytes += value.length;
          }
          bytesWritten += rowBytes;
          peakRowBytes = Math.max(peakRowBytes, rowBytes);
          if ((outRow + 1) % batchRows === 0 || outRow + 1 === plan.totalRows) {
            o.onBatch?.(outRow + 1);
            o.onProgress?.(outRow + 1, plan.totalRows, bytesWritten);
            if (o.signal?.aborted) throw o.signal.reason ?? new Error('merge interrupted');
            // Let the event loop see an interrupt between batches.
            await new Promise((r) => setImmediate(r));
          }
        }
      } finally {
        await db.close();
      }
    }
    for (const name of plan.names) writer.put(shapeKey(name), Buffer.from(plan.outShapes[name] ?? '', 'ascii'));
    writer.finish();
  } catch (err) {
    writer.abort();
    throw err;
  }
  await publishDir(buildPath, o.outPath);
  return { rows: plan.totalRows, resumedAtRow: 0, bytesWritten, peakBatchBytes: peakRowBytes, format: 1 };
}

/** One value of row i, as it goes into the output (a copy: LMDB's buffer is reused by the next read). */
function readValue(db: ShardDb, path: string, name: string, i: number, plan: MergePlan): Buffer {
  const key = dataKey(name, i);
  const value = db.get(key);
  if (value === undefined) throw new MergeDataError(`shard ${path}: key \`${key}\` is missing (its \`${shapeKey(name)}\` promises the row)`);
  if (name !== 'latents') return copyBytes(value, 0, value.length);
  if (value.length !== plan.latentRowBytes) {
    throw new MergeDataError(`shard ${path}: \`${key}\` has ${value.length} bytes; the row shape [${plan.latentRowShape.join(', ')}] in float16 needs ${plan.latentRowBytes}`);
  }
  // Clean: the last trajectory entry, the trailing bytes of the C-contiguous row.
  return copyBytes(value, value.length - plan.latentOutBytes, value.length);
}

/** Everything the output depends on: a resume with a different plan starts over. */
function planIdentity(plan: MergePlan): string {
  return createHash('sha256')
    .update(JSON.stringify({ mode: plan.mode, shards: plan.shards.map((s) => s.fingerprint), names: plan.names, shapes: plan.outShapes, format: 2 }))
    .digest('hex');
}

async function publishDir(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    const tmp = `${to}.cfpipe-partial`;
    await rm(tmp, { recursive: true, force: true });
    await cp(from, tmp, { recursive: true });
    await rename(tmp, to);
    await rm(from, { recursive: true, force: true });
  }
}

async function readProgress(path: string): Promise<Progress | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as Partial<Progress>;
    return typeof v.planId === 'string' && typeof v.rowsDone === 'number' ? { planId: v.planId, rowsDone: v.rowsDone } : undefined;
  } catch {
    return undefined;
  }
}

async function writeProgress(path: string, p: Progress): Promise<void> {
  await writeFile(`${path}.tmp`, JSON.stringify(p));
  await rename(`${path}.tmp`, path);
}
