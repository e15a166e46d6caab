// Content digests of artifact trees: an LMDB dataset read by a later task (which rewrites its
// lock file, even read-only) keeps its digest; a change to its data changes it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { closeStore, openStore } from '../../runner/store/store.js';
import { digestPath, isLmdbLockFile } from '../../runner/store/digest.js';

test('an LMDB dataset keeps its digest when a reader rewrites lock.mdb; its data changes it', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cfpipe-digest-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const store = openStore(root)!;
  t.after(() => closeStore(store));
  const dataset = join(root, 'dataset');
  const writer = open({ path: dataset, encoding: 'binary' });
  await writer.put('latents_shape', Buffer.from('1 1 1 1 1 1'));
  await writer.close();
  const before = await digestPath(store, dataset);

  const reader = open({ path: dataset, encoding: 'binary', readOnly: true });
  assert.ok(reader.getBinary('latents_shape'));
  await reader.close();
  writeFileSync(join(dataset, 'lock.mdb'), 'a reader table that changed');
  assert.equal((await digestPath(store, dataset)).digest, before.digest);

  const writer2 = open({ path: dataset, encoding: 'binary' });
  await writer2.put('latents_shape', Buffer.from('2 1 1 1 1 1'));
  await writer2.close();
  assert.notEqual((await digestPath(store, dataset)).digest, before.digest);
});

test('only lock files of LMDB environments are left out', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-digest-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'env'));
  writeFileSync(join(dir, 'env', 'lock.mdb'), '');
  assert.equal(isLmdbLockFile(join(dir, 'env'), 'lock.mdb'), false, 'no data.mdb beside it: an ordinary file');
  writeFileSync(join(dir, 'env', 'data.mdb'), '');
  assert.equal(isLmdbLockFile(join(dir, 'env'), 'lock.mdb'), true);
  writeFileSync(join(dir, 'db'), '');
  writeFileSync(join(dir, 'db-lock'), '');
  assert.equal(isLmdbLockFile(dir, 'db-lock'), true);
  assert.equal(isLmdbLockFile(dir, 'notes-lock'), false);
});
