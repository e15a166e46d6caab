import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrajectoryShardReader, TrajectoryShardWriter, type RowShape } from '../../runner/domain/trajectories.js';
import { buildOdeLmdb } from '../../runner/domain/ode_lmdb.js';
import { LatentLmdbReader } from '../../runner/domain/lmdb_layout.js';
import { SafetensorsReader, writeSafetensors } from '../../runner/domain/safetensors.js';
import { f16ToF32, f32ToF16 } from '../../runner/domain/float16.js';
import { CounterRng } from '../../runner/domain/rng.js';

const tmp = mkdtempSync(join(tmpdir(), 'cfpipe-traj-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const shape: RowShape = [6, 3, 4, 2, 2];
const values = 6 * 3 * 4 * 2 * 2;
const row = (seed: number) => {
  const rng = new CounterRng([seed, 7]);
  return Float32Array.from({ length: values }, () => rng.normal());
};

function shard(name: string, prompts: string[], seeds: number[], rowShape: RowShape = shape): string {
  const path = join(tmp, name);
  const w = new TrajectoryShardWriter(path, { rowShape, prompts, rows: seeds, metadata: { steps: '48' } });
  for (const s of seeds) w.append(row(s).subarray(0, rowShape.reduce((a, b) => a * b, 1)));
  w.commit();
  return path;
}

test('safetensors header is 8-byte aligned JSON with offsets; byte ranges read back', () => {
  const path = join(tmp, 'plain.safetensors');
  writeSafetensors(path, [
    { name: 'a', dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) },
    { name: 'b', dtype: 'U8', shape: [3], data: new Uint8Array([7, 8, 9]) },
  ], { note: 'x' });
  const r = new SafetensorsReader(path);
  assert.deepEqual(r.metadata, { note: 'x' });
  assert.deepEqual({ ...r.entry('b') }, { name: 'b', dtype: 'U8', shape: [3], begin: 8, end: 11 });
  assert.deepEqual([...r.readBytes('b', 1, 2)], [8, 9]);
  r.close();
  writeFileSync(join(tmp, 'bad.safetensors'), Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1]));
  assert.throws(() => new SafetensorsReader(join(tmp, 'bad.safetensors')), /header length/);
});

test('a shard streams rows to disk and reads them back float16-exact with prompts and row indices', () => {
  const path = shard('s0.safetensors', ['p0', 'p1', 'p2'], [10, 11, 12]);
  const r = new TrajectoryShardReader(path);
  assert.equal(r.count, 3);
  assert.deepEqual(r.rowShape, shape);
  assert.deepEqual(r.prompts, ['p0', 'p1', 'p2']);
  assert.deepEqual(r.rows, [10, 11, 12]);
  assert.equal(r.metadata.steps, '48');
  assert.deepEqual(r.row(1), f16ToF32(f32ToF16(row(11))));
  r.close();
});

test('an incomplete shard is never published under its name', () => {
  const path = join(tmp, 'partial.safetensors');
  const w = new TrajectoryShardWriter(path, { rowShape: shape, prompts: ['a', 'b'], rows: [0, 1] });
  w.append(row(0));
  assert.throws(() => w.commit(), /of .* data bytes written/);
  assert.equal(existsSync(path), false);
  assert.deepEqual(readdirSync(tmp).filter((n) => n.startsWith('partial')), []);
});

test('lmdb_build: shards in order, duplicate prompts dropped, contiguous rows, shape from the shards', async () => {
  const a = shard('a.safetensors', ['red', 'blue', 'red'], [1, 2, 3]);
  const b = shard('b.safetensors', ['green', 'blue'], [4, 5]);
  const c = shard('c.safetensors', ['green'], [6]); // upstream would take its shape from this all-duplicate last file
  const out = join(tmp, 'ode_db');
  const summary = await buildOdeLmdb([a, b, c], out);
  assert.deepEqual(summary, { rows: 3, dropped: 3, rowShape: shape });
  const r = new LatentLmdbReader(out);
  assert.equal(r.count, 3);
  assert.deepEqual(r.rowShape, [...shape]);
  assert.deepEqual([0, 1, 2].map((i) => r.prompt(i)), ['red', 'blue', 'green']);
  assert.deepEqual(r.trajectory(2), f16ToF32(f32ToF16(row(4))));
  await r.close();

  const all = await buildOdeLmdb([a, b], join(tmp, 'ode_all'), { dedupePrompts: false });
  assert.equal(all.rows, 5);
});

test('lmdb_build refuses shards of different row shapes, naming the file', async () => {
  const a = shard('m1.safetensors', ['x'], [1]);
  const b = shard('m2.safetensors', ['y'], [2], [6, 3, 4, 2, 1]);
  await assert.rejects(buildOdeLmdb([a, b], join(tmp, 'never')), /m2\.safetensors has rows of shape \[6, 3, 4, 2, 1\]/);
  assert.equal(existsSync(join(tmp, 'never')), false);
});
