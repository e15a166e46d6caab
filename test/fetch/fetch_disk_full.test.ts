// A full disk: refused before starting when the free space cannot hold the download, and a clear
// message (partial kept, resumable) when the disk fills up mid-file. Uses a real small tmpfs,
// which needs root; elsewhere the test is skipped with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchAll } from '../../runner/fetch/fetch.js';
import { freeBytes } from '../../runner/fetch/disk.js';
import { FetchError } from '../../runner/fetch/errors.js';
import { HubServer } from './hub_server.js';
import { modelFiles, testRepos } from './fixtures.js';

function mountTmpfs(dir: string, bytes: number): string | undefined {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here (${String((err as Error).message).split('\n')[0]})`;
  }
}

const source = [{ source: 'hf://acme/tiny-video/weights/model.safetensors' }];
const model = (): Buffer | undefined => modelFiles.find((f) => f.path === 'weights/model.safetensors')?.content;

test('a full disk fails with a clear message, keeps the partial file, and resumes once space is freed', async (t) => {
  const scratch = await mkdtemp(join(tmpdir(), 'cfpipe-fetch-disk-'));
  const small = join(scratch, 'small');
  const medium = join(scratch, 'medium');
  const why = mountTmpfs(small, 2 * 1024 * 1024) ?? mountTmpfs(medium, 8 * 1024 * 1024);
  if (why !== undefined) {
    rmSync(scratch, { recursive: true, force: true });
    t.skip(why);
    return;
  }
  const hub = await HubServer.start(testRepos());
  const env = { HF_ENDPOINT: hub.url };
  try {
    // Not enough room to start: refused before any byte is fetched.
    hub.requests.length = 0;
    await assert.rejects(
      fetchAll({ sources: source, outDir: join(scratch, 'out0'), workDir: join(small, 'work'), env }),
      (e: unknown) => e instanceof FetchError && e.code === 'disk-full' && /not enough disk space .*4\.0 MiB still to download, .* free/.test(e.message),
    );
    assert.equal(hub.requestsFor('/lfs/', 'cdn').length, 0);

    // Room at the start, then another process fills the disk mid-file.
    const workDir = join(medium, 'work');
    const filler = join(medium, 'filler');
    let filled = false;
    hub.addFault({ pathIncludes: '/lfs/', on: 'cdn', fault: { kind: 'throttle', bytesPerTick: 32 * 1024, tickMs: 5 }, times: 1 });
    await assert.rejects(
      fetchAll({
        sources: source,
        outDir: join(scratch, 'out1'),
        workDir,
        env,
        onProgress: (p) => {
          if (!filled && p.doneBytes > 500_000) {
            filled = true;
            writeFileSync(filler, Buffer.alloc(Math.max(0, Number(execFileSync('df', ['-B1', '--output=avail', medium]).toString().split('\n')[1]) - 64 * 1024)));
          }
        },
      }),
      (e: unknown) => e instanceof FetchError && e.code === 'disk-full' && /disk full while writing .*\.part, .* free, .* still to download\. The partial file is kept/.test(e.message),
    );
    const parts = (await readdir(join(workDir, 'parts'))).filter((p) => p.endsWith('.part'));
    assert.equal(parts.length, 1);
    rmSync(filler);
    assert.ok((await freeBytes(medium)) > 4 * 1024 * 1024);
    hub.requests.length = 0;
    const m = await fetchAll({ sources: source, outDir: join(scratch, 'out1'), workDir, env });
    assert.deepEqual(await readFile(join(scratch, 'out1', 'model.safetensors')), model());
    const cdn = hub.requestsFor('/lfs/', 'cdn');
    assert.match(cdn[0]?.range ?? '', /^bytes=[1-9]\d*-$/, 'resumed, not restarted');
    assert.ok(m.receivedBytes < 4_000_000, `received ${m.receivedBytes}, ranges ${cdn.map((q) => q.range).join(' ')}`);
  } finally {
    await hub.close();
    for (const dir of [small, medium]) {
      try {
        execFileSync('umount', [dir], { stdio: 'pipe' });
      } catch {
        // not mounted
      }
    }
    await rm(scratch, { recursive: true, force: true });
  }
});
