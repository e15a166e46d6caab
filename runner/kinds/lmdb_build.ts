// `lmdb_build`: trajectory shards (ode_pairs outputs) → one ODE-pair LMDB in upstream's layout,
// with create_lmdb_iterative's semantics (spec §1.7; see domain/ode_lmdb.ts for the one fix).
//
//   stage ode_db: lmdb_build { parts = ode[*].trajectories }   # dedupe_prompts = true
//
// `lmdb_format = 1` writes LMDB 0.9's format, for upstream's Python tools (default 2: lmdb-js).

import { buildOdeLmdb, OdeLmdbError } from '../domain/ode_lmdb.js';
import { boolParam, lmdbFormatParam } from '../domain/params.js';
import { SafetensorsError } from '../domain/safetensors.js';
import { LmdbLayoutError } from '../domain/lmdb_layout.js';
import { KindError, type KindContext, type StageKind } from './types.js';

export const kind: StageKind = {
  name: 'lmdb_build',
  async run(ctx: KindContext): Promise<void> {
    const parts = ctx.inputs.parts ?? [];
    const out = ctx.outputs.dataset;
    if (out === undefined) throw new KindError('lmdb_build: the runner gave no path for output `dataset`');
    if (parts.length === 0) throw new KindError('lmdb_build: `parts` names no trajectory shards');
    const dedupePrompts = boolParam('lmdb_build', ctx.task.params, 'dedupe_prompts', true);
    const format = lmdbFormatParam('lmdb_build', ctx.task.params);
    try {
      const summary = await buildOdeLmdb(parts, out, {
        dedupePrompts,
        format,
        onProgress: (read, total) => {
          ctx.signal.throwIfAborted();
          ctx.progress(read, total);
        },
      });
      ctx.log(
        `lmdb_build: ${summary.rows} rows of [${summary.rowShape.join(', ')}] from ${parts.length} shard(s)` +
          (dedupePrompts ? `; ${summary.dropped} row(s) dropped for a prompt already seen` : ''),
      );
    } catch (error) {
      if (error instanceof OdeLmdbError || error instanceof SafetensorsError || error instanceof LmdbLayoutError) throw new KindError(`lmdb_build: ${error.message}`);
      throw error;
    }
  },
};
