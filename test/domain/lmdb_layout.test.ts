import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { LatentLmdbReader, LatentLmdbWriter, LmdbLayoutError, lmdbDataFormat } from '../../runner/domain/lmdb_layout.js';
import { f16ToF32, f32ToF16 } from '../../runner/domain/float16.js';
import { CounterRng } from '../../runner/domain/rng.js';
import { findPythonWithLmdb, runPython } from './python.js';

const tmp = mkdtempSync(join(tmpdir(), 'cfpipe-lmdb-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const rowShape = [6, 3, 4, 2, 2] as const;
const rowValues = 6 * 3 * 4 * 2 * 2;
function row(i: number): Float32Array {
  const rng = new CounterRng([i]);
  return Float32Array.from({ length: rowValues }, () => rng.normal());
}

test('rows written in batches read back as float16-rounded trajectories, clean = last entry', async () => {
  const path = join(tmp, 'ode');
  const writer = LatentLmdbWriter.create(path, { rowShape, batchRows: 4 });
  for (let i = 0; i < 10; i++) await writer.append(row(i), `prompt ${i} — ünïcode`);
  assert.equal(await writer.finish(), 10);

  assert.equal(lmdbDataFormat(path), 2);
  const reader = new LatentLmdbReader(path);
  assert.equal(reader.count, 10);
  assert.deepEqual(reader.rowShape, [6, 3, 4, 2, 2]);
  for (const i of [0, 3, 9]) {
    assert.equal(reader.prompt(i), `prompt ${i} — ünïcode`);
    const expected = f16ToF32(f32ToF16(row(i)));
    assert.deepEqual(reader.trajectory(i), expected);
    assert.deepEqual(reader.clean(i), expected.subarray(5 * 48, 6 * 48));
  }
  assert.throws(() => reader.prompt(10), RangeError);
  await reader.close();
});

test('keys and values are raw bytes, exactly as upstream stores them', async () => {
  const path = join(tmp, 'raw');
  const writer = LatentLmdbWriter.create(path, { rowShape: [1, 1, 1, 1, 2] });
  await writer.append(Float32Array.from([1, -2]), 'a red disc moving left');
  await writer.finish();
  const raw = open<Buffer, Buffer>(path, { encoding: 'binary', keyEncoding: 'binary', readOnly: true });
  const entries = Object.fromEntries([...raw.getRange()].map(({ key, value }) => [Buffer.from(key).toString('latin1'), Buffer.from(value).toString('hex')]));
  await raw.close();
  assert.deepEqual(entries, {
    latents_0_data: '003c00c0',
    latents_shape: Buffer.from('1 1 1 1 1 2').toString('hex'),
    prompts_0_data: Buffer.from('a red disc moving left').toString('hex'),
    prompts_shape: Buffer.from('1').toString('hex'),
  });
});

test('a 5-D clean set (N F C H W) reads with a leading trajectory axis of 1', async () => {
  const path = join(tmp, 'clean5');
  const db = open<Buffer, string>(path, { encoding: 'binary' });
  await db.put('latents_0_data', Buffer.from(new Uint16Array([0x3c00, 0x4000]).buffer));
  await db.put('prompts_0_data', Buffer.from('x'));
  await db.put('latents_shape', Buffer.from('1 1 1 1 2'));
  await db.put('prompts_shape', Buffer.from('1'));
  await db.close();
  const reader = new LatentLmdbReader(path);
  assert.deepEqual(reader.trajectoryShape, [1, 1, 1, 1, 2]);
  assert.deepEqual([...reader.clean(0)], [1, 2]);
  await reader.close();
});

test('malformed sets and misuse fail with a message, not a crash', async () => {
  const unfinished = join(tmp, 'unfinished');
  const writer = LatentLmdbWriter.create(unfinished, { rowShape, batchRows: 1 });
  await writer.append(row(0), 'p');
  await writer.abort();
  assert.throws(() => new LatentLmdbReader(unfinished), /no `latents_shape` key/);
  assert.throws(() => LatentLmdbWriter.create(unfinished, { rowShape }), /not empty/);
  assert.throws(() => LatentLmdbWriter.create(join(tmp, 'x'), { rowShape: [2, 3] }), LmdbLayoutError);

  const wrong = join(tmp, 'wrongsize');
  const db = open<Buffer, string>(wrong, { encoding: 'binary' });
  await db.put('latents_0_data', Buffer.alloc(6));
  await db.put('prompts_0_data', Buffer.from('x'));
  await db.put('latents_shape', Buffer.from('1 1 1 1 2 2'));
  await db.close();
  const reader = new LatentLmdbReader(wrong);
  assert.throws(() => reader.trajectory(0), /has 6 bytes; .* needs 8/);
  await reader.close();

  const w2 = LatentLmdbWriter.create(join(tmp, 'badrow'), { rowShape });
  await assert.rejects(w2.append(new Float32Array(3), 'p'), /has 3 values/);
  await w2.abort();
  mkdirSync(join(tmp, 'notlmdb'));
  writeFileSync(join(tmp, 'notlmdb', 'readme'), 'x');
  assert.throws(() => new LatentLmdbReader(join(tmp, 'nothere')), /no dataset/);
});

const python = findPythonWithLmdb();

test('format 1 (LMDB 0.9) sets written here read back here, rows and prompts exact', async () => {
  const path = join(tmp, 'v1');
  const writer = LatentLmdbWriter.create(path, { rowShape, batchRows: 3, format: 1 });
  for (let i = 0; i < 7; i++) await writer.append(row(i), `prompt ${i}`);
  assert.equal(await writer.finish(), 7);
  assert.equal(lmdbDataFormat(path), 1);
  const reader = new LatentLmdbReader(path);
  assert.equal(reader.format, 1);
  assert.equal(reader.count, 7);
  assert.equal(reader.prompt(6), 'prompt 6');
  assert.deepEqual(reader.trajectory(4), f16ToF32(f32ToF16(row(4))));
  await reader.close();
});

test('sets written by Python lmdb (upstream\'s tools: LMDB 0.9, data format 1) read here', { skip: python === undefined ? 'no python3 with lmdb and numpy' : false }, async () => {
  const theirs = join(tmp, 'from-python');
  const writeScript = `
import lmdb, numpy as np, sys
env = lmdb.open(sys.argv[1], map_size=1 << 26)
with env.begin(write=True) as txn:
    for i in range(300):
        txn.put(f'latents_{i}_data'.encode(), (np.arange(6 * 3 * 4 * 2 * 2, dtype=np.float32).reshape(6, 3, 4, 2, 2) * (i + 1) / 64).astype(np.float16).tobytes())
        txn.put(f'prompts_{i}_data'.encode(), f'a blue cross moving up {i}'.encode())
    txn.put(b'latents_shape', b'300 6 3 4 2 2')
    txn.put(b'prompts_shape', b'300')
`;
  runPython(python!, writeScript, [theirs]);
  assert.equal(lmdbDataFormat(theirs), 1);
  const reader = new LatentLmdbReader(theirs);
  assert.equal(reader.count, 300);
  assert.equal(reader.prompt(217), 'a blue cross moving up 217');
  const expected = Float32Array.from({ length: 288 }, (_, j) => (j * 218) / 64);
  assert.deepEqual(reader.trajectory(217), f16ToF32(f32ToF16(expected)));
  assert.deepEqual(reader.clean(217), f16ToF32(f32ToF16(expected.subarray(240))));
  await reader.close();
});

test('Python lmdb + numpy read format-1 sets written here as upstream\'s LatentLMDBDataset does', { skip: python === undefined ? 'no python3 with lmdb and numpy' : false }, async () => {
  const ours = join(tmp, 'for-python');
  const writer = LatentLmdbWriter.create(ours, { rowShape: [6, 3, 4, 2, 2], format: 1 });
  for (let i = 0; i < 40; i++) await writer.append(row(i), `p${i}`);
  await writer.finish();
  const readScript = `
import lmdb, numpy as np, sys, json
env = lmdb.open(sys.argv[1], readonly=True, lock=False)
with env.begin() as txn:
    shape = [int(x) for x in txn.get(b'latents_shape').decode().split()]
    n = int(txn.get(b'prompts_shape').decode())
    row = np.frombuffer(txn.get(b'latents_33_data'), dtype=np.float16).reshape(shape[1:])
    print(json.dumps({'shape': shape, 'n': n, 'entries': env.stat()['entries'], 'prompt': txn.get(b'prompts_33_data').decode(), 'clean': row[-1].astype(np.float32).ravel().tolist()}))
`;
  const got = JSON.parse(runPython(python!, readScript, [ours]));
  assert.deepEqual(got.shape, [40, 6, 3, 4, 2, 2]);
  assert.equal(got.n, 40);
  assert.equal(got.entries, 82);
  assert.equal(got.prompt, 'p33');
  assert.deepEqual(got.clean, [...f16ToF32(f32ToF16(row(33))).subarray(5 * 48)]);
});

test('format-2 sets (lmdb-js) stay unreadable to LMDB 0.9, as documented', { skip: python === undefined ? 'no python3 with lmdb and numpy' : false }, async () => {
  const ours = join(tmp, 'v2-for-python');
  const writer = LatentLmdbWriter.create(ours, { rowShape: [1, 1, 1, 1, 2] });
  await writer.append(Float32Array.from([1, 2]), 'x');
  await writer.finish();
  assert.throws(() => runPython(python!, 'import lmdb, sys; lmdb.open(sys.argv[1], readonly=True, lock=False)', [ours]), /MDB_INVALID/);
});
