import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatValue, keyDiff } from '../../runner/cli/commands/explain.js';
import { renderTorchrun, readTorchrunLauncher } from '../../runner/kinds/launch/torchrun.js';
import { renderSbatchScript } from '../../runner/kinds/launch/slurm.js';
import { canonicalJson } from '../../runner/store/canonical.js';

test('canonical JSON ignores key order', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, 2], c: null } }), canonicalJson({ a: { c: null, d: [1, 2] }, b: 1 }));
});

test('explain diffs keys at the leaf level, numbers as configs write them', () => {
  const before = { config: { lr: 2e-6, batch: 8 }, upstream: { data: 'a'.repeat(64) }, provided: { raw: ['sha256:1'] } };
  const now = { config: { lr: 4e-6, batch: 8 }, upstream: { data: 'b'.repeat(64) }, provided: { raw: ['sha256:2'] } };
  assert.deepEqual(keyDiff(before, now), [
    'config.lr: 2e-06 → 4e-06',
    'input raw changed (file contents differ)',
    `input data changed (upstream key ${'a'.repeat(12)} → ${'b'.repeat(12)})`,
  ]);
  assert.equal(formatValue(1200), '1200');
});

test('torchrun renders the upstream multi-node command line', () => {
  const launcher = readTorchrunLauncher({ nnodes: 8, nproc_per_node: 8, rdzv_endpoint: 'head:29500', rdzv_id: 5235 });
  assert.deepEqual(renderTorchrun(launcher, ['train.py', '--config_path', 'configs/x.yaml']), [
    'torchrun', '--nnodes=8', '--nproc_per_node=8', '--rdzv_id=5235', '--rdzv_backend=c10d', '--rdzv_endpoint=head:29500', 'train.py', '--config_path', 'configs/x.yaml',
  ]);
  assert.deepEqual(renderTorchrun(readTorchrunLauncher({ nproc_per_node: 2 }), ['x.py']), ['torchrun', '--nnodes=1', '--nproc_per_node=2', '--standalone', 'x.py']);
  assert.throws(() => readTorchrunLauncher({ nnodes: 2 }), /rdzv_endpoint/);
});

test('an sbatch script carries the launcher settings, environment and command', () => {
  const script = renderSbatchScript({ partition: 'gpu', time: '01:00:00', gpus: 8 }, ['python', 'train.py', 'a b'], {
    cwd: '/w',
    env: { CFPIPE_OUT_MODEL: '/t/model' },
    jobName: 'cfpipe-train',
    outputPath: '/w/slurm-%j.out',
  });
  assert.match(script, /#SBATCH --partition=gpu\n/);
  assert.match(script, /#SBATCH --gpus=8\n/);
  assert.match(script, /export CFPIPE_OUT_MODEL=\/t\/model\n/);
  assert.match(script, /exec python train.py 'a b'\n/);
});
