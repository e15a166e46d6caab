// Download throughput of the fetch core from the local hub server, beside curl on the same file
// in the same run. Run: npx tsc -p . && node dist/test/bench/fetch_throughput.js [MiB]
// Both go through the hub's resolve URL and its redirect to the CDN origin; cfpipe also hashes
// (sha256) and verifies while writing, curl does not.
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { mkdtemp, rm } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchAll } from '../../runner/fetch/fetch.js';
import { fromRoot } from '../util/paths.js';

const mib = Number(process.argv[2] ?? '256');
const size = mib * 1024 * 1024;
const commit = 'c'.repeat(40);
const server = spawn(process.execPath, [fromRoot('dist', 'test', 'bench', 'fetch_server_process.js'), String(size)], { stdio: ['ignore', 'pipe', 'inherit'] });
const hub = await new Promise<{ url: string }>((resolve) => createInterface({ input: server.stdout }).once('line', (l) => resolve(JSON.parse(l) as { url: string })));
const scratch = await mkdtemp(join(tmpdir(), 'cfpipe-bench-fetch-'));
const url = `${hub.url}/bench/big/resolve/${commit}/big.bin`;
const rate = (seconds: number): number => size / 1e6 / seconds;

const curlTimes: number[] = [];
const ourTimes: number[] = [];
try {
  for (let round = 0; round < 3; round++) {
    const curlOut = join(scratch, `curl-${round}.bin`);
    let t = performance.now();
    // Async: the server lives in this process and must keep serving while curl runs.
    await promisify(execFile)('curl', ['-sSfL', '-o', curlOut, url]);
    curlTimes.push((performance.now() - t) / 1000);
    if (statSync(curlOut).size !== size) throw new Error('curl wrote the wrong size');
    await rm(curlOut);

    t = performance.now();
    await fetchAll({ sources: [{ source: 'hf://bench/big/big.bin' }], outDir: join(scratch, `out-${round}`), workDir: join(scratch, `work-${round}`), env: { HF_ENDPOINT: hub.url } });
    ourTimes.push((performance.now() - t) / 1000);
    await rm(join(scratch, `out-${round}`), { recursive: true });
  }
} finally {
  server.kill('SIGTERM');
  await rm(scratch, { recursive: true, force: true });
}
const best = (xs: number[]): number => Math.min(...xs);
console.log(`file: ${mib} MiB over 127.0.0.1 (hub resolve → 302 → CDN origin), best of 3`);
console.log(`curl -L            : ${rate(best(curlTimes)).toFixed(0)} MB/s  (${curlTimes.map((s) => s.toFixed(2)).join(' ')} s)`);
console.log(`cfpipe fetch+verify: ${rate(best(ourTimes)).toFixed(0)} MB/s  (${ourTimes.map((s) => s.toFixed(2)).join(' ')} s)`);
console.log(`ratio cfpipe/curl  : ${(best(curlTimes) / best(ourTimes)).toFixed(2)}`);
