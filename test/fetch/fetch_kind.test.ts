// The `fetch` stage kind run by the real worker process against the local hub server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HubServer } from './hub_server.js';
import { COMMIT_MAIN, modelFiles, testRepos } from './fixtures.js';
import { makeTask, runWorker } from './worker_harness.js';
import { repoRoot } from '../util/paths.js';

const TOKEN = 'hf_KINDtoken5555';
let hub: HubServer;
let scratch: string;
before(async () => {
  hub = await HubServer.start(testRepos(), { token: TOKEN });
  scratch = await mkdtemp(join(tmpdir(), 'cfpipe-fetch-kind-'));
});
after(async () => {
  await hub.close();
  await rm(scratch, { recursive: true, force: true });
});

test('fetch kind: a private repository into a dir output, progress in bytes, token never in the logs', async () => {
  const out = join(scratch, 'out-model');
  const task = makeTask('fetch', { source: 'hf://acme/private', concurrency: 2 }, [{ name: 'model', type: 'dir' }]);
  const r = await runWorker({ task, inputs: {}, outputs: { model: out }, workDir: join(scratch, 'w1'), root: repoRoot, device: 'cpu' }, { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN });
  assert.equal(r.code, 0, r.stderr);
  for (const f of modelFiles) assert.deepEqual(await readFile(join(out, f.path)), f.content);
  const progress = r.messages.filter((m) => m.t === 'progress');
  const total = modelFiles.reduce((s, f) => s + f.content.length, 0);
  assert.ok(progress.length > 0);
  const last = progress.at(-1);
  assert.ok(last?.t === 'progress' && last.step === total && last.total === total, JSON.stringify(last));
  assert.match(r.stdout, new RegExp(`hf://acme/private @ ${COMMIT_MAIN}`));
  assert.match(r.stdout, /fetched 5 files, .* all verified/);
  assert.ok(!(r.stdout + r.stderr + JSON.stringify(r.messages)).includes(TOKEN));
});

test('fetch kind: a single file into a file output; a 404 fails with one clear line and no stack', async () => {
  const out = join(scratch, 'config.json');
  const task = makeTask('fetch', { source: 'hf://acme/tiny-video/config.json' }, [{ name: 'config', type: 'file' }]);
  const ok = await runWorker({ task, inputs: {}, outputs: { config: out }, workDir: join(scratch, 'w2'), root: repoRoot, device: 'cpu' }, { HF_ENDPOINT: hub.url });
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(await readFile(out), modelFiles[0]?.content);

  const missing = makeTask('fetch', { source: 'hf://acme/tiny-video/nope.bin' }, [{ name: 'x', type: 'file' }]);
  const bad = await runWorker({ task: missing, inputs: {}, outputs: { x: join(scratch, 'x') }, workDir: join(scratch, 'w3'), root: repoRoot, device: 'cpu' }, { HF_ENDPOINT: hub.url });
  assert.notEqual(bad.code, 0);
  const failed = bad.messages.find((m) => m.t === 'failed');
  assert.match(failed?.t === 'failed' ? failed.message : '', /fetch: 404 Not Found: "nope.bin" does not exist in hf:\/\/acme\/tiny-video/);
  assert.ok(!bad.stderr.includes('    at '), 'no stack trace for a user error');
});
