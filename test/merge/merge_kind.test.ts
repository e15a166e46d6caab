// The `merge` stage kind run by the real worker process over a folder of shards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTask, runWorker } from '../fetch/worker_harness.js';
import { repoRoot } from '../util/paths.js';
import { assertSameContent, expectedMerge, readAll, snapshotInputs, writeShard } from './fixture.js';
import { collectShards } from '../../runner/kinds/merge.js';

test('merge kind: a folder of shards in natural order (…_2 before …_10), clean and full, inputs kept', async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'cfpipe-merge-kind-'));
  try {
    const dataset = join(scratch, 'dataset');
    const ids = [0, 1, 2, 10];
    for (const i of ids) await writeShard(join(dataset, `ODE6KCausal_chunkwise_${i}`), [6, 2, 4, 4, 4], 3 + i, 30 + i);
    await writeShard(join(dataset, 'ODE6KCausal_framewise_0'), [6, 2, 4, 4, 4], 2, 99);
    const ordered = ids.map((i) => join(dataset, `ODE6KCausal_chunkwise_${i}`));
    assert.deepEqual(collectShards([dataset], 'ODE6KCausal_chunkwise_*'), ordered);
    const before = snapshotInputs(ordered);
    for (const mode of ['clean', 'full'] as const) {
      const out = join(scratch, `${mode}_data`);
      const task = makeTask('merge', { mode, pattern: 'ODE6KCausal_chunkwise_*', batch_rows: 4 }, [{ name: 'latents', type: 'dataset' }], [{ name: 'shards', type: 'dir' }]);
      const r = await runWorker({ task, inputs: { shards: [dataset] }, outputs: { latents: out }, workDir: join(scratch, `work_${mode}`), root: repoRoot, device: 'cpu' });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(assertSameContent(readAll(out), expectedMerge(ordered, mode)), undefined);
      assert.match(r.stdout, /input shards are untouched/);
    }
    assert.equal(snapshotInputs(ordered), before);

    // A bad shard set fails with the shard and key named, no stack trace.
    await writeShard(join(scratch, 'odd', 'ODE6KCausal_chunkwise_0'), [6, 2, 4, 4, 8], 2, 7);
    const task = makeTask('merge', { mode: 'full' }, [{ name: 'latents', type: 'dataset' }], [{ name: 'shards', type: 'dir' }]);
    const bad = await runWorker({ task, inputs: { shards: [ordered[0] ?? '', join(scratch, 'odd', 'ODE6KCausal_chunkwise_0')] }, outputs: { latents: join(scratch, 'bad_out') }, workDir: join(scratch, 'work_bad'), root: repoRoot, device: 'cpu' });
    const failed = bad.messages.find((m) => m.t === 'failed');
    assert.match(failed?.t === 'failed' ? failed.message : '', /merge: shard .*odd\/ODE6KCausal_chunkwise_0: `latents_shape` is "2 6 2 4 4 8" but shard .*_chunkwise_0 has "3 6 2 4 4 4"/);
    assert.ok(!bad.stderr.includes('    at '));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});
