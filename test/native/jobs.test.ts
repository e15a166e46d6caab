// Native jobs: progress, cooperative cancel through AbortSignal, exact resume (byte-identical to
// an uninterrupted run, also after SIGKILL of the process), their own threads (not the libuv pool).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fitLinear, listCheckpoints, type FitLinearOptions, type FitLinearResult, type JobProgress } from '../../native/index.js';
import { fromRoot } from '../util/paths.js';

const scratch = (): string => mkdtempSync(join(tmpdir(), 'cfpipe-native-job-'));
const problem: FitLinearOptions = { features: 32, samples: 2048, batch: 64, steps: 600, lr: 0.02, momentum: 0.9, seed: 11, checkpointEvery: 100 };

function bytesOf(r: FitLinearResult): Buffer {
  return Buffer.concat([Buffer.from(r.weight.buffer, r.weight.byteOffset, r.weight.byteLength), Buffer.from(Float64Array.from([r.bias, r.loss]).buffer)]);
}

function sameFiles(dirA: string, dirB: string, step: number): void {
  const name = `step-${String(step).padStart(8, '0')}`;
  for (const kind of ['weights', 'state']) {
    const a = readFileSync(join(dirA, `${name}.${kind}.safetensors`));
    const b = readFileSync(join(dirB, `${name}.${kind}.safetensors`));
    assert.ok(a.equals(b), `${name}.${kind}.safetensors differs between the runs`);
  }
}

test('a job reports progress in order and resolves with its result', async () => {
  const seen: JobProgress[] = [];
  const r = await fitLinear({ ...problem, steps: 50, checkpointEvery: 0, progressEvery: 10 }, { onProgress: (p) => seen.push(p) });
  assert.deepEqual(seen.map((p) => p.step), [10, 20, 30, 40, 50]);
  assert.ok(seen.every((p) => p.total === 50 && typeof p.metrics['loss'] === 'number' && p.checkpoint === undefined));
  assert.ok((seen[4]?.metrics['loss'] ?? Infinity) < (seen[0]?.metrics['loss'] ?? 0), 'the loss goes down');
  assert.equal(r.step, 50);
  assert.equal(r.cancelled, false);
  assert.equal(r.weight.length, 32);
});

test('AbortSignal cancels at a step boundary with a checkpoint; resume is byte-identical to an uninterrupted run', async () => {
  const full = scratch();
  const cut = scratch();
  try {
    const uninterrupted = await fitLinear({ ...problem, workDir: full });
    assert.equal(uninterrupted.step, 600);

    const controller = new AbortController();
    const first = await fitLinear({ ...problem, workDir: cut }, {
      signal: controller.signal,
      onProgress: (p) => {
        if (p.step === 130) controller.abort();
      },
    });
    assert.equal(first.cancelled, true);
    assert.ok(first.step >= 130 && first.step < 600, `stopped at ${first.step}`);
    assert.equal(first.checkpoint, join(cut, `step-${String(first.step).padStart(8, '0')}.state.safetensors`));
    assert.ok(listCheckpoints(cut).includes(first.step));

    const resumed = await fitLinear({ ...problem, workDir: cut, resume: true });
    assert.equal(resumed.resumedFrom, first.step);
    assert.equal(resumed.step, 600);
    assert.ok(bytesOf(resumed).equals(bytesOf(uninterrupted)), 'resumed result differs from the uninterrupted one');
    sameFiles(full, cut, 600);
    // Without resume a used workDir is refused rather than silently mixed.
    await assert.rejects(fitLinear({ ...problem, workDir: cut }), /already holds checkpoints \(newest step 600\); pass resume: true/);
  } finally {
    rmSync(full, { recursive: true, force: true });
    rmSync(cut, { recursive: true, force: true });
  }
});

test('after SIGKILL of the process mid-run, resume ends byte-identical to an uninterrupted run', async () => {
  const full = scratch();
  const killed = scratch();
  try {
    const opts = { ...problem, steps: 4000, checkpointEvery: 50, progressEvery: 50 };
    const uninterrupted = await fitLinear({ ...opts, workDir: full });
    const script = join(killed, 'run.mjs');
    writeFileSync(script, `
      const { fitLinear } = await import(${JSON.stringify(fromRoot('dist', 'native', 'index.js'))});
      await fitLinear(${JSON.stringify({ ...opts, workDir: killed })}, { onProgress: (p) => console.log(p.step) });
      console.log('finished');`);
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    for await (const line of createInterface({ input: child.stdout })) {
      if (line === 'finished') break;
      if (Number(line) >= 300) {
        child.kill('SIGKILL');
        break;
      }
    }
    assert.equal(await exited, 'SIGKILL', 'the child was killed before finishing');
    const resumed = await fitLinear({ ...opts, workDir: killed, resume: true });
    assert.ok((resumed.resumedFrom ?? 0) >= 300 && (resumed.resumedFrom ?? 0) < 4000);
    assert.ok(bytesOf(resumed).equals(bytesOf(uninterrupted)));
    sameFiles(full, killed, 4000);
  } finally {
    rmSync(full, { recursive: true, force: true });
    rmSync(killed, { recursive: true, force: true });
  }
});

test('jobs run on their own threads: with more jobs than libuv pool threads, file reads still complete', { timeout: 20_000 }, async () => {
  const controllers = Array.from({ length: 6 }, () => new AbortController());
  let settled = 0;
  const jobs = controllers.map((c) =>
    fitLinear({ features: 16, samples: 512, batch: 32, steps: 1e12, lr: 0.01, progressEvery: 1e9 }, { signal: c.signal }).finally(() => {
      settled += 1;
    }),
  );
  // fs.readFile runs on the libuv pool (4 threads): it would wait forever if the jobs sat there.
  const text = await readFile(fromRoot('package.json'), 'utf8');
  assert.match(text, /"name": "cfpipe"/);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(settled, 0, 'the endless jobs are still running');
  for (const c of controllers) c.abort();
  const results = await Promise.all(jobs);
  assert.ok(results.every((r) => r.cancelled && r.step > 0));
});

test('an already-aborted signal stops before the first step; a throwing onProgress rejects with its error', async () => {
  const r = await fitLinear({ steps: 100 }, { signal: AbortSignal.abort() });
  assert.equal(r.cancelled, true);
  assert.equal(r.step, 0);
  const boom = new Error('stop from the callback');
  await assert.rejects(fitLinear({ steps: 1e9 }, { onProgress: (p) => { if (p.step === 3) throw boom; } }), (e) => e === boom);
});

test('concurrent identical jobs give identical results', async () => {
  const [a, b] = await Promise.all([fitLinear({ ...problem, checkpointEvery: 0 }), fitLinear({ ...problem, checkpointEvery: 0 })]);
  assert.ok(a && b && bytesOf(a).equals(bytesOf(b)));
});
