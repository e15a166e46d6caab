// Times each sampling mode (few-step, many-step CFG, causal ODE with the blockwise KV cache and
// the full recompute) on the CPU and on the GPU at the tiny preset's shapes, one batch of 8 rows,
// with a deadline per call, so a slow or stuck path shows which mode it is.
//   node dist/test/bench/cuda-sample-probe.js [deadline_s=60]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineInfo, initModelWeights, modelParamTable, sample, weightTensors, writeCheckedSafetensors, type SampleOptions } from '../../native/index.js';

const deadline = Number(process.argv[2] ?? 60) * 1000;
const config = { preset: 'tiny' as const, framesPerBlock: 1 };
const table = modelParamTable(config);
const c = table.config;
const dir = mkdtempSync(join(tmpdir(), 'cfpipe-probe-'));
const weights = join(dir, 'w.safetensors');
writeCheckedSafetensors(weights, weightTensors(table, initModelWeights(config, 1)), {}, 'weights', 0);
const rows = 8;
const L = c.textLen * c.textDim;
const clip = c.frames * c.channels * c.height * c.width;
const text = Float32Array.from({ length: rows * L }, (_, i) => Math.sin(i));
const textUncond = Float32Array.from({ length: L }, (_, i) => Math.cos(i));
const clean = Float32Array.from({ length: rows * clip }, (_, i) => 0.5 * Math.sin(0.37 * i));
const modes: [string, Partial<SampleOptions>][] = [
  ['few_step', { mode: 'few_step', steps: [1000, 750, 500, 250] }],
  ['many_step', { mode: 'many_step', numSteps: 20, guidance: 3, textUncond }],
  ['ode blockwise_kv', { mode: 'ode', numSteps: 20, guidance: 6, textUncond, clean, snapshots: [0, 5, 10, 15], odeMode: 'blockwise_kv' }],
  ['ode full', { mode: 'ode', numSteps: 20, guidance: 6, textUncond, clean, snapshots: [0, 5, 10, 15], odeMode: 'full' }],
];
console.log(`engine: ${JSON.stringify(engineInfo())}`);
for (const [name, extra] of modes) {
  for (const device of ['cpu', 'cuda'] as const) {
    const t0 = performance.now();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), deadline);
    try {
      const r = await sample({ config, weights, count: rows, batch: rows, text, ...extra, device } as SampleOptions, { signal: controller.signal });
      console.log(`${name.padEnd(18)} ${device.padEnd(5)} ${((performance.now() - t0) / 1000).toFixed(3)} s  ${r.cancelled ? 'CANCELLED at the deadline' : `calls/video ${r.calls?.[0]}`} backend ${r.backend}`);
    } catch (e) {
      console.log(`${name.padEnd(18)} ${device.padEnd(5)} FAILED: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}
