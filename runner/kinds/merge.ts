// `merge`: upstream-layout LMDB shards → one LMDB, without deleting anything (spec §1.3).
//
//   stage ode_data: merge {
//     shards = data.dataset                  # shard folders, or folders holding shards
//     pattern = "ODE6KCausal_framewise_*"    # picks shards inside a holding folder
//     mode = "full"                          # "full" (merge_lmdb.py) or "clean" (merge_and_get_clean.py)
//     lmdb_format = 1                        # 1: LMDB 0.9 (Python lmdb, upstream reads it), 2: lmdb-js;
//                                            # default: 1 when every shard is format 1, else 2
//     output latents: dataset
//   }
//
// Every input path is either a shard (a folder with data.mdb) or a folder whose subfolders
// matching `pattern` are shards, taken in natural order (…_2 before …_10, as upstream's
// range(15) does). See runner/merge/merge.ts for batching, resume and validation.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { planMerge } from '../merge/plan.js';
import type { MergeMode } from '../merge/plan.js';
import { defaultOutputFormat, MergeDataError, mergeShards } from '../merge/merge.js';
import { KindError, type KindContext, type StageKind } from './types.js';

/** A glob with `*` and `?` as a whole-name regular expression. */
function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** Natural order: digit runs compare as numbers, so shard_2 comes before shard_10. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The shard folders the inputs name, in merge order. */
export function collectShards(paths: readonly string[], pattern: string | undefined): string[] {
  const match = pattern === undefined ? undefined : globToRegExp(pattern);
  const shards: string[] = [];
  for (const path of paths) {
    if (existsSync(join(path, 'data.mdb'))) {
      if (match === undefined || match.test(basename(path))) shards.push(path);
      continue;
    }
    if (!existsSync(path) || !statSync(path).isDirectory()) throw new KindError(`merge: input ${path} is neither a shard nor a folder of shards`);
    const found = readdirSync(path)
      .filter((name) => (match === undefined || match.test(name)) && existsSync(join(path, name, 'data.mdb')))
      .sort(naturalCompare)
      .map((name) => join(path, name));
    shards.push(...found);
  }
  return shards;
}

function onlyOutput(ctx: KindContext): string {
  const outputs = ctx.task.outputs;
  const first = outputs[0];
  if (outputs.length !== 1 || first === undefined) throw new KindError(`merge: stage ${ctx.task.stage} must declare exactly one output (the merged dataset)`);
  const path = ctx.outputs[first.name];
  if (path === undefined) throw new KindError(`merge: no path for output \`${first.name}\``);
  return path;
}

export const kind: StageKind = {
  name: 'merge',
  async run(ctx) {
    const p = ctx.task.params;
    // `trajectories` is the registry's older name for the full merge.
    const mode = p.mode === undefined || p.mode === 'trajectories' ? 'full' : p.mode;
    if (mode !== 'full' && mode !== 'clean') throw new KindError(`merge: \`mode\` must be "full" or "clean", not ${JSON.stringify(mode)}`);
    const pattern = typeof p.pattern === 'string' ? p.pattern : undefined;
    const inputPaths = Object.values(ctx.inputs).flat();
    const shards = collectShards(inputPaths, pattern);
    if (shards.length === 0) throw new KindError(`merge: no shards found in ${inputPaths.join(', ') || '(no inputs)'}${pattern ? ` matching "${pattern}"` : ''}`);
    const planned = planMerge(shards, mode as MergeMode);
    if (!planned.ok) throw new KindError(`merge: ${planned.problems.join('\nmerge: ')}`);
    const plan = planned.plan;
    const asked = p.lmdb_format;
    if (asked !== undefined && asked !== 0 && asked !== 1 && asked !== 2) throw new KindError(`merge: \`lmdb_format\` must be 1, 2 or 0 (the shards' format), not ${JSON.stringify(asked)}`);
    const format = asked === 1 || asked === 2 ? asked : defaultOutputFormat(plan);
    ctx.log(`merging ${shards.length} shards, ${plan.totalRows} rows (${mode}) into latents_shape "${plan.outShapes.latents ?? ''}", LMDB data format ${format}`);
    const t0 = performance.now();
    try {
      const r = await mergeShards({
        plan,
        outPath: onlyOutput(ctx),
        workDir: ctx.workDir,
        format,
        ...(typeof p.batch_rows === 'number' ? { batchRows: p.batch_rows } : {}),
        ...(typeof p.batch_mb === 'number' ? { batchBytes: p.batch_mb * 1024 * 1024 } : {}),
        signal: ctx.signal,
        log: (line) => ctx.log(line),
        onProgress: (rows, total, bytes) => {
          const s = (performance.now() - t0) / 1000;
          ctx.progress(rows, total, { MB_per_s: s > 0 ? Math.round(bytes / 1e6 / s) : 0 });
        },
      });
      const s = (performance.now() - t0) / 1000;
      ctx.log(`merged ${r.rows} rows${r.resumedAtRow > 0 ? ` (resumed at row ${r.resumedAtRow})` : ''}: ${(r.bytesWritten / 1e6).toFixed(1)} MB in ${s.toFixed(1)} s; the ${shards.length} input shards are untouched`);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      if (err instanceof MergeDataError) throw new KindError(`merge: ${err.message}`);
      throw err;
    }
  },
};
