// Shard merges over the upstream LMDB layout: key-by-key equal to what upstream's scripts would
// write, inputs untouched, shapes validated with messages naming shard and key, resumable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { planMerge } from '../../runner/merge/plan.js';
import type { MergePlan } from '../../runner/merge/plan.js';
import { MergeDataError, mergeShards } from '../../runner/merge/merge.js';
import { assertSameContent, expectedMerge, readAll, snapshotInputs, writeShard } from './fixture.js';

const ROW = [6, 3, 4, 8, 8]; // S F C H W: 9216 bytes per fp16 row
let scratch: string;
let shards: string[];

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'cfpipe-merge-'));
  shards = [0, 1, 2].map((i) => join(scratch, `ODE6KCausal_chunkwise_${i}`));
  await writeShard(shards[0] ?? '', ROW, 7, 1);
  await writeShard(shards[1] ?? '', ROW, 5, 2);
  await writeShard(shards[2] ?? '', ROW, 9, 3);
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let n = 0;
const fresh = (): { outPath: string; workDir: string } => {
  n++;
  return { outPath: join(scratch, `out${n}.lmdb`), workDir: join(scratch, `work${n}`) };
};

function plan(paths: readonly string[], mode: 'full' | 'clean'): MergePlan {
  const r = planMerge(paths, mode);
  if (!r.ok) assert.fail(r.problems.join('\n'));
  return r.plan;
}

for (const mode of ['full', 'clean'] as const) {
  test(`${mode} merge equals, key by key, what the upstream script writes; the shards are untouched`, async () => {
    const before = snapshotInputs(shards);
    const d = fresh();
    const r = await mergeShards({ plan: plan(shards, mode), ...d, batchRows: 4 });
    assert.equal(r.rows, 21);
    assert.equal(assertSameContent(readAll(d.outPath), expectedMerge(shards, mode)), undefined);
    assert.equal(readAll(d.outPath).get('latents_shape')?.toString(), mode === 'full' ? '21 6 3 4 8 8' : '21 1 3 4 8 8');
    assert.equal(snapshotInputs(shards), before);
    assert.ok(!existsSync(join(d.workDir, 'merged.lmdb')), 'the build moved to the output');
  });
}

test('clean merge of shards that store 4-D rows (N F C H W) gives N 1 F C H W', async () => {
  const dir = join(scratch, 'four_d');
  const db = open<Buffer, string>(dir, { encoding: 'binary', noSubdir: false });
  const values = 3 * 4 * 8 * 8;
  await db.transaction(() => {
    for (let i = 0; i < 3; i++) {
      void db.put(`latents_${i}_data`, Buffer.alloc(values * 2, i + 1));
      void db.put(`prompts_${i}_data`, Buffer.from(`p${i}`));
    }
    void db.put('latents_shape', Buffer.from('3 3 4 8 8'));
    void db.put('prompts_shape', Buffer.from('3'));
  });
  await db.close();
  const d = fresh();
  await mergeShards({ plan: plan([dir], 'clean'), ...d });
  const out = readAll(d.outPath);
  assert.equal(out.get('latents_shape')?.toString(), '3 1 3 4 8 8');
  assert.equal(assertSameContent(out, expectedMerge([dir], 'clean')), undefined);
  // A full-trajectory merge refuses them, naming shard and key.
  const refused = planMerge([dir], 'full');
  assert.equal(refused.ok, false);
  assert.match(refused.ok ? '' : refused.problems.join('\n'), /shard .*four_d: `latents_shape` is "3 3 4 8 8" \(5 dims\); a full-trajectory merge needs 6 dims/);
});

test('shards that disagree are refused before anything is written, naming the shard and the key', async () => {
  const odd = join(scratch, 'odd_shape');
  await writeShard(odd, [6, 3, 4, 8, 16], 2, 9);
  const r = planMerge([shards[0] ?? '', odd], 'full');
  assert.equal(r.ok, false);
  const text = r.ok ? '' : r.problems.join('\n');
  assert.match(text, /shard .*odd_shape: `latents_shape` is "2 6 3 4 8 16" but shard .*ODE6KCausal_chunkwise_0 has "7 6 3 4 8 8"/);

  const extra = join(scratch, 'extra_key');
  await writeShard(extra, ROW, 2, 10);
  const db = open<Buffer, string>(extra, { encoding: 'binary', noSubdir: false });
  await db.put('actions_shape', Buffer.from('2 4'));
  await db.close();
  const r2 = planMerge([shards[0] ?? '', extra], 'full');
  assert.match(r2.ok ? '' : r2.problems.join('\n'), /shard .*extra_key has `actions_shape`, which shard .*ODE6KCausal_chunkwise_0 lacks/);

  const missing = planMerge([shards[0] ?? '', join(scratch, 'nope')], 'full');
  assert.match(missing.ok ? '' : missing.problems.join('\n'), /shard .*nope does not exist/);
});

test('a row whose bytes contradict the shape fails with the shard and the key; nothing is published', async () => {
  const bad = join(scratch, 'short_row');
  await writeShard(bad, ROW, 4, 11);
  const db = open<Buffer, string>(bad, { encoding: 'binary', noSubdir: false });
  await db.put('latents_2_data', Buffer.alloc(100));
  await db.remove('prompts_3_data');
  await db.close();
  const d = fresh();
  await assert.rejects(mergeShards({ plan: plan([shards[1] ?? '', bad], 'full'), ...d, batchRows: 2 }), (e: unknown) => e instanceof MergeDataError && /shard .*short_row: `latents_2_data` has 100 bytes; the row shape \[6, 3, 4, 8, 8\] in float16 needs 9216/.test(e.message));
  assert.equal(existsSync(d.outPath), false);
});

test('an interrupted merge resumes from its last batch and ends equal to an uninterrupted one', async () => {
  const d = fresh();
  const ac = new AbortController();
  const p = plan(shards, 'full');
  let stoppedAt = 0;
  const onBatch = (rows: number): void => {
    if (rows >= 9 && !ac.signal.aborted) {
      stoppedAt = rows;
      ac.abort();
    }
  };
  await assert.rejects(mergeShards({ plan: p, ...d, batchRows: 3, signal: ac.signal, onBatch }));
  assert.ok(stoppedAt >= 9 && stoppedAt < 21);
  assert.equal(existsSync(d.outPath), false, 'nothing published on interruption');
  const r = await mergeShards({ plan: p, ...d, batchRows: 3 });
  assert.equal(r.resumedAtRow, stoppedAt);
  const expected = expectedMerge(shards, 'full');
  let rest = 0;
  for (let i = stoppedAt; i < 21; i++) rest += (expected.get(`latents_${i}_data`)?.length ?? 0) + (expected.get(`prompts_${i}_data`)?.length ?? 0);
  assert.equal(r.bytesWritten, rest, 'only the rows after the interruption were written again');
  assert.equal(assertSameContent(readAll(d.outPath), expected), undefined);
});

test('the output map grows past a tiny initial map size; memory stays at one batch', async () => {
  const d = fresh();
  const r = await mergeShards({ plan: plan(shards, 'full'), ...d, initialMapSize: 64 * 1024, batchBytes: 40_000 });
  assert.equal(assertSameContent(readAll(d.outPath), expectedMerge(shards, 'full')), undefined);
  assert.ok(r.peakBatchBytes <= 40_000 + 9216 + 100, `peak batch ${r.peakBatchBytes}`);
  // An existing output is refused rather than overwritten or merged into.
  await assert.rejects(mergeShards({ plan: plan(shards, 'full'), ...d }), /already exists/);
});
