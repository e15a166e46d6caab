// Engine-written safetensors and checkpoints, read back by the independent reader in
// safetensors-reader.ts: names, dtypes, shapes, values, alignment, and the checksum recomputed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fitLinear,
  latestCheckpoint,
  loadCheckpoint,
  readSafetensors,
  saveCheckpoint,
  writeSafetensors,
  verifyCheckedSafetensors,
} from '../../native/index.js';
import { parseSafetensors, tensorValues, xxh64 } from './safetensors-reader.js';

const scratch = (): string => mkdtempSync(join(tmpdir(), 'cfpipe-native-st-'));

test('xxh64 of the independent reader matches published vectors', () => {
  assert.equal(xxh64(new Uint8Array()), 0xef46db3751d8e999n);
  assert.equal(xxh64(Buffer.from('Nobody inspects the spammish repetition')), 0xfbcea83c8a378bf1n);
});

test('a checkpoint written by the engine has upstream names, dtypes and shapes and verifies independently', () => {
  const dir = scratch();
  try {
    const d = 6;
    const w = Float32Array.from({ length: 2 * d }, (_, i) => i * 0.25 - 1);
    const ema = Float32Array.from(w, (v) => v * 0.5);
    const critic = Float32Array.from([3.5, -4]);
    const moments = new Float32Array(2 * d).fill(0.125);
    const paths = saveCheckpoint(dir, {
      step: 42,
      weights: [
        { name: 'generator.model.blocks.0.self_attn.q.weight', dtype: 'F32', shape: [2, d], data: w },
        { name: 'generator_ema.model.blocks.0.self_attn.q.weight', dtype: 'F32', shape: [2, d], data: ema },
        { name: 'critic.model.head.bias', dtype: 'BF16', shape: [2], data: critic },
      ],
      state: [
        { name: 'optim.exp_avg', shape: [2 * d], data: moments },
        { name: 'rng.counters', dtype: 'U64', shape: [2], data: BigUint64Array.from([7n, 2n ** 63n]) },
      ],
      meta: { data_position: '1234', objective: 'diffusion' },
    });
    assert.equal(paths.weightsPath, join(dir, 'step-00000042.weights.safetensors'));

    const f = parseSafetensors(paths.weightsPath);
    assert.deepEqual(f.order, [
      'generator.model.blocks.0.self_attn.q.weight',
      'generator_ema.model.blocks.0.self_attn.q.weight',
      'critic.model.head.bias',
    ]);
    assert.deepEqual(f.tensors.get('generator.model.blocks.0.self_attn.q.weight'), { dtype: 'F32', shape: [2, d], begin: 0, end: 48 });
    assert.equal(f.tensors.get('critic.model.head.bias')?.dtype, 'BF16');
    assert.equal(f.dataStart % 8, 0, 'data section is 8-byte aligned');
    assert.deepEqual(tensorValues(f, 'generator.model.blocks.0.self_attn.q.weight'), Array.from(w));
    assert.deepEqual(tensorValues(f, 'generator_ema.model.blocks.0.self_attn.q.weight'), Array.from(ema));
    assert.deepEqual(tensorValues(f, 'critic.model.head.bias'), [3.5, -4]);
    assert.equal(f.metadata['cfpipe.kind'], 'weights');
    assert.equal(f.metadata['cfpipe.step'], '42');

    // The checksum is XXH64 of the whole file with its 16 hex digits read as zeros.
    const stored = f.metadata['cfpipe.checksum'];
    assert.match(stored ?? '', /^[0-9a-f]{16}$/);
    const zeroed = Buffer.from(f.bytes);
    const at = zeroed.indexOf(`"cfpipe.checksum":"${stored}"`) + '"cfpipe.checksum":"'.length;
    zeroed.write('0'.repeat(16), at, 'latin1');
    assert.equal(xxh64(zeroed).toString(16).padStart(16, '0'), stored);

    const s = parseSafetensors(paths.statePath);
    assert.equal(s.metadata['data_position'], '1234');
    assert.equal(s.metadata['cfpipe.weights_checksum'], stored);
    assert.deepEqual(s.tensors.get('rng.counters'), { dtype: 'U64', shape: [2], begin: 48, end: 64 });
    assert.equal(s.bytes.readBigUInt64LE(s.dataStart + 56), 2n ** 63n);

    // And the engine reads it back the same.
    const back = loadCheckpoint(dir, 42, { toFloat32: true });
    assert.deepEqual(back.meta, { data_position: '1234', objective: 'diffusion' });
    assert.deepEqual(back.weights.map((t) => [t.name, t.dtype, t.shape]), [
      ['generator.model.blocks.0.self_attn.q.weight', 'F32', [2, d]],
      ['generator_ema.model.blocks.0.self_attn.q.weight', 'F32', [2, d]],
      ['critic.model.head.bias', 'BF16', [2]],
    ]);
    assert.deepEqual(back.weights[2]?.data, Float32Array.from([3.5, -4]));
    assert.deepEqual(back.state[1]?.data, BigUint64Array.from([7n, 2n ** 63n]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fitLinear checkpoints hold generator weights and optimizer state readable without the engine', async () => {
  const dir = scratch();
  try {
    const r = await fitLinear({ features: 5, steps: 30, checkpointEvery: 10, workDir: dir, seed: 3 });
    assert.equal(r.checkpoint, join(dir, 'step-00000030.state.safetensors'));
    const w = parseSafetensors(join(dir, 'step-00000030.weights.safetensors'));
    assert.deepEqual(w.order, ['generator.linear.weight', 'generator.linear.bias']);
    assert.deepEqual(w.tensors.get('generator.linear.weight')?.shape, [1, 5]);
    assert.deepEqual(tensorValues(w, 'generator.linear.weight'), Array.from(r.weight));
    assert.deepEqual(tensorValues(w, 'generator.linear.bias'), [r.bias]);
    const s = parseSafetensors(join(dir, 'step-00000030.state.safetensors'));
    assert.deepEqual(s.order, ['optim.momentum.linear.weight', 'optim.momentum.linear.bias']);
    assert.match(s.metadata['data.rng_counter'] ?? '', /^\d+$/);
    assert.equal(verifyCheckedSafetensors(join(dir, 'step-00000030.weights.safetensors')).ok, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('F16/BF16 written from Float32Array round to nearest even; a file written by hand is read by the engine', () => {
  const dir = scratch();
  try {
    const path = join(dir, 'half.safetensors');
    const values = Float32Array.from([1, -2, 0.1, 65504, 1e-8, 3.140625]);
    writeSafetensors(path, [
      { name: 'h', dtype: 'F16', shape: [6], data: values },
      { name: 'b', dtype: 'BF16', shape: [3, 2], data: values },
      { name: 'raw', dtype: 'F16', shape: [2], data: Uint16Array.from([0x3c00, 0xc000]) },
    ], { note: 'é "quoted"' });
    const f = parseSafetensors(path);
    assert.deepEqual(f.metadata, { note: 'é "quoted"' });
    assert.deepEqual(tensorValues(f, 'h'), [1, -2, 0.0999755859375, 65504, 0, 3.140625]);
    assert.deepEqual(tensorValues(f, 'b').slice(0, 3), [1, -2, 0.10009765625]);
    assert.deepEqual(tensorValues(f, 'raw'), [1, -2]);

    // A file produced by hand (not by the engine), with space padding and a header key order of
    // its own, is accepted and decoded.
    const header = JSON.stringify({ z: { dtype: 'F32', shape: [2], data_offsets: [8, 16] }, a: { dtype: 'I32', shape: [2], data_offsets: [0, 8] } });
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    const data = Buffer.alloc(16);
    data.writeInt32LE(-5, 0);
    data.writeInt32LE(9, 4);
    data.writeFloatLE(1.5, 8);
    data.writeFloatLE(-0.5, 12);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(padded.length));
    writeFileSync(join(dir, 'hand.safetensors'), Buffer.concat([len, Buffer.from(padded), data]));
    const read = readSafetensors(join(dir, 'hand.safetensors'));
    assert.deepEqual(read.tensors.map((t) => t.name), ['a', 'z']);
    assert.deepEqual(read.tensors[0]?.data, Int32Array.from([-5, 9]));
    assert.deepEqual(read.tensors[1]?.data, Float32Array.from([1.5, -0.5]));
    assert.equal(readFileSync(join(dir, 'hand.safetensors')).length, 8 + padded.length + 16);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('latestCheckpoint skips a corrupt newest checkpoint and says why', async () => {
  const dir = scratch();
  try {
    await fitLinear({ steps: 40, checkpointEvery: 10, keepCheckpoints: 0, workDir: dir });
    const w40 = join(dir, 'step-00000040.weights.safetensors');
    const bytes = readFileSync(w40);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 0xff;
    writeFileSync(w40, bytes);
    const latest = latestCheckpoint(dir);
    assert.equal(latest.checkpoint?.step, 30);
    assert.equal(latest.skipped.length, 1);
    assert.match(latest.skipped[0] ?? '', /step-00000040\.weights\.safetensors: checksum mismatch/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
