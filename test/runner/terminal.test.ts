// The interface as a user sees it: `cfpipe run` in a real terminal (tmux, fixed sizes) draws
// listr2 rows; with CI set (or no TTY) it prints plain lines. Snapshots with durations and
// changing numbers normalised. Needs tmux (Debian package `tmux`).

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { RunEvent } from '../../runner/events.js';
import { plainSink } from '../../runner/ui/plain.js';
import { cfpipeBin } from '../util/paths.js';
import { tempRoot } from './fixtures/harness.js';

const PIPELINE = `pipeline "ui-demo"

stage a: steps {
  n = 30
  checkpoint_every = 5
  work = 150000
  publish out to "out/a.txt"
}

stage b: steps {
  n = 20
  work = 150000
  x = a.out
}

stage c: exec {
  command = "cat $CFPIPE_IN_X > $CFPIPE_OUT_OUT"
  x = b.out
  output out: file = "c.txt"
}
`;

const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const normalise = (screen: string): string =>
  screen
    .split('\n')
    .map((l) => l.replace(/\d+(\.\d+)?(ms|s)\b/g, '<t>').replace(/\b\d+ B\b/g, '<n> B').trimEnd())
    .join('\n')
    .trimEnd();

/** Runs cfpipe in a detached tmux session of the given size; returns the screen once it exits. */
async function inTmux(root: string, width: number, command: string, during?: (capture: () => string) => Promise<void>): Promise<string> {
  sessions += 1;
  const session = `cfpipe-test-${process.pid}-${sessions}`;
  const done = join(root, `done-${sessions}`);
  execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', String(width), '-y', '60', `cd ${root} && ${command}; echo EXIT=$? ; touch ${done}; sleep 60`]);
  const capture = (): string => execFileSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' });
  try {
    if (during) await during(capture);
    for (let i = 0; i < 300 && !existsSync(done); i++) await new Promise((r) => setTimeout(r, 50));
    return normalise(capture());
  } finally {
    spawnSync('tmux', ['kill-session', '-t', session]);
  }
}

const node = process.execPath;
let sessions = 0;

describe('the terminal interface', { skip: hasTmux ? false : 'tmux is not installed (Debian package tmux)' }, () => {
  test('listr2 rows at 80 columns: a bar while running, ✔ with durations at the end, cached rows on a rerun', async () => {
    const root = tempRoot();
    writeFileSync(join(root, 'ui.cf'), PIPELINE);
    let midRun = '';
    // `env -u CI`: under CI the runner prints plain lines on purpose; this case is the interactive one.
    const final = await inTmux(root, 80, `env -u CI ${node} ${cfpipeBin} run ui.cf`, async (capture) => {
      // Poll until the bar shows (or the run has ended); a loaded machine may take seconds to start.
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && !/█/.test(midRun) && !/EXIT=/.test(midRun)) {
        await new Promise((r) => setTimeout(r, 25));
        midRun = capture();
      }
    });
    assert.match(midRun, /› [█░]+ \d+\/(30|20)( eta \S+)? x0=/);
    assert.equal(final, ['✔ a <t>', '✔ b <t>', '✔ c <t>', 'EXIT=0'].join('\n'));
    const rerun = await inTmux(root, 80, `env -u CI ${node} ${cfpipeBin} run ui.cf --force b`);
    assert.equal(rerun, ['↓ a (cached)', '✔ b <t>', '↓ c (cached)', 'EXIT=0'].join('\n'));
  });

  test('CI mode at 60 columns prints plain lines', async () => {
    const root = tempRoot();
    writeFileSync(join(root, 'ui.cf'), PIPELINE.replace(/work = 150000/g, 'work = 10'));
    assert.equal(spawnSync(node, [cfpipeBin, 'run', 'ui.cf', '--only', 'a'], { cwd: root }).status, 0);
    const screen = await inTmux(root, 60, `CI=1 ${node} ${cfpipeBin} run ui.cf`);
    const lines = screen.split('\n').filter((l) => !l.startsWith('progress') && !l.startsWith('ckpt'));
    assert.deepEqual(lines, [
      'cfpipe run ui-demo: 3 tasks, 1 cached, 2 to run',
      'cached    a',
      'start     b        on cpu',
      'output    b        out <n> B',
      'done      b        <t>',
      'start     c        on cpu',
      'output    c        out <n> B',
      'done      c        <t>',
      'finished: 1 fresh, 2 done <t>',
      'EXIT=0',
    ]);
  });
});

test('the plain renderer at fixed widths (snapshot)', () => {
  const t = 1000;
  const events: RunEvent[] = [
    { type: 'run-started', time: t, runId: 'r', pipeline: 'demo', tasks: [
      { id: 'ar_diffusion', stage: 'ar_diffusion', kind: 'train', key: 'k1', state: 'resumable', reason: 'checkpoint at step 400 (interrupted last time)', willRun: true },
      { id: 'ode[0]', stage: 'ode', kind: 'ode_pairs', key: 'k2', state: 'fresh', reason: 'cached', willRun: false },
    ] },
    { type: 'task-cached', time: t, id: 'ode[0]' },
    { type: 'task-started', time: t, id: 'ar_diffusion', attempt: 1, resumeFrom: 400, device: 'cpu', log: '/p/.cfpipe/logs/ar_diffusion/r-1.log' },
    { type: 'task-progress', time: t + 1000, id: 'ar_diffusion', step: 500, total: 1200, metrics: { loss: 0.0123456, lr: 2e-6 } },
    { type: 'task-checkpoint', time: t + 1100, id: 'ar_diffusion', step: 500, path: '/w/ckpt-500' },
    { type: 'task-failed', time: t + 1200, id: 'ar_diffusion', message: 'cannot write /p/.cfpipe/tmp/x/model: no space left on device', willRetry: false, log: '/p/.cfpipe/logs/ar_diffusion/r-1.log' },
    { type: 'run-finished', time: t + 1300, runId: 'r', status: 'failed', counts: { failed: 1, fresh: 1 }, durationMs: 1300 },
  ];
  const render = (width: number): string => {
    let text = '';
    const sink = plainSink({ write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream, { width, noTimes: true });
    for (const e of events) sink(e);
    return text;
  };
  assert.equal(render(100), [
    'cfpipe run demo: 2 tasks, 1 cached, 1 to run',
    'resume    ar_diffusion checkpoint at step 400 (interrupted last time)',
    'cached    ode[0]',
    'start     ar_diffusion from step 400 on cpu',
    'progress  ar_diffusion 500/1200  41% loss=0.01235 lr=2.00e-6',
    'ckpt      ar_diffusion step 500',
    'FAILED    ar_diffusion cannot write /p/.cfpipe/tmp/x/model: no space left on device (log: /p/.cfpip…',
    'failed: 1 failed, 1 fresh',
    '',
  ].join('\n'));
  assert.equal(render(40).split('\n')[1], 'resume    ar_diffusion checkpoint at st…');
});
