// kill -9 of a real downloader process mid-file, then a restart: it resumes from the partial file
// with Range, and the bytes fetched twice are bounded by one chunk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { HubServer } from './hub_server.js';
import { LFS_SIZE, modelFiles, testRepos } from './fixtures.js';
import { fromRoot } from '../util/paths.js';
import { WRITE_CHUNK } from '../../runner/fetch/download.js';

const child = fromRoot('dist', 'test', 'fetch', 'fetch_child.js');

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: { type: string; onDisk?: number; offset?: number; receivedBytes?: number }[];
}

function runChild(args: object, env: NodeJS.ProcessEnv, killWhenOnDisk?: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, JSON.stringify(args)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: ChildRun['lines'] = [];
    createInterface({ input: p.stdout }).on('line', (l) => {
      const e = JSON.parse(l) as ChildRun['lines'][number];
      lines.push(e);
      if (killWhenOnDisk !== undefined && (e.onDisk ?? 0) >= killWhenOnDisk && p.exitCode === null) p.kill('SIGKILL');
    });
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, lines }));
  });
}

test('kill -9 mid-download, restart: resumes from the partial file with Range, re-downloads at most one chunk', async () => {
  const hub = await HubServer.start(testRepos());
  const scratch = await mkdtemp(join(tmpdir(), 'cfpipe-fetch-kill-'));
  try {
    const args = { sources: [{ source: 'hf://acme/tiny-video/weights/model.safetensors' }], outDir: join(scratch, 'out'), workDir: join(scratch, 'work') };
    const env = { HF_ENDPOINT: hub.url };
    // ~3 MB/s in 32 KiB pieces, so the kill lands mid-file.
    hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'throttle', bytesPerTick: 32 * 1024, tickMs: 10 }, times: 1 });
    const first = await runChild(args, env, 1_000_000);
    assert.equal(first.signal, 'SIGKILL');
    const parts = await readdir(join(args.workDir, 'parts'));
    const part = parts.find((p) => p.endsWith('.part'));
    assert.ok(part, `partial file kept: ${parts.join(', ')}`);
    const onDisk = (await stat(join(args.workDir, 'parts', part)).then((s) => s.size));
    const lastReported = Math.max(...first.lines.map((l) => l.onDisk ?? 0));
    assert.ok(onDisk >= lastReported, `nothing reported written was lost (${onDisk} >= ${lastReported})`);
    assert.ok(onDisk < LFS_SIZE);
    const sentFirst = hub.requestsFor('/lfs/', 'cdn').reduce((s, q) => s + q.bytesSent, 0);

    hub.requests.length = 0;
    const second = await runChild(args, env);
    assert.equal(second.code, 0);
    const cdn = hub.requestsFor('/lfs/', 'cdn');
    assert.equal(cdn.length, 1);
    assert.equal(cdn[0]?.range, `bytes=${onDisk}-`);
    assert.equal(cdn[0]?.bytesSent, LFS_SIZE - onDisk);
    const expected = modelFiles.find((f) => f.path === 'weights/model.safetensors')?.content;
    assert.deepEqual(await readFile(join(args.outDir, 'model.safetensors')), expected);
    // Bytes the server sent twice: what the killed process received but had not yet written.
    const redownloaded = sentFirst - onDisk;
    assert.ok(redownloaded >= 0 && redownloaded <= WRITE_CHUNK, `re-downloaded ${redownloaded} bytes`);
    process.stdout.write(`# kill -9 at ${onDisk} bytes on disk; re-downloaded ${redownloaded} bytes (bound ${WRITE_CHUNK})\n`);
  } finally {
    await hub.close();
    await rm(scratch, { recursive: true, force: true });
  }
});
