// `file:` sources: local files and folders copied into the fetch output with the same checks as a
// download (size, optional sha256, verified before published), through the fetch core and
// through the real `fetch` kind in a worker process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchAll } from '../../runner/fetch/fetch.js';
import type { FetchOptions, FetchProgress } from '../../runner/fetch/fetch.js';
import type { DownloadEvent } from '../../runner/fetch/download.js';
import { FetchError } from '../../runner/fetch/errors.js';
import { formatSource, parseSource } from '../../runner/fetch/source.js';
import { bytesOf } from './hub_server.js';
import { makeTask, runWorker } from './worker_harness.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const BIG = bytesOf(3 * 1024 * 1024 + 777, 21); // several read chunks, not chunk-aligned
const SMALL = Buffer.from('lr: 0.001\nsteps: 10\n');

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'cfpipe-fetch-local-'));
  await mkdir(join(root, 'data', 'weights'), { recursive: true });
  await writeFile(join(root, 'data', 'big.bin'), BIG);
  await writeFile(join(root, 'data', 'settings.yaml'), SMALL);
  await writeFile(join(root, 'data', 'weights', 'a b.safetensors'), bytesOf(1000, 22));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let n = 0;
interface Run {
  outDir: string;
  workDir: string;
  events: DownloadEvent[];
  progress: FetchProgress[];
  logs: string[];
}
async function run(sources: FetchOptions['sources'], reuse?: { outDir: string; workDir: string }): Promise<Run & { manifest: Awaited<ReturnType<typeof fetchAll>> }> {
  n++;
  const d = reuse ?? { outDir: join(root, 'runs', `out${n}`), workDir: join(root, 'runs', `work${n}`) };
  const r: Run = { ...d, events: [], progress: [], logs: [] };
  const manifest = await fetchAll({ sources, ...d, root, onEvent: (e) => r.events.push(e), onProgress: (p) => r.progress.push(p), log: (l) => r.logs.push(l) });
  return { ...r, manifest };
}
async function runFailing(sources: FetchOptions['sources']): Promise<{ error: FetchError; outDir: string; workDir: string }> {
  n++;
  const d = { outDir: join(root, 'runs', `out${n}`), workDir: join(root, 'runs', `work${n}`) };
  try {
    await fetchAll({ sources, ...d, root });
  } catch (err) {
    assert.ok(err instanceof FetchError, `expected a FetchError, got ${String(err)}`);
    return { error: err, ...d };
  }
  assert.fail('the fetch succeeded');
}

test('file: sources parse as absolute (file:///, file://localhost/) or project-relative (file:path); other hosts refused', () => {
  const abs = parseSource('file:///srv/models/base.safetensors');
  assert.deepEqual(abs, { ok: true, value: { kind: 'local', path: '/srv/models/base.safetensors' } });
  assert.deepEqual(parseSource('file://localhost/srv/x.bin'), { ok: true, value: { kind: 'local', path: '/srv/x.bin' } });
  assert.deepEqual(parseSource('file:configs/default_config.yaml'), { ok: true, value: { kind: 'local', path: 'configs/default_config.yaml' } });
  assert.deepEqual(parseSource('file:///tmp/a%20b.bin'), { ok: true, value: { kind: 'local', path: '/tmp/a b.bin' } });
  const remote = parseSource('file://fileserver/share/x.bin');
  assert.ok(!remote.ok && /this machine only/.test(remote.message) && remote.message.includes('fileserver'), JSON.stringify(remote));
  const empty = parseSource('file:');
  assert.ok(!empty.ok && /names no file/.test(empty.message));
  const bare = parseSource('configs/x.yaml');
  assert.ok(!bare.ok && bare.message.includes('file:path/relative/to/the/project'), JSON.stringify(bare));
  for (const text of ['file:///srv/a b.bin', 'file:configs/x.yaml']) {
    const parsed = parseSource(text);
    assert.ok(parsed.ok);
    const again = parseSource(formatSource(parsed.value));
    assert.deepEqual(again, parsed, `${text} survives formatting`);
  }
});

test('fetch file: a project-relative file is copied byte for byte, hashed, with byte progress and a verified event', async () => {
  const r = await run([{ source: 'file:data/big.bin' }]);
  assert.deepEqual(await readFile(join(r.outDir, 'big.bin')), BIG);
  assert.deepEqual(r.manifest.files, [{ relPath: 'big.bin', size: BIG.length, sha256: sha(BIG), source: 'file:data/big.bin' }]);
  assert.equal(r.manifest.receivedBytes, 0, 'nothing came over the network');
  const last = r.progress.at(-1);
  assert.ok(last !== undefined && last.doneBytes === BIG.length && last.totalBytes === BIG.length && last.filesDone === 1, JSON.stringify(last));
  assert.ok(r.progress.length >= 2, 'progress starts at 0 and ends at the total');
  assert.deepEqual(
    r.events.filter((e) => e.type === 'verified'),
    [{ type: 'verified', file: 'file:data/big.bin', sha256: sha(BIG), size: BIG.length }],
  );
  assert.ok(r.events.filter((e) => e.type === 'written').length >= 3, 'written in several chunks');
  assert.ok(r.logs.some((l) => l.includes(join(root, 'data', 'big.bin'))), r.logs.join('\n'));
});

test('fetch file: an absolute file:/// URL with the right sha256 and size passes; a wrong sha256 publishes nothing', async () => {
  const url = `file://${join(root, 'data', 'settings.yaml')}`;
  const ok = await run([{ source: url, sha256: sha(SMALL).toUpperCase(), size: SMALL.length }]);
  assert.deepEqual(await readFile(join(ok.outDir, 'settings.yaml')), SMALL);

  const wrong = 'f'.repeat(64);
  const bad = await runFailing([{ source: url, sha256: wrong }]);
  assert.equal(bad.error.code, 'checksum');
  assert.match(bad.error.message, new RegExp(`sha256 ${sha(SMALL)} differs from the expected ${wrong}; nothing was published`));
  assert.ok(!existsSync(join(bad.outDir, 'settings.yaml')), 'no output');
  assert.ok(!existsSync(join(bad.workDir, 'verified', 'settings.yaml')), 'no verified copy');

  const size = await runFailing([{ source: url, size: SMALL.length + 1 }]);
  assert.equal(size.error.code, 'checksum');
  assert.match(size.error.message, new RegExp(`is ${SMALL.length} bytes but the stage expects size = ${SMALL.length + 1}`));
});

test('fetch file: a missing file fails with its absolute path and the project root; a folder with sha256 is refused', async () => {
  const missing = await runFailing([{ source: 'file:data/nope.yaml' }]);
  assert.equal(missing.error.code, 'not-found');
  assert.equal(missing.error.message, `file:data/nope.yaml: no file or folder at ${join(root, 'data', 'nope.yaml')} (relative paths start at the project root ${root})`);
  const abs = await runFailing([{ source: 'file:///no/such/cfpipe/file.bin' }]);
  assert.equal(abs.error.message, 'file:///no/such/cfpipe/file.bin: no file or folder at /no/such/cfpipe/file.bin');
  const folderSha = await runFailing([{ source: 'file:data/weights', sha256: 'a'.repeat(64) }]);
  assert.match(folderSha.error.message, /is a folder; sha256 and size apply to a single file/);
});

test('fetch file: a folder is copied whole (nested paths kept, `into` honoured) beside another source', async () => {
  const r = await run([{ source: 'file:data', into: 'copy' }, { source: 'file:data/settings.yaml' }]);
  const listed = (await readdir(r.outDir, { recursive: true })).sort();
  assert.deepEqual(listed, ['copy', 'copy/big.bin', 'copy/settings.yaml', 'copy/weights', 'copy/weights/a b.safetensors', 'settings.yaml']);
  assert.deepEqual(await readFile(join(r.outDir, 'copy', 'weights', 'a b.safetensors')), bytesOf(1000, 22));
  assert.deepEqual(r.manifest.files.map((f) => f.relPath), ['copy/big.bin', 'copy/settings.yaml', 'copy/weights/a b.safetensors', 'settings.yaml']);
});

test('fetch file: a rerun in the same work dir skips a verified copy, and copies again once the file changed', async () => {
  const src = join(root, 'data', 'changing.txt');
  await writeFile(src, 'first version\n');
  const first = await run([{ source: 'file:data/changing.txt' }]);
  assert.equal(await readFile(join(first.outDir, 'changing.txt'), 'utf8'), 'first version\n');
  // The core publishes by moving out of work/verified; put the copy back as an interrupted
  // stage's work dir would still hold it (the output had not been published yet).
  await mkdir(join(first.workDir, 'verified'), { recursive: true });
  await writeFile(join(first.workDir, 'verified', 'changing.txt'), 'first version\n');
  await rm(first.outDir, { recursive: true });
  const again = await run([{ source: 'file:data/changing.txt' }], first);
  assert.equal(again.events.filter((e) => e.type === 'written').length, 0, 'not copied again');
  assert.ok(again.logs.some((l) => l.includes('1 already verified, 0 to download')), again.logs.join('\n'));
  assert.equal(await readFile(join(again.outDir, 'changing.txt'), 'utf8'), 'first version\n');

  await writeFile(src, 'second version!\n');
  await utimes(src, new Date(), new Date(Date.now() + 5000));
  await mkdir(join(first.workDir, 'verified'), { recursive: true });
  await writeFile(join(first.workDir, 'verified', 'changing.txt'), 'first version\n');
  await rm(first.outDir, { recursive: true });
  const changed = await run([{ source: 'file:data/changing.txt' }], first);
  assert.equal(await readFile(join(changed.outDir, 'changing.txt'), 'utf8'), 'second version!\n');
  assert.equal(changed.events.filter((e) => e.type === 'verified').length, 1);
});

test('fetch kind: `source = "file:…"` into a file output relative to the task root; `url` is the older spelling; a missing file is one clear line', async () => {
  const out = join(root, 'kind-out', 'settings.yaml');
  await mkdir(join(root, 'kind-out'), { recursive: true });
  const variants: { readonly [k: string]: string }[] = [{ source: 'file:data/settings.yaml', sha256: sha(SMALL) }, { url: 'file:data/settings.yaml' }];
  for (const [i, params] of variants.entries()) {
    await rm(out, { force: true });
    const task = makeTask('fetch', params, [{ name: 'yaml', type: 'file' }]);
    const r = await runWorker({ task, inputs: {}, outputs: { yaml: out }, workDir: join(root, `kw${i}`), root, device: 'cpu' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(out), SMALL);
    assert.match(r.stdout, /fetched 1 files, 20 B \(0 B over the network this run\), all verified/);
    const progress = r.messages.filter((m) => m.t === 'progress').at(-1);
    assert.ok(progress?.t === 'progress' && progress.step === SMALL.length && progress.total === SMALL.length, JSON.stringify(progress));
  }

  const task = makeTask('fetch', { source: 'file:data/missing.yaml' }, [{ name: 'yaml', type: 'file' }]);
  const bad = await runWorker({ task, inputs: {}, outputs: { yaml: join(root, 'kind-out', 'missing.yaml') }, workDir: join(root, 'kw-missing'), root, device: 'cpu' });
  assert.notEqual(bad.code, 0);
  const failed = bad.messages.find((m) => m.t === 'failed');
  assert.equal(failed?.t === 'failed' ? failed.message : '', `fetch: file:data/missing.yaml: no file or folder at ${join(root, 'data', 'missing.yaml')} (relative paths start at the project root ${root})`);
  assert.ok(!bad.stderr.includes('    at '), 'no stack trace for a user error');
});
