// The exec kind's Slurm path against a real single-host Slurm (slurmctld + slurmd + munged,
// brought up by test/runner/slurm/cluster.sh): submit, poll, output and exit codes collected,
// failures reported with the job's exit code, cancellation on interrupt, a killed runner or
// worker leaving no job behind. Skips, printing why, only where Slurm cannot run at all.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { TaskGraph } from '../../runner/graph.js';
import { makeGraph } from './fixtures/graphs.js';
import { childPids, ofType, runToEnd, startRun, tempRoot, writeGraph } from './fixtures/harness.js';
import { fromRoot } from '../util/paths.js';

const clusterScript = fromRoot('test', 'runner', 'slurm', 'cluster.sh');
const clusterDir = mkdtempSync(join(tmpdir(), 'cfpipe-slurm-'));
const up = spawnSync('sh', [clusterScript, 'up', clusterDir], { encoding: 'utf8', timeout: 300_000 });
const unavailable = up.status === 77 ? up.stderr.trim() : undefined;
if (unavailable) console.log(`# skipping the Slurm tests: ${unavailable}`);
// The runner children inherit it: sbatch, squeue and scancel talk to this cluster only.
if (up.status === 0) process.env.SLURM_CONF = join(clusterDir, 'slurm.conf');

const down = (): void => {
  spawnSync('sh', [clusterScript, 'down', clusterDir], { timeout: 30_000 });
  rmSync(clusterDir, { recursive: true, force: true });
};
process.on('exit', () => {
  if (process.env.SLURM_CONF) down();
});

const jobIdIn = (log: string): string => {
  const id = /submitted Slurm job (\d+)/.exec(log)?.[1];
  assert.ok(id, `no job id in the log:\n${log}`);
  return id;
};

const jobState = (id: string): string => /JobState=(\S+)/.exec(execFileSync('scontrol', ['show', 'job', id], { encoding: 'utf8' }))?.[1] ?? '?';

const queued = (id: string): boolean => execFileSync('squeue', ['-h', '-j', id, '-o', '%T'], { encoding: 'utf8' }).trim() !== '';

async function until(what: string, ms: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const slurmStage = (command: string, extra: object = {}): TaskGraph =>
  makeGraph([{ id: 'job', kind: 'exec', params: { command, launcher: 'slurm', slurm: { poll_seconds: 0.2, time: '5' }, ...extra }, outputs: [{ name: 'out', publish: 'pub/out.txt' }] }]);

// A step loop that checkpoints its counter in the work dir on SIGTERM and resumes from it.
const STEP_LOOP = [
  'i=$(cat {work}/ckpt 2>/dev/null || echo 0); n=$(cat {root}/steps)',
  `trap 'echo $i > {work}/ckpt; echo "cfpipe:checkpoint $i ckpt"; exit 0' TERM`,
  'while [ $i -lt $n ]; do i=$((i+1)); echo "cfpipe:progress $i $n"; sleep 0.1 & wait $!; done',
  'echo $i > {out.out}',
].join('\n');

/** A fresh project whose one Slurm stage is STEP_LOOP counting to `steps`, its run started. */
function startStepLoop(steps: number): { root: string; run: ReturnType<typeof startRun> } {
  const root = tempRoot();
  writeFileSync(join(root, 'steps'), `${steps}\n`);
  writeGraph(root, slurmStage(STEP_LOOP));
  return { root, run: startRun(root) };
}

/** The Slurm job id in the log of the first task that `events` saw start. */
const firstJobId = (events: Parameters<typeof ofType>[0]): string => jobIdIn(readFileSync(ofType(events, 'task-started')[0]!.log, 'utf8'));

describe('exec stages under a real Slurm', { skip: unavailable, timeout: 120_000 }, () => {
  after(() => {
    down();
    delete process.env.SLURM_CONF;
  });

  test('the cluster came up', () => {
    assert.equal(up.status, 0, `cluster.sh up failed:\n${up.stderr}`);
  });

  test('a job runs end to end: output collected and published, progress lines shown, rerun fresh', async () => {
    const root = tempRoot();
    writeFileSync(join(root, 'in.txt'), 'hello from slurm\n');
    const graph = makeGraph([
      {
        id: 'gen',
        kind: 'exec',
        params: {
          command: 'echo "inside job $SLURM_JOB_ID"; echo "cfpipe:progress 1 2"; cat {in.src} > {out.out}; echo "cfpipe:progress 2 2"; printf "no newline at the end"',
          launcher: 'slurm',
          slurm: { poll_seconds: 0.2 },
        },
        inputs: { src: 'path:in.txt' },
      },
      { id: 'use', kind: 'exec', params: { command: 'tr a-z A-Z < {in.x} > {out.out}' }, inputs: { x: 'gen.out' }, outputs: [{ name: 'out', publish: 'pub/upper.txt' }] },
    ]);
    writeGraph(root, graph);
    const run = await runToEnd(root);
    assert.equal(run.code, 0, run.stderr + JSON.stringify(ofType(run.events, 'task-failed')));
    assert.equal(readFileSync(join(root, 'pub/upper.txt'), 'utf8'), 'HELLO FROM SLURM\n');
    assert.deepEqual(
      ofType(run.events, 'task-progress').filter((e) => e.id === 'gen').map((e) => `${e.step}/${e.total}`),
      ['1/2', '2/2'],
    );
    const log = readFileSync(ofType(run.events, 'task-started').find((e) => e.id === 'gen')!.log, 'utf8');
    const id = jobIdIn(log);
    assert.match(log, new RegExp(`^inside job ${id}$`, 'm'), 'the command ran inside the submitted job');
    assert.match(log, /^no newline at the end$/m);
    assert.doesNotMatch(log, /cfpipe:progress/, 'progress lines are events, not log lines');
    assert.equal(jobState(id), 'COMPLETED');
    const again = await runToEnd(root);
    assert.equal(again.code, 0);
    assert.equal(ofType(again.events, 'task-started').length, 0);
  });

  test('a failing job fails the task with its exit code and publishes nothing', async () => {
    const root = tempRoot();
    writeGraph(root, slurmStage('echo "about to fail"; echo partial > {out.out}; exit 3'));
    const run = await runToEnd(root);
    assert.equal(run.code, 1);
    const failed = ofType(run.events, 'task-failed');
    assert.equal(failed.length, 1);
    assert.match(failed[0]!.message, /^slurm job \d+ ended FAILED \(exit code 3\)$/);
    const log = readFileSync(failed[0]!.log!, 'utf8');
    assert.match(log, /about to fail/);
    assert.equal(jobState(jobIdIn(log)), 'FAILED');
    assert.throws(() => readFileSync(join(root, 'pub/out.txt')));
  });

  test('an interrupt cancels the job with SIGTERM; it checkpoints and the rerun resumes there', async () => {
    const { root, run } = startStepLoop(50);
    // Progress events are thinned (at most ~20/s), so any step from 4 on will do, once.
    let sent = false;
    run.onEvent((e) => {
      if (e.type === 'task-progress' && e.step >= 4 && !sent) sent = run.child.kill('SIGINT');
    });
    const stopped = await run.exited;
    assert.equal(stopped.code, 130, stopped.stderr);
    const interrupted = ofType(run.events, 'task-interrupted');
    assert.equal(interrupted.length, 1);
    const saved = interrupted[0]!.step;
    assert.ok(saved !== undefined && saved >= 4 && saved < 50, `checkpoint step ${saved}`);
    const id = firstJobId(run.events);
    assert.equal(queued(id), false, 'the job has left the queue');
    const rerun = await runToEnd(root);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(ofType(rerun.events, 'task-started')[0]!.resumeFrom, saved);
    assert.equal(ofType(rerun.events, 'task-progress')[0]!.step, saved + 1, 'the job continued from its checkpoint');
    assert.equal(readFileSync(join(root, 'pub/out.txt'), 'utf8'), '50\n');
  });

  test('kill -9 of the runner cancels its running job', async () => {
    const { run } = startStepLoop(100000);
    let sent = false;
    run.onEvent((e) => {
      if (e.type === 'task-progress' && e.step >= 2 && !sent) sent = run.child.kill('SIGKILL');
    });
    await run.exited;
    const id = firstJobId(run.events);
    await until(`job ${id} to leave the queue`, 15_000, () => !queued(id));
    assert.equal(jobState(id), 'CANCELLED');
  });

  test('after kill -9 of the worker, the rerun cancels the job it left and submits a new one', async () => {
    const { root, run } = startStepLoop(100000);
    let sent = false;
    run.onEvent((e) => {
      if (e.type !== 'task-progress' || e.step < 2 || sent) return;
      sent = true;
      for (const pid of childPids(run.child.pid!)) process.kill(pid, 'SIGKILL');
    });
    const first = await run.exited;
    assert.equal(first.code, 1);
    const firstId = firstJobId(run.events);
    assert.equal(queued(firstId), true, 'SIGKILL gave the worker no chance to cancel: the job is still running');
    writeFileSync(join(root, 'steps'), '3\n');
    const rerun = await runToEnd(root);
    assert.equal(rerun.code, 0, rerun.stderr);
    const log = readFileSync(ofType(rerun.events, 'task-started')[0]!.log, 'utf8');
    assert.match(log, new RegExp(`cancelling Slurm job ${firstId} left by an earlier attempt`));
    assert.notEqual(jobIdIn(log), firstId);
    assert.equal(jobState(firstId), 'CANCELLED');
  });
});
