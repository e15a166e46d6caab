// The DiT through the binding: upstream parameter names in an engine-written checkpoint (read
// independently), deterministic forward, and clear errors for wrong lengths, NaN and bad configs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  initModelWeights,
  isNativeError,
  modelForward,
  modelParamTable,
  saveCheckpoint,
  weightTensors,
  GENERATOR_EMA_PREFIX,
  type ModelForwardOptions,
} from '../../native/index.js';
import { parseSafetensors, tensorValues } from './safetensors-reader.js';

const config = { preset: 'tiny' as const, layers: 2, framesPerBlock: 1 };

test('a model checkpoint carries generator./generator_ema. upstream names and shapes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-native-model-'));
  try {
    const table = modelParamTable(config);
    assert.equal(table.params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0), table.count);
    const w = initModelWeights(config, 5);
    assert.equal(w.length, table.count);
    assert.deepEqual(initModelWeights(config, 5), w, 'seeded init is deterministic');
    const paths = saveCheckpoint(dir, { step: 0, weights: [...weightTensors(table, w), ...weightTensors(table, w, GENERATOR_EMA_PREFIX)] });
    const f = parseSafetensors(paths.weightsPath);
    assert.equal(f.order.length, 2 * table.params.length);
    const q = table.params.find((p) => p.name === 'model.blocks.0.self_attn.q.weight');
    assert.ok(q, 'the table has upstream names');
    assert.deepEqual(f.tensors.get('generator.model.blocks.0.self_attn.q.weight')?.shape, q.shape);
    assert.deepEqual(f.tensors.get('generator_ema.model.blocks.0.self_attn.q.weight')?.dtype, 'F32');
    const n = q.shape.reduce((a, b) => a * b, 1);
    assert.deepEqual(tensorValues(f, 'generator.model.blocks.0.self_attn.q.weight'), Array.from(w.subarray(q.offset, q.offset + n)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('forward is deterministic and validates its inputs', async () => {
  const table = modelParamTable(config);
  const c = table.config;
  const frames = 2;
  const frame = c.channels * c.height * c.width;
  const base: ModelForwardOptions = {
    config,
    params: initModelWeights(config, 1),
    frames,
    x: Float32Array.from({ length: frames * frame }, (_, i) => Math.sin(i)),
    t: Float32Array.from([900, 300]),
    text: new Float32Array(c.textLen * c.textDim).fill(0.1),
  };
  const a = await modelForward(base);
  const b = await modelForward({ ...base, threads: 1 });
  assert.ok(a && b && a.length === frames * frame);
  assert.deepEqual(a, b, 'bitwise equal across thread counts');
  await assert.rejects(modelForward({ ...base, x: new Float32Array(10) }), /options\.x \[batch, frames, channels, height, width\] has 10 values, expected 6144/);
  const nan = Float32Array.from(base.x);
  nan[77] = NaN;
  await assert.rejects(modelForward({ ...base, x: nan }), (e) => isNativeError(e) && /x\[77\] is NaN; inputs must be finite/.test(e.message) && e.file === 'native/binding/model.cpp');
  await assert.rejects(modelForward({ ...base, t: Float32Array.from([900, 2000]) }), /t\[1\] = 2000, timesteps must be in \[0, 1000\]/);
  assert.throws(() => modelParamTable({ preset: 'tiny', heads: 3 }), (e) => isNativeError(e) && /dim 64 is not divisible by heads 3/.test(e.message) && e.file === 'native/core/model.cpp');
  await assert.rejects(modelForward({ ...base, mask: 'diagonal' as 'full' }), /mask must be "full" or "block_causal", got "diagonal"/);
});
