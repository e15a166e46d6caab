// The runner end to end on real processes: caching, resume after a graceful stop, corrupt
// checkpoints and outputs, the lock, failures that publish nothing partial.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { checkpointPath, listCheckpointSteps } from '../../runner/kinds/checkpoints.js';
import { closeStore, openStore, SCHEMA_VERSION } from '../../runner/store/store.js';
import { tryLock } from '../../runner/store/lock.js';
import { makeGraph } from './fixtures/graphs.js';
import { ofType, runToEnd, startRun, tempRoot, writeGraph } from './fixtures/harness.js';

const chain = (n = 30, work = 20000) =>
  makeGraph([
    { id: 'a', kind: 'steps', params: { n, checkpoint_every: 5, work }, outputs: [{ name: 'out', publish: 'pub/a.txt' }] },
    { id: 'b', kind: 'exec', params: { command: 'cat {in.x} {in.x} > {out.out}' }, inputs: { x: 'a.out' }, outputs: [{ name: 'out', publish: 'pub/b.txt' }] },
    { id: 'c', kind: 'steps', params: { n: 5 }, inputs: { x: 'b.out' } },
  ]);

const started = (events: Parameters<typeof ofType>[0]): string[] => ofType(events, 'task-started').map((e) => e.id);

/** Two fresh projects holding the same long chain; the first (the reference) already run to the end. */
async function besideReference(): Promise<{ reference: string; root: string }> {
  const reference = tempRoot();
  writeGraph(reference, chain(40, 200000));
  assert.equal((await runToEnd(reference)).code, 0);
  const root = tempRoot();
  writeGraph(root, chain(40, 200000));
  return { reference, root };
}

/** Runs `body` with a tmpfs mounted on `dir` (mount -o `options`), unmounting it after; skips the test where mounting is refused. */
async function withTmpfs(t: TestContext, dir: string, options: string, what: string, body: () => Promise<void>): Promise<void> {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  } catch {
    t.skip(`cannot mount ${what} here (needs root)`);
    return;
  }
  try {
    await body();
  } finally {
    execFileSync('umount', [dir]);
  }
}

describe('caching', () => {
  test('a second run finds every task fresh; a changed param reruns that task and its dependents', async () => {
    const root = tempRoot();
    writeGraph(root, chain());
    const first = await runToEnd(root);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(started(first.events), ['a', 'b', 'c']);
    const a1 = readFileSync(join(root, 'pub/a.txt'));
    const second = await runToEnd(root);
    assert.equal(second.code, 0);
    assert.deepEqual(started(second.events), []);
    assert.equal(ofType(second.events, 'task-cached').length, 3);
    writeGraph(root, chain(31));
    const third = await runToEnd(root);
    assert.deepEqual(started(third.events), ['a', 'b', 'c']);
    assert.notDeepEqual(readFileSync(join(root, 'pub/a.txt')), a1);
  });

  test('a corrupt published output makes its producer rerun; a missing one is copied again', async () => {
    const root = tempRoot();
    writeGraph(root, chain());
    assert.equal((await runToEnd(root)).code, 0);
    const good = readFileSync(join(root, 'pub/b.txt'));
    const flipped = Buffer.from(good);
    flipped[3] = flipped[3]! ^ 0x55;
    writeFileSync(join(root, 'pub/b.txt'), flipped);
    const rerun = await runToEnd(root);
    assert.equal(rerun.code, 0);
    assert.deepEqual(started(rerun.events), ['b']);
    assert.deepEqual(readFileSync(join(root, 'pub/b.txt')), good);
    execFileSync('rm', [join(root, 'pub/a.txt')]);
    const again = await runToEnd(root);
    assert.deepEqual(started(again.events), []);
    assert.ok(existsSync(join(root, 'pub/a.txt')));
  });

  test('--force reruns one stage; --from reruns it and everything downstream', async () => {
    const root = tempRoot();
    writeGraph(root, chain());
    assert.equal((await runToEnd(root)).code, 0);
    assert.deepEqual(started((await runToEnd(root, ['--force', 'b'])).events), ['b']);
    assert.deepEqual(started((await runToEnd(root, ['--from', 'b'])).events), ['b', 'c']);
  });
});

describe('resume', () => {
  test('SIGTERM checkpoints at the next step; the rerun continues there and ends identical', async () => {
    const { reference, root } = await besideReference();
    const run = startRun(root);
    run.onEvent((e) => {
      if (e.type === 'task-progress' && e.id === 'a' && e.step >= 7) run.child.kill('SIGTERM');
    });
    const stopped = await run.exited;
    assert.equal(stopped.code, 130);
    const interrupted = ofType(run.events, 'task-interrupted')[0];
    assert.ok(interrupted !== undefined && interrupted.step !== undefined && interrupted.step >= 7, JSON.stringify(interrupted));
    const rerun = await runToEnd(root);
    assert.equal(rerun.code, 0);
    assert.equal(ofType(rerun.events, 'task-started')[0]?.resumeFrom, interrupted.step);
    assert.equal(ofType(rerun.events, 'task-progress').find((e) => e.id === 'a')?.step, interrupted.step);
    assert.deepEqual(readFileSync(join(root, 'pub/a.txt')), readFileSync(join(reference, 'pub/a.txt')));
  });

  test('a corrupt latest checkpoint is skipped and the previous one resumed, with identical results', async () => {
    const { reference, root } = await besideReference();
    const run = startRun(root);
    run.onEvent((e) => {
      if (e.type === 'task-checkpoint' && e.id === 'a' && e.step === 10) run.child.kill('SIGKILL');
    });
    await run.exited;
    // The orphaned worker stops within 200 ms of losing its runner (and may write one more checkpoint).
    await new Promise((r) => setTimeout(r, 600));
    const work = join(root, '.cfpipe', 'work');
    const dir = join(work, readdirSync(work)[0]!);
    const latest = Math.max(...(await listCheckpointSteps(dir)));
    assert.ok(latest >= 10);
    truncateSync(checkpointPath(dir, latest), 50);
    const rerun = await runToEnd(root);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(ofType(rerun.events, 'task-progress').find((e) => e.id === 'a')?.step, latest - 5);
    assert.deepEqual(readFileSync(join(root, 'pub/a.txt')), readFileSync(join(reference, 'pub/a.txt')));
    const log = readFileSync(ofType(rerun.events, 'task-started').find((e) => e.id === 'a')!.log, 'utf8');
    assert.match(log, new RegExp(`checkpoint at step ${latest} is invalid \\(truncated`));
  });
});

describe('the store lock', () => {
  test('a second run exits naming the first; with --wait it waits and then finds everything fresh', async () => {
    const root = tempRoot();
    writeGraph(root, chain(40, 150000));
    const first = startRun(root);
    await new Promise<void>((resolve) => first.onEvent((e) => e.type === 'task-started' && resolve()));
    const second = await runToEnd(root);
    assert.equal(second.code, 3);
    assert.match(second.stderr, new RegExp(`another cfpipe is running on this project's store: pid ${first.child.pid} on `));
    const waiting = await runToEnd(root, ['--wait', '60000']);
    assert.equal((await first.exited).code, 0);
    assert.equal(waiting.code, 0);
    assert.equal(ofType(waiting.events, 'lock-wait').length, 1);
    assert.deepEqual(started(waiting.events), []);
  });

  test('a lock left by a killed runner is taken over', async () => {
    const root = tempRoot();
    const store = openStore(root)!;
    const ghost = execFileSync('sh', ['-c', 'sleep 0 & echo $!'], { encoding: 'utf8' }).trim();
    await store.meta.put('lock', { pid: Number(ghost), host: (await import('node:os')).hostname(), procStart: '1', bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), since: 0, command: 'cfpipe run x' });
    const attempt = tryLock(store, 'test');
    assert.equal(attempt.ok, true);
    assert.equal(attempt.ok && attempt.takenOverFrom?.pid, Number(ghost));
    await closeStore(store);
  });

  test('a store written by a newer cfpipe is refused with a clear message', async () => {
    const root = tempRoot();
    const store = openStore(root)!;
    await store.meta.put('schema', SCHEMA_VERSION + 1);
    await closeStore(store);
    assert.throws(() => openStore(root), /written by a newer cfpipe \(schema 2; this one knows 1\)/);
  });
});

describe('failures', () => {
  test('a command that fails reports its exit code; --keep-going still runs independent tasks', async () => {
    const root = tempRoot();
    writeGraph(root, makeGraph([
      { id: 'bad', kind: 'exec', params: { command: 'echo partial > {out.out}; exit 7' } },
      { id: 'after', kind: 'exec', params: { command: 'cp {in.x} {out.out}' }, inputs: { x: 'bad.out' } },
      { id: 'other', kind: 'exec', params: { command: 'echo ok > {out.out}' } },
    ]));
    const run = await runToEnd(root, ['--keep-going', '-j', '1']);
    assert.equal(run.code, 1);
    assert.match(ofType(run.events, 'task-failed')[0]!.message, /command exited with code 7/);
    assert.deepEqual(ofType(run.events, 'task-skipped').map((e) => e.id), ['after']);
    assert.ok(ofType(run.events, 'task-finished').some((e) => e.id === 'other'));
    assert.equal(existsSync(join(root, '.cfpipe', 'artifacts')) ? readdirSync(join(root, '.cfpipe', 'artifacts')).length : 0, 1);
  });

  test('a retried task succeeds on its second attempt', async () => {
    const root = tempRoot();
    writeGraph(root, makeGraph([{ id: 'flaky', kind: 'exec', retries: 1, params: { command: 'if [ -e {work}/tried ]; then echo ok > {out.out}; else touch {work}/tried; exit 1; fi' } }]));
    const run = await runToEnd(root);
    assert.equal(run.code, 0, JSON.stringify(run.events));
    assert.deepEqual(ofType(run.events, 'task-started').map((e) => e.attempt), [1, 2]);
  });

  test('a full disk fails the task with a clear message and publishes nothing', async (t) => {
    const root = tempRoot();
    await withTmpfs(t, root, 'size=3m', 'a small tmpfs', async () => {
      writeGraph(root, makeGraph([{ id: 'big', kind: 'steps', params: { n: 2, output_bytes: 8_000_000 }, outputs: [{ name: 'out', publish: 'pub/big.bin' }] }]));
      const run = await runToEnd(root);
      assert.equal(run.code, 1, run.stderr);
      assert.match(ofType(run.events, 'task-failed')[0]?.message ?? JSON.stringify(run), /no space left on device/);
      assert.ok(!existsSync(join(root, 'pub', 'big.bin')));
      assert.ok(!existsSync(join(root, '.cfpipe', 'artifacts')) || readdirSync(join(root, '.cfpipe', 'artifacts')).length === 0);
    });
  });

  test('a publish path on a read-only filesystem fails the task with the reason, and nothing is recorded done', async (t) => {
    const root = tempRoot();
    const ro = join(root, 'ro');
    mkdirSync(ro);
    await withTmpfs(t, ro, 'ro,size=1m', 'a read-only tmpfs', async () => {
      writeGraph(root, makeGraph([{ id: 'p', kind: 'exec', params: { command: 'echo x > {out.out}' }, outputs: [{ name: 'out', publish: 'ro/p.txt' }] }]));
      const run = await runToEnd(root);
      assert.equal(run.code, 1);
      assert.match(ofType(run.events, 'task-failed')[0]!.message, /publishing outputs failed: cannot .*read-only filesystem/);
      const again = await runToEnd(root);
      assert.deepEqual(started(again.events), ['p']);
    });
  });
});
