// Benchmark of the binding's I/O and job plumbing (prints figures; no pass/fail):
// checkpoint save (serialise + XXH64 + fsync + rename) and newest-valid load with verification,
// against a plain fs.writeFileSync/readFileSync of the same bytes measured in the same run; and
// the cost of one progress event from a native job thread to a JS callback.
// Run: npx tsc -p . && node_modules/.bin/node dist/test/bench/native-io.js
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fitLinear, latestCheckpoint, saveCheckpoint } from '../../native/index.js';

const dir = mkdtempSync(join(tmpdir(), 'cfpipe-bench-io-'));
const mib = 16;
const w = new Float32Array((mib << 20) / 4).map((_, i) => i * 1e-6);
const reps = 5;
try {
  let t = performance.now();
  for (let i = 1; i <= reps; i++) {
    saveCheckpoint(dir, { step: i, weights: [{ name: 'generator.w', shape: [w.length], data: w }], state: [{ name: 'optim.m', shape: [w.length], data: w }] });
  }
  const save = (performance.now() - t) / reps;
  t = performance.now();
  for (let i = 0; i < reps; i++) latestCheckpoint(dir);
  const load = (performance.now() - t) / reps;
  const raw = Buffer.from(w.buffer);
  t = performance.now();
  for (let i = 0; i < reps; i++) {
    writeFileSync(join(dir, 'a.bin'), raw);
    writeFileSync(join(dir, 'b.bin'), raw);
  }
  const plainWrite = (performance.now() - t) / reps;
  t = performance.now();
  for (let i = 0; i < reps; i++) {
    readFileSync(join(dir, 'a.bin'));
    readFileSync(join(dir, 'b.bin'));
  }
  const plainRead = (performance.now() - t) / reps;
  const total = 2 * mib;
  console.log(`checkpoint of ${total} MiB: save ${save.toFixed(1)} ms (${((total / save) * 1000).toFixed(0)} MiB/s; plain writeFileSync without fsync ${plainWrite.toFixed(1)} ms, ratio ${(save / plainWrite).toFixed(2)})`);
  console.log(`newest valid checkpoint, verified: ${load.toFixed(1)} ms (${((total / load) * 1000).toFixed(0)} MiB/s; plain readFileSync ${plainRead.toFixed(1)} ms, ratio ${(load / plainRead).toFixed(2)})`);

  const steps = 20_000;
  t = performance.now();
  await fitLinear({ steps, progressEvery: 1e9 });
  const quiet = performance.now() - t;
  t = performance.now();
  await fitLinear({ steps, progressEvery: 1 }, { onProgress: () => {} });
  const chatty = performance.now() - t;
  console.log(`fitLinear ${steps} steps: ${quiet.toFixed(1)} ms without progress events, ${chatty.toFixed(1)} ms with one per step: ${(((chatty - quiet) / steps) * 1000).toFixed(2)} us per event`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
