// Backend selection: engineInfo() says which backend the loaded addon uses; train() and sample()
// take a `device` ('cpu' | 'cuda' | 'cuda:N' | 'auto') and report the backend that ran them. On a
// machine without a usable GPU, 'auto' runs on the CPU and 'cuda' is refused with the reason; on a
// GPU machine with the CUDA addon, 'cuda' runs there and gives the CPU's losses within tolerance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cudaGraphsNote, engineInfo, initModelWeights, sample, train, weightTensors, modelParamTable, writeCheckedSafetensors, type ModelConfigInput, type TrainOptions } from '../../native/index.js';

const config: ModelConfigInput = { channels: 4, height: 4, width: 4, dim: 16, heads: 2, ffnDim: 32, layers: 1, freqDim: 8, textDim: 6, textLen: 3, frames: 4, framesPerBlock: 2 };
const clip = 4 * 4 * 4 * 4;
const L = 3 * 6;

function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    a[i] = x / 2147483648 - 0.5;
  }
  return a;
}

const base: TrainOptions = {
  trainer: 'diffusion',
  config,
  steps: 4,
  batch: 2,
  seed: 3,
  lr: 1e-3,
  data: { count: 3, samples: filled(3 * clip, 1), text: filled(3 * L, 2) },
};

test('engineInfo names the backend, the usable backends and why CUDA is unavailable', () => {
  const info = engineInfo();
  assert.ok(info.backends.includes('cpu'));
  assert.equal(info.backend, info.cudaDevices > 0 ? 'cuda' : 'cpu');
  assert.equal(info.backends[0], info.backend);
  assert.equal(info.cuda, info.addonPath.endsWith('cfpipe_cuda.node'));
  if (info.cudaDevices === 0) assert.match(info.cudaUnavailable ?? '', /\S/);
  else assert.match(info.cudaDevice ?? '', /\S/);
});

test("device 'cpu' and 'auto' train; the result names the backend that ran", async () => {
  const info = engineInfo();
  const cpu = await train({ ...base, device: 'cpu' });
  assert.equal(cpu.backend, 'cpu');
  assert.equal(cpu.step, 4);
  const auto = await train({ ...base, device: 'auto' });
  assert.equal(auto.backend, info.cudaDevices > 0 ? 'cuda:0' : 'cpu');
  if (auto.backend === 'cpu') assert.equal(auto.loss, cpu.loss, 'the same device gives the same loss bit for bit');
  else {
    // The GPU computes in bf16 unless CFPIPE_CUDA_PRECISION=fp32; native/README.md's tolerance rule
    // for losses: relative 1e-3 in fp32, 2e-2 in bf16.
    const tol = process.env.CFPIPE_CUDA_PRECISION === 'fp32' ? 1e-3 : 2e-2;
    assert.ok(Math.abs(auto.loss - cpu.loss) <= tol * Math.max(Math.abs(cpu.loss), 1e-3), `GPU loss ${auto.loss} vs CPU ${cpu.loss}`);
  }
  const dflt = await train(base);
  assert.equal(dflt.backend, 'cpu', 'no device option means the CPU');
  assert.equal(cpu.cudaGraphs, undefined, 'the CPU records no CUDA graphs');
  assert.equal(cudaGraphsNote(cpu.cudaGraphs), '');
  // 4 steps on the GPU: each stretch runs eagerly twice, is recorded on the third call, replayed on the fourth.
  if (auto.backend !== 'cpu') assert.ok((auto.cudaGraphs?.replayed ?? 0) > 0, `no CUDA graph replayed: ${JSON.stringify(auto.cudaGraphs)}`);
});

test('a job log line names its CUDA graphs when it used any', () => {
  assert.equal(cudaGraphsNote({ recorded: 4, replayed: 31996 }), '; CUDA graphs: 4 recorded, 31996 replays');
});

test('malformed devices and CUDA requests without a usable GPU are refused with a message naming the field', async () => {
  for (const bad of ['gpu', 'cuda:', 'cuda:x', 'cuda:-1', 'CUDA']) {
    await assert.rejects(train({ ...base, device: bad as 'cpu' }), (e: Error) => e instanceof TypeError && /options\.device must be "cpu", "cuda", "cuda:N" or "auto"/.test(e.message), bad);
  }
  const info = engineInfo();
  await assert.rejects(train({ ...base, device: `cuda:${info.cudaDevices}` }), (e: Error) => e instanceof TypeError && /train: options\.device is "cuda:\d+" but/.test(e.message));
  if (info.cudaDevices === 0) {
    await assert.rejects(train({ ...base, device: 'cuda' }), (e: Error) => e instanceof TypeError && e.message.includes(info.cudaUnavailable ?? '\0'));
  }
});

test('sample takes the device too and reports its backend', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-native-device-'));
  try {
    const sampleConfig = { ...config, framesPerBlock: 1 };
    const table = modelParamTable(sampleConfig);
    const weights = join(dir, 'w.safetensors');
    writeCheckedSafetensors(weights, weightTensors(table, initModelWeights(sampleConfig, 5)), {}, 'weights', 0);
    const r = await sample({ mode: 'few_step', config: sampleConfig, weights, count: 1, text: filled(L, 4), steps: [1000, 750, 500, 250], device: 'auto' });
    assert.equal(r.backend, engineInfo().cudaDevices > 0 ? 'cuda:0' : 'cpu');
    assert.equal(r.output?.length, clip);
    await assert.rejects(sample({ mode: 'few_step', config: sampleConfig, weights, count: 1, text: filled(L, 4), device: 'tpu' as 'cpu' }), /sample: options\.device must be/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
