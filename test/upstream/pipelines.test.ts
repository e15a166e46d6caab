// The upstream pipelines through the real CLI: `check` and `plan` pass (for a node of 8 GPUs),
// `plan --format json` holds the full stage graph and the command lines of the upstream README
// (spec §1.1, §1.5–§1.11), params override the launch, and `--use` replaces a stage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cfpipeBin, repoRoot } from '../util/paths.js';

interface PlanTask {
  id: string;
  stage: string;
  kind: string;
  key: string;
  deps: string[];
  command_line?: string;
  params: Record<string, unknown>;
  inputs: { name: string; sources: { kind: string; task?: string; path?: string }[] }[];
  resources: { gpus: number };
}

function cfpipe(...args: string[]) {
  const r = spawnSync(process.execPath, [cfpipeBin, ...args], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function plan(file: string, ...extra: string[]): Map<string, PlanTask> {
  const r = cfpipe('plan', file, '--format', 'json', '--gpus', '8', ...extra);
  assert.equal(r.code, 0, r.stderr);
  const tasks = (JSON.parse(r.stdout) as { tasks: PlanTask[] }).tasks;
  return new Map(tasks.map((t) => [t.id, t]));
}

const files = ['pipelines/upstream/common.cf', 'pipelines/upstream/framewise.cf', 'pipelines/upstream/chunkwise.cf'];

test('check and fmt --check pass on the upstream pipelines; a GPU-less check names the 8-GPU stages', () => {
  const r = cfpipe('check', '--gpus', '8', ...files);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /warning/);
  assert.equal(cfpipe('fmt', '--check', ...files).code, 0);
  const small = cfpipe('check', '--gpus', '0', 'pipelines/upstream/framewise.cf');
  assert.equal(small.code, 2);
  assert.match(small.stderr, /stage `ar_diffusion` asks for 8 GPUs, but `--gpus` allows 0/);
});

for (const variant of ['framewise', 'chunkwise'] as const) {
  test(`${variant}: the stage graph and the README's command lines`, () => {
    const tasks = plan(`pipelines/upstream/${variant}.cf`);
    const deps = (id: string) => tasks.get(id)?.deps;
    const shards = (stage: string) => Array.from({ length: 15 }, (_, i) => `${stage}[${i}]`);
    assert.deepEqual(deps('clean_data'), shards('shards_chunkwise').sort());
    assert.deepEqual(deps('ode_data'), shards('ode_shards').sort());
    assert.deepEqual(deps('ar_diffusion'), ['clean_data', 'wan_1_3b']);
    assert.deepEqual(deps('ode_gen'), ['ar_diffusion', 'clean_data', 'wan_1_3b']);
    assert.deepEqual(deps('ode_lmdb'), ['ode_gen']);
    assert.deepEqual(deps('ode_init'), ['ar_diffusion', 'ode_data', 'wan_1_3b']);
    assert.deepEqual(deps('causal_cd'), ['ar_diffusion', 'clean_data', 'wan_1_3b']);
    assert.deepEqual(deps('dmd'), ['dmd_prompts', 'ode_init', 'wan_14b', 'wan_1_3b']);
    assert.deepEqual(deps('infer'), ['dmd', 'wan_1_3b']);
    assert.equal(tasks.size, 46);

    const line = (id: string) => tasks.get(id)?.command_line;
    const torchrun = 'torchrun --nnodes=8 --nproc_per_node=8 --rdzv_id=5235 --rdzv_backend=c10d --rdzv_endpoint=$MASTER_ADDR';
    assert.equal(line('ar_diffusion'), `${torchrun} train.py --config_path configs/ar_diffusion_tf_${variant}.yaml --logdir logs/ar_diffusion_tf_${variant} --disable-wandb`);
    assert.equal(line('ode_init'), `${torchrun} train.py --config_path configs/causal_ode_${variant}.yaml --logdir logs/causal_ode_${variant} --disable-wandb`);
    assert.equal(line('causal_cd'), `${torchrun} train.py --config_path configs/causal_cd_${variant}.yaml --logdir logs/causal_cd_${variant} --disable-wandb`);
    assert.equal(line('dmd'), `${torchrun} train.py --config_path configs/causal_forcing_dmd_${variant}.yaml --logdir logs/causal_forcing_dmd_${variant} --disable-wandb`);
    assert.equal(
      line('ode_gen'),
      `torchrun --nnodes=1 --nproc_per_node=8 --standalone get_causal_ode_data_${variant}.py --generator_ckpt checkpoints/${variant}/ar_diffusion.pt --rawdata_path dataset/clean_data --output_folder dataset/ODE6KCausal_${variant}_latents`,
    );
    assert.equal(line('ode_lmdb'), `python utils/create_lmdb_iterative.py --data_path dataset/ODE6KCausal_${variant}_latents --lmdb_path dataset/ODE6KCausal_${variant}`);
    assert.match(line('infer') ?? '', new RegExp(`^python inference\\.py --config_path configs/causal_forcing_dmd_${variant}\\.yaml --checkpoint_path checkpoints/${variant}/causal_forcing\\.pt --data_path \\S+ --output_folder videos/${variant} --use_ema$`));

    // Each training stops at the README's recommended step and hands its checkpoint on.
    const stop = (id: string) => tasks.get(id)?.params.stop_when as { checkpoint_dir: string; step: number };
    assert.deepEqual(stop('ar_diffusion'), { checkpoint_dir: `logs/ar_diffusion_tf_${variant}`, step: 2000 });
    assert.equal(stop('ode_init').step, 1000);
    assert.equal(stop('causal_cd').step, 3000);
    assert.equal(stop('dmd').step, 1000);
    assert.deepEqual(tasks.get('ode_init')?.params.config_set, { generator_ckpt: '{in.init}', data_path: '{in.data}' });
    assert.deepEqual(tasks.get('dmd')?.params.mounts, { 'wan_models/Wan2.1-T2V-1.3B': '{in.wan}', 'wan_models/Wan2.1-T2V-14B': '{in.wan_14b}' });
    assert.equal(tasks.get('dmd')?.resources.gpus, 8);

    // Downloads as the spec names them.
    const source = (id: string) => tasks.get(id)?.params.source;
    assert.equal(source('wan_1_3b'), 'hf://Wan-AI/Wan2.1-T2V-1.3B');
    assert.equal(source('wan_14b'), 'hf://Wan-AI/Wan2.1-T2V-14B');
    assert.equal(source('dmd_prompts'), 'hf://gdhe17/Self-Forcing/vidprom_filtered_extended.txt');
    assert.equal(source('shards_chunkwise[14]'), 'hf://zhuhz22/Causal-Forcing-data/ODE6KCausal_chunkwise_14');
    assert.equal(source('ode_shards[3]'), `hf://zhuhz22/Causal-Forcing-data/ODE6KCausal_${variant}_3`);
    assert.equal(source('published_ar_diffusion'), `hf://zhuhz22/Causal-Forcing/${variant}/ar_diffusion.pt`);
    assert.deepEqual(tasks.get('clean_data')?.params.mode, 'clean');
    assert.deepEqual(tasks.get('ode_data')?.params.mode, 'full');
  });
}

test('launch settings override with --set; --use replaces a training stage with a checkpoint', () => {
  const tasks = plan('pipelines/upstream/framewise.cf', '--set', 'nnodes=2', '--set', 'gpus_per_node=4', '--set', 'rdzv_endpoint=head0:29400', '--set', 'ar_steps=5000');
  assert.equal(
    tasks.get('ar_diffusion')?.command_line,
    'torchrun --nnodes=2 --nproc_per_node=4 --rdzv_id=5235 --rdzv_backend=c10d --rdzv_endpoint=head0:29400 train.py --config_path configs/ar_diffusion_tf_framewise.yaml --logdir logs/ar_diffusion_tf_framewise --disable-wandb',
  );
  assert.equal((tasks.get('ar_diffusion')?.params.stop_when as { step: number }).step, 5000);

  const used = plan('pipelines/upstream/framewise.cf', '--use', 'ar_diffusion.model=package.json');
  const init = used.get('ode_init')?.inputs.find((i) => i.name === 'init');
  assert.deepEqual(init?.sources, [{ kind: 'path', path: 'package.json' }]);
  assert.ok(!used.get('ode_init')?.deps.includes('ar_diffusion'));
});

test('the two variants share their downloads and the clean merge (same cache keys)', () => {
  const fw = plan('pipelines/upstream/framewise.cf');
  const cw = plan('pipelines/upstream/chunkwise.cf');
  for (const id of ['wan_1_3b', 'wan_14b', 'dmd_prompts', 'shards_chunkwise[0]', 'clean_data']) assert.equal(fw.get(id)?.key, cw.get(id)?.key, id);
  assert.equal(cw.get('ode_shards[5]')?.key, cw.get('shards_chunkwise[5]')?.key, 'chunk-wise ODE shards are the chunk-wise downloads');
  assert.notEqual(fw.get('ar_diffusion')?.key, cw.get('ar_diffusion')?.key);
});
