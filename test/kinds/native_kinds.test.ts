// The native stage kinds (train, ode_pairs, infer) run by the real worker process on the shipped
// configs (merged over default_config.yaml as the compiler does, with a smaller model): the whole
// Causal Forcing chain on a few clips; kill -9 during training and during ODE generation, then a
// rerun, ends byte-identical to an uninterrupted run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { parse } from 'yaml';
import { makeTask, runWorker, type WorkerRun } from '../fetch/worker_harness.js';
import { fromRoot, repoRoot } from '../util/paths.js';
import { deepMerge } from '../../runner/config/index.js';
import type { ArtifactType, Task, Value } from '../../runner/graph.js';
import type { WorkerJob, WorkerMessage } from '../../runner/exec/protocol.js';
import { LatentLmdbReader } from '../../runner/domain/lmdb_layout.js';
import { TrajectoryShardReader } from '../../runner/domain/trajectories.js';
import { readVideoIndex, readVideoSet } from '../../runner/domain/video_set.js';
import { readSafetensors } from '../../native/index.js';
import { warpedSteps } from '../../runner/kinds/native_config.js';
import { firstRowOfEachPrompt, shardRows } from '../../runner/kinds/ode_pairs.js';

const tmp = mkdtempSync(join(tmpdir(), 'cfpipe-native-kinds-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

type Values = { readonly [k: string]: Value };
const yaml = (name: string): Values => parse(readFileSync(join(repoRoot, 'configs', name), 'utf8')) as Values;
// A small DiT on the default geometry, so each step takes milliseconds.
const SMALL = { model_kwargs: { dim: 16, num_heads: 2, num_layers: 1, ffn_dim: 32, freq_dim: 8 }, batch_size: 2 };
const config = (name: string, overrides: Values = {}) => ({
  path: `configs/${name}`,
  values: deepMerge(deepMerge(deepMerge(yaml('default_config.yaml'), yaml(name)), SMALL), overrides),
});

function task(kind: string, id: string, params: Values, cfg: Task['config'], outputs: { name: string; type: ArtifactType }[]): Task {
  const t = makeTask(kind, params, outputs);
  return { ...t, id, stage: id, ...(cfg ? { config: cfg } : {}) };
}
const job = (t: Task, inputs: Record<string, string[]>, outputs: Record<string, string>, work = t.id): WorkerJob => ({
  task: t,
  inputs,
  outputs,
  workDir: join(tmp, 'work', work),
  root: repoRoot,
  device: 'cpu',
});
const failure = (r: WorkerRun) => {
  const m = r.messages.find((x) => x.t === 'failed');
  return m?.t === 'failed' ? m.message : undefined;
};
async function ok(j: WorkerJob): Promise<WorkerRun> {
  const r = await runWorker(j);
  assert.equal(r.code, 0, `${j.task.id}: ${failure(r) ?? ''}\n${r.stderr}`);
  return r;
}
const out = (name: string) => join(tmp, 'out', name);

/** Starts the worker, SIGKILLs it once `when` holds for a message, resolves when it is dead. */
function killWhen(j: WorkerJob, when: (m: WorkerMessage) => boolean): Promise<{ killed: boolean }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fromRoot('dist', 'runner', 'exec', 'worker.js')], { cwd: repoRoot, stdio: ['pipe', 'ignore', 'ignore', 'pipe'] });
    let killed = false;
    createInterface({ input: p.stdio[3] as Readable }).on('line', (l) => {
      if (!killed && when(JSON.parse(l) as WorkerMessage)) {
        killed = true;
        p.kill('SIGKILL');
      }
    });
    p.on('error', reject);
    p.on('close', () => resolve({ killed }));
    p.stdin?.end(JSON.stringify(j));
  });
}

// The domain's geometry follows the config's model_kwargs (latents [9, 12, 8, 8], 16x16 RGB clips).
const synth = task('synth', 'clean', { clips: 6, heldout_clips: 2, seed: 5 }, config('bidirectional_base.yaml'), [
  { name: 'latents', type: 'dataset' },
  { name: 'heldout', type: 'dataset' },
  { name: 'prompts', type: 'file' },
]);
const data = { latents: out('clean/latents'), heldout: out('clean/heldout'), prompts: out('clean/prompts.txt') };
const model = (name: string) => ({ model: out(`${name}.safetensors`) });
const trainTask = (id: string, cfg: string, params: Values, overrides: Values = {}) =>
  task('train', id, { checkpoint_every: 1, ...params }, config(cfg, overrides), [{ name: 'model', type: 'checkpoint' }]);

test('ode_pairs rows: first row of each prompt, then every W-th candidate from position r', () => {
  const prompts = ['a', 'b', 'a', 'c', 'b', 'd', 'a'];
  assert.deepEqual(firstRowOfEachPrompt(prompts.length, (r) => prompts[r]!), [0, 1, 3, 5]);
  assert.deepEqual(shardRows([0, 1, 3, 5], 0, 2), [0, 3]);
  assert.deepEqual(shardRows([0, 1, 3, 5], 1, 2), [1, 5]);
  assert.deepEqual(shardRows([0, 1, 2, 3, 4], 2, 3), [2]);
});

test('warped step lists match the spec (§3.3)', () => {
  const w = warpedSteps('t', [1000, 750, 500, 250], true, 5);
  assert.deepEqual(w.map((x) => Math.round(x * 100) / 100), [1000, 937.5, 833.33, 625]);
  assert.deepEqual(warpedSteps('t', [1000, 500, 0], true, 5).map((x) => Math.round(x * 100) / 100), [1000, 833.33]);
  assert.deepEqual(warpedSteps('t', [1000, 500], false, 5), [1000, 500]);
});

test('the Causal Forcing chain runs on the native kinds: base, AR teacher, ODE pairs, ODE init, CD, DMD, inference', async (t) => {
  await ok(job(synth, {}, data));

  await t.test('train: bidirectional base and teacher-forcing AR model, with checkpoints and progress', async () => {
    const r = await ok(job(trainTask('base', 'bidirectional_base.yaml', { steps: 3 }), { data: [data.latents] }, model('base')));
    const progress = r.messages.filter((m) => m.t === 'progress');
    assert.ok(progress.some((m) => m.t === 'progress' && m.step === 3 && m.total === 3 && Number.isFinite(m.metrics?.loss)));
    assert.ok(r.messages.some((m) => m.t === 'checkpoint' && m.step === 2));
    const file = readSafetensors(model('base').model);
    assert.equal(file.metadata.trainer, 'diffusion');
    assert.ok(file.tensors.some((x) => x.name === 'generator.model.blocks.0.self_attn.q.weight'));
    assert.ok(!file.tensors.some((x) => x.name.startsWith('generator_ema.')));
    await ok(job(trainTask('ar', 'ar_diffusion_tf_framewise.yaml', { steps: 2 }), { data: [data.latents], init: [model('base').model] }, model('ar')));
  });

  await t.test('ode_pairs: shard r of W holds rows r, r+W, ...; blockwise-KV and full teacher forcing agree', async () => {
    for (const shard of [0, 1]) {
      const p = task('ode_pairs', `ode${shard}`, { shard, shards: 2, steps: 4 }, config('ar_diffusion_tf_framewise.yaml'), [{ name: 'trajectories', type: 'trajectories' }]);
      await ok(job(p, { teacher: [model('ar').model], data: [data.latents] }, { trajectories: out(`ode${shard}.safetensors`) }));
    }
    const full = task('ode_pairs', 'odefull', { shard: 0, shards: 2, steps: 4, mode: 'full' }, config('ar_diffusion_tf_framewise.yaml'), [{ name: 'trajectories', type: 'trajectories' }]);
    await ok(job(full, { teacher: [model('ar').model], data: [data.latents] }, { trajectories: out('odefull.safetensors') }));
    const a = new TrajectoryShardReader(out('ode0.safetensors'));
    const b = new TrajectoryShardReader(out('ode1.safetensors'));
    const f = new TrajectoryShardReader(out('odefull.safetensors'));
    assert.deepEqual(a.rows, [0, 2, 4]);
    assert.deepEqual(b.rows, [1, 3, 5]);
    assert.deepEqual(a.rowShape, [6, 9, 12, 8, 8]);
    assert.equal(a.metadata.snapshot_steps, '[0,1,2,3]');
    const clean = new LatentLmdbReader(data.latents);
    assert.equal(a.prompts[1], clean.prompt(2));
    const per = 9 * 12 * 8 * 8;
    const row = a.row(1);
    const gt = clean.clean(2);
    // Slot 5 is the GT latent (float16 both ways), slot 0 the noise: not the GT.
    assert.ok(gt.every((v, i) => Math.abs(v - row[5 * per + i]!) < 1e-3));
    assert.ok(row.subarray(0, per).some((v, i) => Math.abs(v - gt[i]!) > 0.1));
    let worst = 0;
    const rf = f.row(1);
    for (let i = 0; i < row.length; i++) worst = Math.max(worst, Math.abs(row[i]! - rf[i]!));
    assert.ok(worst < 2e-2, `blockwise-KV vs full: ${worst}`);
    await clean.close();
    for (const r of [a, b, f]) r.close();
    const db = task('lmdb_build', 'ode_db', {}, undefined, [{ name: 'dataset', type: 'dataset' }]);
    await ok(job(db, { parts: [out('ode0.safetensors'), out('ode1.safetensors')] }, { dataset: out('ode_db') }));
  });

  await t.test('ode_pairs with unique_prompts: only the first row of each prompt, the same trajectories as without', async () => {
    // One colour and shape: 8 prompts, so 6 clips repeat some.
    const dupSynth = task('synth', 'clean_dup', { clips: 6, heldout_clips: 1, seed: 3, colors: ['red'], shapes: ['square'] }, config('bidirectional_base.yaml'), synth.outputs.map((o) => ({ name: o.name, type: o.type })));
    const dup = { latents: out('clean_dup/latents'), heldout: out('clean_dup/heldout'), prompts: out('clean_dup/prompts.txt') };
    await ok(job(dupSynth, {}, dup));
    const clean = new LatentLmdbReader(dup.latents);
    const expected = firstRowOfEachPrompt(clean.count, (r) => clean.prompt(r));
    assert.ok(expected.length < clean.count, `seed 3 gives no repeated prompt in ${clean.count} clips`);
    const run = async (id: string, params: Values) => {
      const p = task('ode_pairs', id, { shards: 1, steps: 4, ...params }, config('ar_diffusion_tf_framewise.yaml'), [{ name: 'trajectories', type: 'trajectories' }]);
      await ok(job(p, { teacher: [model('ar').model], data: [dup.latents] }, { trajectories: out(`${id}.safetensors`) }));
      return new TrajectoryShardReader(out(`${id}.safetensors`));
    };
    const unique = await run('ode_unique', { unique_prompts: true });
    const every = await run('ode_every', {});
    assert.deepEqual(unique.rows, expected);
    assert.equal(new Set(unique.prompts).size, unique.prompts.length);
    assert.deepEqual(every.rows, [0, 1, 2, 3, 4, 5]);
    // A row's noise is drawn from its own row index, so dropping rows changes none of the others.
    unique.rows.forEach((r, j) => assert.deepEqual(unique.row(j), every.row(r)));
  });

  await t.test('train: ODE regression, consistency distillation and DMD (EMA, critic)', async () => {
    await ok(job(trainTask('ode_init', 'causal_ode_framewise.yaml', { steps: 2 }), { data: [out('ode_db')], init: [model('ar').model] }, model('ode_init')));
    await ok(job(trainTask('cd', 'causal_cd_framewise.yaml', { steps: 2 }, { discrete_cd_N: 4 }), { data: [data.latents], init: [model('ar').model] }, model('cd')));
    const cd = readSafetensors(model('cd').model);
    assert.ok(cd.tensors.some((x) => x.name.startsWith('generator_ema.')), 'CD keeps an EMA target from step 0');
    const dmd = trainTask('dmd', 'causal_forcing_dmd_framewise.yaml', { steps: 3, use_ema: true }, { dfake_gen_update_ratio: 2, ema_start_step: 1 });
    const r = await ok(job(dmd, { data: [data.prompts], init: [model('ode_init').model], real_score: [model('base').model], fake_score: [model('base').model] }, model('dmd')));
    assert.ok(r.messages.some((m) => m.t === 'progress' && m.step === 3 && Number.isFinite(m.metrics?.generator_loss)));
    const f = readSafetensors(model('dmd').model);
    assert.equal(f.metadata.ema, 'generator_ema');
    // use_ema with an EMA that never starts is refused with a message.
    const late = trainTask('dmd_late', 'causal_forcing_dmd_framewise.yaml', { steps: 2, use_ema: true });
    const rl = await runWorker(job(late, { data: [data.prompts], init: [model('ode_init').model], real_score: [model('base').model] }, model('dmd_late')));
    assert.match(failure(rl) ?? '', /use_ema = true, but the EMA starts at step \d+ \(ema_start_step\) and the stage runs 2 steps/);
    assert.ok(!rl.stderr.includes('    at '));
  });

  await t.test('infer: few-step student with the KV cache vs many-step CFG teacher', async () => {
    const few = task('infer', 'infer_dmd', { samples: 2, use_ema: true }, config('causal_forcing_dmd_framewise.yaml'), [{ name: 'videos', type: 'videos' }]);
    await ok(job(few, { model: [model('dmd').model], prompts: [data.prompts] }, { videos: out('videos_dmd') }));
    const many = task('infer', 'infer_ar', { samples: 2 }, config('ar_diffusion_tf_framewise.yaml'), [{ name: 'videos', type: 'videos' }]);
    await ok(job(many, { model: [model('ar').model], prompts: [data.prompts] }, { videos: out('videos_ar') }));
    const s = (d: string) => JSON.parse(readFileSync(join(out(d), 'samples.json'), 'utf8')) as { forward_calls_per_video: number; videos: { prompt: string; forward_calls: number }[] };
    // Frame-wise 4-step: 9 blocks x (4 + 1 cache pass); teacher: 9 x (50 steps x 2 CFG branches + 2 cache passes).
    assert.equal(s('videos_dmd').forward_calls_per_video, 45);
    assert.equal(s('videos_ar').forward_calls_per_video, 918);
    const set = readVideoSet(out('videos_dmd'));
    assert.equal(set.length, 2);
    assert.deepEqual([set[0]!.video.frames, set[0]!.video.height, set[0]!.video.width], [9, 16, 16]);
    assert.equal(set[0]!.prompt, readFileSync(data.prompts, 'utf8').split('\n')[0]);
    assert.ok(existsSync(join(out('videos_dmd'), readVideoIndex(out('videos_dmd'))[0]!.gif)));
  });
});

test('kill -9 during training and during ODE generation: the rerun ends byte-identical to an uninterrupted run', async () => {
  const root = join(tmp, 'kill');
  const d = { latents: join(root, 'latents'), heldout: join(root, 'heldout'), prompts: join(root, 'prompts.txt') };
  await ok({ ...job(synth, {}, d), workDir: join(root, 'w-synth') });
  const ar = trainTask('ar_kill', 'ar_diffusion_tf_framewise.yaml', { steps: 30 });
  const straight = join(root, 'straight.safetensors');
  const resumed = join(root, 'resumed.safetensors');
  await ok({ ...job(ar, { data: [d.latents] }, { model: straight }), workDir: join(root, 'w-straight') });
  const killed = await killWhen({ ...job(ar, { data: [d.latents] }, { model: resumed }), workDir: join(root, 'w-resumed') }, (m) => m.t === 'checkpoint' && m.step >= 5);
  assert.ok(killed.killed);
  const rerun = await ok({ ...job(ar, { data: [d.latents] }, { model: resumed }), workDir: join(root, 'w-resumed') });
  const from = Number(/resumed from (\d+)/.exec(rerun.stdout)?.[1]);
  assert.ok(from >= 5 && from < 30, `the rerun resumed mid-run (from ${from})`);
  assert.deepEqual(readFileSync(resumed), readFileSync(straight));

  // ODE pairs: 10 rows are 2 chunks of up to 8; the kill lands after the first chunk is saved.
  const big = { latents: join(root, 'big', 'latents'), heldout: join(root, 'big', 'heldout'), prompts: join(root, 'big', 'prompts.txt') };
  await ok({ ...job(task('synth', 'big', { clips: 10, heldout_clips: 1, seed: 2 }, synth.config, synth.outputs as { name: string; type: ArtifactType }[]), {}, big), workDir: join(root, 'w-big') });
  const pairs = task('ode_pairs', 'pairs_kill', { steps: 16 }, config('ar_diffusion_tf_framewise.yaml'), [{ name: 'trajectories', type: 'trajectories' }]);
  const inputs = { teacher: [straight], data: [big.latents] };
  const a = join(root, 'pairs-straight.safetensors');
  const b = join(root, 'pairs-resumed.safetensors');
  await ok({ ...job(pairs, inputs, { trajectories: a }), workDir: join(root, 'w-pairs-a') });
  const k = await killWhen({ ...job(pairs, inputs, { trajectories: b }), workDir: join(root, 'w-pairs-b') }, (m) => m.t === 'checkpoint' && m.step === 8);
  assert.ok(k.killed);
  assert.ok(existsSync(join(root, 'w-pairs-b', 'chunk-00000000.safetensors')));
  await ok({ ...job(pairs, inputs, { trajectories: b }), workDir: join(root, 'w-pairs-b') });
  assert.deepEqual(readFileSync(b), readFileSync(a));
});
