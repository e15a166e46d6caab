// `ode_pairs`: causal ODE trajectories of the AR teacher (spec §1.6), one shard per task.
//
//   stage ode[shard in 0..4]: ode_pairs { teacher = ar_diffusion.model  data = clean.latents
//                                         shard = shard  shards = 4 }
//
// Shard r of W handles rows r, r+W, r+2W, ... of the clean dataset (upstream's rank sharding).
// `unique_prompts = true` first keeps only the first row of each prompt: lmdb_build drops rows of
// a prompt already seen, so on a dataset of many clips per prompt the rest would be integrated
// only to be thrown away.
// Each row: noise → `steps` Euler steps (shift from model_kwargs.timestep_shift) of the teacher
// under CFG (standard form, `guidance_scale`) conditioned on the row's clean latent through
// teacher forcing (`mode` full) or the equivalent block-by-block KV cache (`mode` blockwise_kv),
// keeping the latent before steps j·steps/n (n = the few-step list's length, 4: steps 0/12/24/36
// of 48), the endpoint and the GT — slots [n + 2, F, C, H, W], the layout lmdb_build expects.
//
// Resumable: rows are produced in chunks of CHUNK_ROWS; each finished chunk is a checked
// safetensors file in the work dir, so a killed task redoes at most one chunk. A chunk's noise
// comes from Philox(seed, stream = its first row's index), so the shard's bytes do not depend on
// where it was interrupted.

import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readCheckedSafetensors, sample, verifyCheckedSafetensors, writeCheckedSafetensors, type DeviceSpec, type SampleOptions } from '../../native/index.js';
import { LatentLmdbReader, LmdbLayoutError } from '../domain/lmdb_layout.js';
import { boolParam, intParam, stringParam } from '../domain/params.js';
import { TrajectoryShardWriter } from '../domain/trajectories.js';
import { checkClipShape, denoisingSteps, generatorShift, modelConfigFromValues, negativePrompt, numberKey, textEncoderFor, threadsFor, type ConfigValues } from './native_config.js';
import { KindError, type KindContext, type StageKind } from './types.js';

const KIND = 'ode_pairs';
/** Rows per chunk (and per native batch). */
export const CHUNK_ROWS = 8;

const chunkPath = (workDir: string, first: number) => join(workDir, `chunk-${String(first).padStart(8, '0')}.safetensors`);

/** Snapshot steps: n evenly spaced steps from 0 (upstream: [0, 12, 24, 36] of 48). */
export function snapshotSteps(steps: number, n: number): number[] {
  return Array.from({ length: n }, (_, j) => Math.floor((j * steps) / n));
}

const allRows = (count: number): number[] => Array.from({ length: count }, (_, i) => i);

/** Rows 0..count-1 whose prompt no earlier row has, in order. */
export function firstRowOfEachPrompt(count: number, promptOf: (row: number) => string): number[] {
  const seen = new Set<string>();
  const rows: number[] = [];
  for (let i = 0; i < count; i++) {
    const prompt = promptOf(i);
    if (seen.has(prompt)) continue;
    seen.add(prompt);
    rows.push(i);
  }
  return rows;
}

/** Shard r of W: the candidates at positions r, r+W, r+2W, ... */
export function shardRows(candidates: readonly number[], shard: number, shards: number): number[] {
  return candidates.filter((_, j) => j % shards === shard);
}

export const kind: StageKind = {
  name: KIND,
  async run(ctx: KindContext): Promise<void> {
    const { task } = ctx;
    const values: ConfigValues = task.config?.values ?? {};
    const teacher = ctx.inputs.teacher?.[0];
    const dataPath = ctx.inputs.data?.[0];
    const out = ctx.outputs.trajectories;
    if (teacher === undefined || dataPath === undefined) throw new KindError(`${KIND}: needs inputs \`teacher\` and \`data\``);
    if (out === undefined) throw new KindError(`${KIND}: the runner gave no path for output \`trajectories\``);
    const shard = intParam(KIND, task.params, 'shard', 0);
    const shards = intParam(KIND, task.params, 'shards', 1);
    if (shard >= shards) throw new KindError(`${KIND}: shard ${shard} is outside 0..${shards - 1}`);
    const steps = intParam(KIND, task.params, 'steps', 1);
    const guidance = task.params.guidance_scale ?? 6.0;
    if (typeof guidance !== 'number') throw new KindError(`${KIND}: \`guidance_scale\` must be a number`);
    const mode = stringParam(KIND, task.params, 'mode') ?? 'blockwise_kv';
    if (mode !== 'full' && mode !== 'blockwise_kv') throw new KindError(`${KIND}: \`mode\` must be "full" or "blockwise_kv", got "${mode}"`);
    const seed = intParam(KIND, task.params, 'seed', 0);
    const uniquePrompts = boolParam(KIND, task.params, 'unique_prompts', false);
    const model = modelConfigFromValues(KIND, values);
    const nSnapshots = denoisingSteps(KIND, values)?.length ?? 4;
    if (steps < nSnapshots) throw new KindError(`${KIND}: ${steps} ODE steps cannot hold ${nSnapshots} snapshots`);
    const snapshots = snapshotSteps(steps, nSnapshots);
    const shift = generatorShift(KIND, values);

    // The shard's rows.
    let clean: Float32Array;
    let prompts: string[];
    let rows: number[];
    let clipShape: [number, number, number, number];
    try {
      const reader = new LatentLmdbReader(dataPath);
      try {
        const [, f, c, h, w] = reader.trajectoryShape;
        clipShape = [f, c, h, w];
        checkClipShape(KIND, dataPath, clipShape, model);
        rows = shardRows(uniquePrompts ? firstRowOfEachPrompt(reader.count, (r) => reader.prompt(r)) : allRows(reader.count), shard, shards);
        const per = f * c * h * w;
        clean = new Float32Array(rows.length * per);
        prompts = rows.map((r, j) => {
          clean.set(reader.clean(r), j * per);
          return reader.prompt(r);
        });
      } finally {
        await reader.close();
      }
    } catch (error) {
      if (error instanceof LmdbLayoutError) throw new KindError(`${KIND}: ${error.message}`);
      throw error;
    }
    const clip = clipShape.reduce((a, b) => a * b, 1);
    const slots = nSnapshots + 2;
    const encoder = textEncoderFor(KIND, values);
    const text = encoder.encodeBatch(prompts);
    const textUncond = encoder.encode(negativePrompt(KIND, values));
    const L = encoder.textLen * encoder.textDim;
    ctx.log(`${KIND}: shard ${shard}/${shards}: ${rows.length} rows, ${steps} Euler steps (${mode}), CFG ${guidance}, snapshots at steps [${snapshots.join(', ')}]`);

    mkdirSync(ctx.workDir, { recursive: true });
    const threads = threadsFor(task);
    let done = 0;
    ctx.progress(0, rows.length);
    for (let first = 0; first < rows.length; first += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, rows.length - first);
      const path = chunkPath(ctx.workDir, first);
      if (existsSync(path) && verifyCheckedSafetensors(path).ok) {
        done += n;
        ctx.progress(done, rows.length);
        continue;
      }
      ctx.signal.throwIfAborted();
      const options: SampleOptions = {
        mode: 'ode',
        config: model,
        weights: teacher,
        count: n,
        batch: CHUNK_ROWS,
        seed,
        rowIds: rows.slice(first, first + n),
        threads,
        device: ctx.device as DeviceSpec,
        text: text.subarray(first * L, (first + n) * L),
        textUncond,
        clean: clean.subarray(first * clip, (first + n) * clip),
        numSteps: steps,
        shift,
        guidance,
        snapshots,
        odeMode: mode,
        timestepShift: shift,
      };
      const r = await sample(options, { signal: ctx.signal });
      if (r.cancelled || r.output === undefined) {
        ctx.signal.throwIfAborted();
        throw new KindError(`${KIND}: generation stopped without a cancel request`);
      }
      writeCheckedSafetensors(path, [{ name: 'trajectories', shape: [n, slots, ...clipShape], data: r.output }], { rows: JSON.stringify(rows.slice(first, first + n)) }, 'ode-chunk', first);
      done += n;
      ctx.checkpoint(done, path);
      ctx.progress(done, rows.length, { calls_per_row: r.calls?.[0] ?? 0 });
    }

    // The shard file, from the chunks in order.
    mkdirSync(dirname(out), { recursive: true });
    const t = (s: number) => Math.round(((1000 * shift * (1 - s / steps)) / (1 + (shift - 1) * (1 - s / steps))) * 1000) / 1000;
    const writer = new TrajectoryShardWriter(out, {
      rowShape: [slots, ...clipShape],
      prompts,
      rows,
      metadata: {
        teacher_steps: String(steps),
        guidance_scale: String(guidance),
        mode,
        seed: String(seed),
        shard: `${shard}/${shards}`,
        snapshot_steps: JSON.stringify(snapshots),
        snapshot_timesteps: JSON.stringify(snapshots.map(t)),
      },
    });
    try {
      for (let first = 0; first < rows.length; first += CHUNK_ROWS) {
        const content = readCheckedSafetensors(chunkPath(ctx.workDir, first));
        const tensor = content.tensors.find((x) => x.name === 'trajectories');
        if (tensor === undefined || !(tensor.data instanceof Float32Array)) throw new KindError(`${KIND}: chunk ${first} in ${ctx.workDir} has no float32 trajectories`);
        const per = slots * clip;
        for (let j = 0; j * per < tensor.data.length; j++) writer.append(tensor.data.subarray(j * per, (j + 1) * per));
      }
      writer.commit();
    } catch (error) {
      writer.abort();
      throw error;
    }
  },
};
