import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbV1Reader, LmdbV1Writer } from '../../runner/domain/lmdb_v1.js';

const tmp = mkdtempSync(join(tmpdir(), 'cfpipe-lmdbv1-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const value = (i: number) => Buffer.alloc(i % 5 === 0 ? 9000 + i : 20 + (i % 300), i % 251);

test('a bulk-built tree of 5000 keys (branch levels, overflow runs) answers every lookup', () => {
  const dir = join(tmp, 'many');
  const w = new LmdbV1Writer(dir);
  for (let i = 0; i < 5000; i++) w.put(`key_${i}`, value(i));
  w.put('key_7', Buffer.from('replaced'));
  const { entries } = w.finish();
  assert.equal(entries, 5000);
  const r = new LmdbV1Reader(dir);
  assert.equal(r.entries, 5000);
  for (let i = 0; i < 5000; i++) {
    if (i === 7) continue;
    assert.deepEqual(r.get(`key_${i}`), value(i), `key_${i}`);
  }
  assert.equal(r.get('key_7')?.toString(), 'replaced');
  assert.equal(r.get('key_'), undefined);
  assert.equal(r.get('zzz'), undefined);
  assert.equal(r.get('a'), undefined);
  r.close();
});

test('an empty database and bad inputs', () => {
  const dir = join(tmp, 'empty');
  new LmdbV1Writer(dir).finish();
  const r = new LmdbV1Reader(dir);
  assert.equal(r.entries, 0);
  assert.equal(r.get('x'), undefined);
  r.close();
  assert.throws(() => new LmdbV1Writer(dir), /not empty/);
  const w = new LmdbV1Writer(join(tmp, 'k'));
  assert.throws(() => w.put('', Buffer.alloc(1)), /key length 0/);
  w.abort();
});

test('truncated or foreign files give an error, not a crash', () => {
  const dir = join(tmp, 'trunc');
  const w = new LmdbV1Writer(dir);
  for (let i = 0; i < 500; i++) w.put(`k${i}`, value(i));
  w.finish();
  truncateSync(join(dir, 'data.mdb'), 4096 * 40);
  const r = new LmdbV1Reader(dir);
  assert.throws(() => {
    for (let i = 0; i < 500; i++) r.get(`k${i}`);
  }, /outside the file|past the end|corrupt/);
  r.close();
  mkdirSync(join(tmp, 'foreign'));
  writeFileSync(join(tmp, 'foreign', 'data.mdb'), Buffer.alloc(8192, 7));
  assert.throws(() => new LmdbV1Reader(join(tmp, 'foreign')), /not an LMDB file/);
});
