// The fetch core against a real HTTP server speaking the hub API, with injected faults.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchAll } from '../../runner/fetch/fetch.js';
import type { FetchOptions, FetchProgress } from '../../runner/fetch/fetch.js';
import type { DownloadEvent } from '../../runner/fetch/download.js';
import { FetchError } from '../../runner/fetch/errors.js';
import { HubServer, sha256Hex } from './hub_server.js';
import { COMMIT_MAIN, COMMIT_V1, LFS_SIZE, modelFiles, modelFilesV1, testRepos } from './fixtures.js';

const TOKEN = 'hf_SECRETtoken1234567890';
let hub: HubServer;
let scratch: string;

before(async () => {
  hub = await HubServer.start(testRepos(), { token: TOKEN });
  scratch = await mkdtemp(join(tmpdir(), 'cfpipe-fetch-'));
});
after(async () => {
  await hub.close();
  await rm(scratch, { recursive: true, force: true });
});

let n = 0;
async function dirs(): Promise<{ outDir: string; workDir: string }> {
  n++;
  return { outDir: join(scratch, `out${n}`), workDir: join(scratch, `work${n}`) };
}

interface Run {
  outDir: string;
  workDir: string;
  events: DownloadEvent[];
  logs: string[];
  progress: FetchProgress[];
}

async function run(sources: FetchOptions['sources'], extra: Partial<FetchOptions> & { token?: string } = {}): Promise<Run & { manifest: Awaited<ReturnType<typeof fetchAll>> }> {
  const d = await dirs();
  const r: Run = { ...d, events: [], logs: [], progress: [] };
  const manifest = await fetchAll({
    sources,
    ...d,
    env: { HF_ENDPOINT: hub.url, ...(extra.token !== undefined ? { HF_TOKEN: extra.token } : {}) },
    stallMs: 400,
    retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 50 },
    onEvent: (e) => r.events.push(e),
    log: (l) => r.logs.push(l),
    onProgress: (p) => r.progress.push(p),
    ...extra,
  });
  return { ...r, manifest };
}

async function runFailing(sources: FetchOptions['sources'], extra: Partial<FetchOptions> & { token?: string } = {}): Promise<{ error: FetchError; outDir: string; workDir: string; logs: string[] }> {
  const d = await dirs();
  const logs: string[] = [];
  try {
    await fetchAll({
      sources,
      ...d,
      env: { HF_ENDPOINT: hub.url, ...(extra.token !== undefined ? { HF_TOKEN: extra.token } : {}) },
      stallMs: 400,
      retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
      log: (l) => logs.push(l),
      onEvent: (e) => logs.push(JSON.stringify(e)),
      ...extra,
    });
  } catch (error) {
    assert.ok(error instanceof FetchError, `expected a FetchError, got ${String(error)}`);
    return { error, ...d, logs };
  }
  assert.fail('the fetch should have failed');
}

const fileOf = (path: string): Buffer => {
  const f = modelFiles.find((x) => x.path === path);
  assert.ok(f);
  return f.content;
};

test('a whole model repository downloads at the commit its branch names, every file verified', async () => {
  hub.requests.length = 0;
  hub.maxInFlight = 0;
  // Slow the two LFS transfers a little so their overlap is observable.
  hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'throttle', bytesPerTick: 512 * 1024, tickMs: 5 }, times: 2 });
  const r = await run([{ source: 'hf://acme/tiny-video' }], { concurrency: 4 });
  for (const f of modelFiles) assert.deepEqual(await readFile(join(r.outDir, f.path)), f.content, f.path);
  assert.equal(r.manifest.sources[0]?.commit, COMMIT_MAIN);
  assert.equal(r.manifest.files.length, modelFiles.length);
  const big = r.manifest.files.find((f) => f.relPath === 'weights/model.safetensors');
  assert.equal(big?.sha256, sha256Hex(fileOf('weights/model.safetensors')));
  // Downloads use the pinned sha, never the branch name.
  const resolves = hub.requests.filter((q) => q.kind === 'resolve');
  assert.equal(resolves.length, modelFiles.length);
  for (const q of resolves) assert.ok(q.path.includes(`/resolve/${COMMIT_MAIN}/`), q.path);
  // LFS files come through the CDN redirect; files download in parallel.
  assert.equal(hub.requests.filter((q) => q.kind === 'cdn').length, 2);
  assert.ok(hub.maxInFlight >= 2, `max in flight ${hub.maxInFlight}`);
  // Progress is in bytes and ends at the total.
  const last = r.progress[r.progress.length - 1];
  const total = modelFiles.reduce((s, f) => s + f.content.length, 0);
  assert.equal(last?.totalBytes, total);
  assert.equal(last?.doneBytes, total);
  assert.equal(last?.filesDone, modelFiles.length);
  // Nothing left behind in the work dir's staging area.
  assert.deepEqual(await readdir(join(r.workDir, 'parts')), []);
});

test('a tag, a folder, a single file and a dataset repository, with pagination of the tree API', async () => {
  hub.pageSize = 2;
  try {
    const r = await run([
      { source: 'hf://acme/tiny-video@v1/config.json', into: 'v1' },
      { source: 'hf://acme/tiny-video/weights', into: 'w' },
      { source: 'hf://datasets/acme/clips', into: 'data' },
    ]);
    assert.deepEqual(await readFile(join(r.outDir, 'v1', 'config.json')), modelFilesV1[0]?.content);
    assert.deepEqual(await readFile(join(r.outDir, 'w', 'model.safetensors')), fileOf('weights/model.safetensors'));
    assert.deepEqual(await readFile(join(r.outDir, 'w', 'ema.safetensors')), fileOf('weights/ema.safetensors'));
    assert.ok(existsSync(join(r.outDir, 'data', 'ODE6KCausal_chunkwise_1', 'data.mdb')));
    assert.equal((await readdir(join(r.outDir, 'w'))).length, 2);
    assert.deepEqual(r.manifest.sources.map((s) => s.commit), [COMMIT_V1, COMMIT_MAIN, COMMIT_MAIN]);
    assert.ok(hub.requests.some((q) => q.kind === 'api' && q.path.includes('cursor=2')), 'a second tree page was requested');
  } finally {
    hub.pageSize = 1000;
  }
});

test('a connection dropped mid-file resumes with Range from the bytes already on disk', async () => {
  hub.requests.length = 0;
  hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'drop', afterBytes: 1_500_000 }, times: 2 });
  const r = await run([{ source: 'hf://acme/tiny-video/weights/model.safetensors' }]);
  assert.deepEqual(await readFile(join(r.outDir, 'model.safetensors')), fileOf('weights/model.safetensors'));
  const cdn = hub.requests.filter((q) => q.kind === 'cdn');
  assert.equal(cdn.length, 3);
  assert.equal(cdn[0]?.range, undefined);
  const from1 = Number(/bytes=(\d+)-/.exec(cdn[1]?.range ?? '')?.[1]);
  const from2 = Number(/bytes=(\d+)-/.exec(cdn[2]?.range ?? '')?.[1]);
  assert.ok(from1 > 0 && from1 <= 1_500_000, `first resume from ${from1}`);
  assert.ok(from2 > from1, `second resume from ${from2}`);
  // Total bytes over the wire: no more than the file plus what the drops cut off.
  const sent = cdn.reduce((s, q) => s + q.bytesSent, 0);
  assert.ok(sent - LFS_SIZE <= 2 * 256 * 1024, `re-sent ${sent - LFS_SIZE} bytes`);
  assert.equal(r.manifest.receivedBytes, LFS_SIZE);
});

test('500s and a stalled transfer are retried; the stall resumes where it stopped', async () => {
  hub.requests.length = 0;
  hub.addFault({ pathIncludes: 'ema.safetensors', on: 'resolve', fault: { kind: 'status', status: 500 }, times: 2 });
  hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'stall', afterBytes: 100_000 }, times: 1 });
  const t0 = performance.now();
  const r = await run([{ source: 'hf://acme/tiny-video/weights/ema.safetensors' }], { stallMs: 300 });
  assert.deepEqual(await readFile(join(r.outDir, 'ema.safetensors')), fileOf('weights/ema.safetensors'));
  assert.equal(hub.requests.filter((q) => q.kind === 'resolve' && q.status === 500).length, 2);
  const cdn = hub.requests.filter((q) => q.kind === 'cdn');
  assert.equal(cdn.length, 2);
  assert.equal(cdn[1]?.range, 'bytes=100000-');
  assert.ok(r.events.some((e) => e.type === 'retry' && e.message.includes('no bytes')), 'the stall was reported');
  assert.ok(performance.now() - t0 < 5000);
});

test('a wrong checksum is never published: one bad transfer is redone, a persistent one fails clearly', async () => {
  hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'corrupt', at: 123_456 }, times: 1 });
  const ok = await run([{ source: 'hf://acme/tiny-video/weights/ema.safetensors' }]);
  assert.deepEqual(await readFile(join(ok.outDir, 'ema.safetensors')), fileOf('weights/ema.safetensors'));
  assert.ok(ok.events.some((e) => e.type === 'restart' && e.reason.includes('sha256')));

  hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'corrupt', at: 10 }, times: Infinity });
  try {
    const bad = await runFailing([{ source: 'hf://acme/tiny-video/weights/ema.safetensors' }]);
    assert.equal(bad.error.code, 'checksum');
    assert.match(bad.error.message, /ema\.safetensors: sha256 [0-9a-f]{64} differs from the hub's [0-9a-f]{64}.*nothing was published/);
    assert.equal(existsSync(join(bad.outDir, 'ema.safetensors')), false);
    assert.equal(existsSync(join(bad.workDir, 'verified', 'ema.safetensors')), false);
  } finally {
    hub.faults.length = 0;
  }

  // A non-LFS file is checked against its git blob sha1.
  hub.addFault({ pathIncludes: 'config.json', on: 'resolve', fault: { kind: 'corrupt', at: 3 }, times: Infinity });
  try {
    const bad = await runFailing([{ source: 'hf://acme/tiny-video/config.json' }]);
    assert.match(bad.error.message, /git blob sha1/);
    assert.equal(existsSync(join(bad.outDir, 'config.json')), false);
  } finally {
    hub.faults.length = 0;
  }
});

test('a server that ignores Range restarts the file from zero and still verifies', async () => {
  hub.requests.length = 0;
  hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'drop', afterBytes: 1_500_000 }, times: 1 });
  hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'ignore-range' }, times: 1 });
  const r = await run([{ source: 'hf://acme/tiny-video/weights/model.safetensors' }]);
  assert.deepEqual(await readFile(join(r.outDir, 'model.safetensors')), fileOf('weights/model.safetensors'));
  assert.ok(r.events.some((e) => e.type === 'restart' && e.reason.includes('whole file')), JSON.stringify(r.events.filter((e) => e.type !== 'written')));
  assert.ok(hub.requests.filter((q) => q.kind === 'cdn')[1]?.range !== undefined, 'the second request asked for a range');
});

test('401, 403 and 404 fail at once with a message that says what to do, and never show the token', async () => {
  hub.requests.length = 0;
  const noToken = await runFailing([{ source: 'hf://acme/private' }]);
  assert.equal(noToken.error.code, 'unauthorized');
  assert.match(noToken.error.message, /401 Unauthorized .*set HF_TOKEN/);
  assert.equal(hub.requests.length, 1, 'a 401 is not retried');

  const wrong = 'hf_WRONGtoken0987654321';
  const bad = await runFailing([{ source: 'hf://acme/private' }], { token: wrong });
  assert.match(bad.error.message, /token in HF_TOKEN was rejected/);
  assert.ok(!bad.error.message.includes(wrong));

  const gated = await runFailing([{ source: 'hf://acme/gated' }], { token: TOKEN });
  assert.equal(gated.error.code, 'forbidden');
  assert.match(gated.error.message, /403 Forbidden .*gated or private/);

  for (const [source, what] of [
    ['hf://acme/missing-repo', /404 Not Found: revision "main" of model repository acme\/missing-repo/],
    ['hf://acme/tiny-video@no-such-branch', /404 Not Found: revision "no-such-branch"/],
    ['hf://acme/tiny-video/no/such/file.bin', /404 Not Found: "no\/such\/file.bin" does not exist in hf:\/\/acme\/tiny-video/],
    ['hf://datasets/acme/tiny-video', /404 Not Found: revision "main" of dataset repository acme\/tiny-video/],
  ] as const) {
    const f = await runFailing([{ source }], { token: TOKEN });
    assert.equal(f.error.code, 'not-found', source);
    assert.match(f.error.message, what);
  }
});

test('the token goes to the hub only: not to the CDN, not into logs, events or errors', async () => {
  hub.requests.length = 0;
  hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'status', status: 503 }, times: 1 });
  const r = await run([{ source: 'hf://acme/private/weights' }], { token: TOKEN });
  assert.deepEqual(await readFile(join(r.outDir, 'model.safetensors')), fileOf('weights/model.safetensors'));
  const hubSide = hub.requests.filter((q) => q.kind !== 'cdn');
  assert.ok(hubSide.length > 0 && hubSide.every((q) => q.authorization === `Bearer ${TOKEN}`));
  const cdn = hub.requests.filter((q) => q.kind === 'cdn');
  assert.ok(cdn.length >= 3 && cdn.every((q) => q.authorization === undefined), 'the CDN never sees the token');
  const everything = [...r.logs, ...r.events.map((e) => JSON.stringify(e)), JSON.stringify(r.manifest)].join('\n');
  assert.ok(everything.includes('503'), 'the retry was logged');
  assert.ok(!everything.includes(TOKEN));
  // An error message that would quote the token (a server echoing it in a host name) is redacted.
  const failing = await runFailing([{ source: `https://${TOKEN}.invalid/x.bin` }], { token: TOKEN, retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } });
  assert.ok(!failing.error.message.includes(TOKEN), failing.error.message);
  assert.ok(!failing.logs.join('\n').includes(TOKEN));
});

test('a plain URL downloads with an optional sha256 and size; a mismatch fails', async () => {
  const blob = fileOf('weights/ema.safetensors');
  const oid = sha256Hex(blob);
  const url = `${hub.cdnUrl}/lfs/${oid}`;
  const r = await run([{ source: url, sha256: oid, size: blob.length }]);
  assert.deepEqual(await readFile(join(r.outDir, oid)), blob);
  const bad = await runFailing([{ source: url, sha256: '0'.repeat(64) }]);
  assert.equal(bad.error.code, 'checksum');
  assert.equal(existsSync(join(bad.outDir, oid)), false);
});

test('a rerun after a failure skips verified files and resumes the partial one', async () => {
  hub.requests.length = 0;
  const d = await dirs();
  const base = { sources: [{ source: 'hf://acme/tiny-video/weights' }], ...d, env: { HF_ENDPOINT: hub.url }, stallMs: 400, concurrency: 2 };
  // First run: ema (300 kB) completes, model.safetensors fails with 502s after a drop mid-file.
  hub.addFault({ pathIncludes: 'model.safetensors', on: 'cdn', fault: { kind: 'drop', afterBytes: 2_000_000 }, times: 1 });
  hub.addFault({ pathIncludes: 'model.safetensors', on: 'cdn', fault: { kind: 'status', status: 502 }, times: Infinity });
  await assert.rejects(fetchAll({ ...base, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 } }), (e: unknown) => e instanceof FetchError && /502/.test(e.message));
  assert.equal(existsSync(join(d.outDir, 'ema.safetensors')), false, 'nothing published while the stage is incomplete');
  const parts = await readdir(join(d.workDir, 'parts'));
  const part = parts.find((p) => p.endsWith('model.safetensors.part'));
  assert.ok(part);
  const partial = (await stat(join(d.workDir, 'parts', part))).size;
  assert.ok(partial > 0 && partial <= 2_000_000);
  hub.faults.length = 0;
  hub.requests.length = 0;
  const m = await fetchAll({ ...base, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 } });
  assert.deepEqual(await readFile(join(d.outDir, 'model.safetensors')), fileOf('weights/model.safetensors'));
  assert.deepEqual(await readFile(join(d.outDir, 'ema.safetensors')), fileOf('weights/ema.safetensors'));
  assert.equal(hub.requests.filter((q) => q.path.includes('ema.safetensors')).length, 0, 'the verified file was not fetched again');
  const cdn = hub.requests.filter((q) => q.kind === 'cdn');
  assert.deepEqual(cdn.map((q) => q.range), [`bytes=${partial}-`]);
  assert.equal(m.receivedBytes, LFS_SIZE - partial);
});
