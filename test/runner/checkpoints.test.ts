import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { checkpointPath, listCheckpointSteps, loadLatestCheckpoint, writeCheckpoint } from '../../runner/kinds/checkpoints.js';
import { tempRoot } from './fixtures/harness.js';

test('the newest valid checkpoint is loaded and only two are kept', async () => {
  const dir = tempRoot();
  for (const step of [5, 10, 15]) await writeCheckpoint(dir, step, Buffer.from(`state at ${step}`));
  assert.deepEqual(await listCheckpointSteps(dir), [15, 10]);
  const found = await loadLatestCheckpoint(dir);
  assert.equal(found.latest?.step, 15);
  assert.equal(found.latest?.payload.toString(), 'state at 15');
  assert.deepEqual(found.rejected, []);
});

test('a truncated latest checkpoint is detected and the previous one used', async () => {
  const dir = tempRoot();
  await writeCheckpoint(dir, 5, Buffer.alloc(1000, 1));
  await writeCheckpoint(dir, 10, Buffer.alloc(1000, 2));
  truncateSync(checkpointPath(dir, 10), 700);
  const found = await loadLatestCheckpoint(dir);
  assert.equal(found.latest?.step, 5);
  assert.equal(found.rejected[0]?.step, 10);
  assert.match(found.rejected[0]!.reason, /truncated/);
});

test('a checkpoint with flipped bytes fails its checksum and the previous one is used', async () => {
  const dir = tempRoot();
  await writeCheckpoint(dir, 5, Buffer.alloc(1000, 1));
  await writeCheckpoint(dir, 10, Buffer.alloc(1000, 2));
  const bytes = readFileSync(checkpointPath(dir, 10));
  bytes[100] = bytes[100]! ^ 0xff;
  writeFileSync(checkpointPath(dir, 10), bytes);
  const found = await loadLatestCheckpoint(dir);
  assert.equal(found.latest?.step, 5);
  assert.equal(found.latest?.payload[0], 1);
  assert.equal(found.rejected[0]?.reason, 'checksum mismatch');
});
