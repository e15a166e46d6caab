// The runner's commands through the real `cfpipe` executable on a .cf pipeline: run, status,
// explain (key-level diff), logs, gc (bytes freed), and GPU assignment by id.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cfpipeBin } from '../util/paths.js';
import { makeGraph } from './fixtures/graphs.js';
import { ofType, runToEnd, tempRoot, writeGraph } from './fixtures/harness.js';

const PIPELINE = `pipeline "cli-demo"

param n: int = 12

stage a: steps {
  n = n
  checkpoint_every = 4
  publish out to "out/a.txt"
}

stage b: exec {
  command = "echo from-b; cat $CFPIPE_IN_X > $CFPIPE_OUT_OUT"
  x = a.out
  output out: file = "b.txt"
}
`;

const cfpipe = (root: string, ...args: string[]) => {
  const r = spawnSync(process.execPath, [cfpipeBin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

test('run, status, explain, logs and gc on a pipeline', () => {
  const root = tempRoot();
  writeFileSync(join(root, 'p.cf'), PIPELINE);
  writeFileSync(join(root, 'package.json'), '{}');
  const first = cfpipe(root, 'run', 'p.cf');
  assert.equal(first.code, 0, first.err);
  assert.match(first.out, /finished: 2 done/);
  assert.match(readFileSync(join(root, 'out/a.txt'), 'utf8'), /"steps":12/);

  const status = cfpipe(root, 'status', 'p.cf');
  assert.match(status.out, /^a\s+fresh\s+cached$/m);
  assert.match(status.out, /^b\s+fresh\s+cached$/m);

  const explain = cfpipe(root, 'explain', 'p.cf', 'a', '--set', 'n=16');
  assert.equal(explain.code, 0, explain.err);
  assert.match(explain.out, /^a: run — changed since its last success/m);
  assert.match(explain.out, /^ {2}params\.n: 12 → 16$/m);
  const explainB = cfpipe(root, 'explain', 'p.cf', 'b', '--set', 'n=16');
  assert.match(explainB.out, /^ {2}input x changed \(upstream key [0-9a-f]{12} → key [0-9a-f]{12}\)$/m);
  assert.equal(explainB.out.trim().split('\n').length, 2, explainB.out);

  const logs = cfpipe(root, 'logs', 'b');
  assert.match(logs.out, /^from-b$/m);

  assert.equal(cfpipe(root, 'run', 'p.cf', '--set', 'n=16').code, 0);
  const gc = cfpipe(root, 'gc');
  assert.equal(gc.code, 0, gc.err);
  assert.match(gc.out, /^freed \d+(\.\d)? (B|KiB) \(\d+ items?\)$/m);
  assert.doesNotMatch(gc.out, /freed 0 B/);
  // What the current pipeline needs survived.
  const again = cfpipe(root, 'run', 'p.cf', '--set', 'n=16');
  assert.match(again.out, /finished: 2 fresh/);
});

test('GPUs are handed out by id through CUDA_VISIBLE_DEVICES; a task needing more fails clearly', async () => {
  const root = tempRoot();
  writeGraph(root, makeGraph([
    { id: 'g1', kind: 'exec', gpus: 1, params: { command: 'echo "$CUDA_VISIBLE_DEVICES" > {out.out}; sleep 0.3 # 1' } },
    { id: 'g2', kind: 'exec', gpus: 1, params: { command: 'echo "$CUDA_VISIBLE_DEVICES" > {out.out}; sleep 0.3 # 2' } },
    { id: 'same', kind: 'exec', params: { command: 'echo same > {out.out}' } },
    { id: 'same2', kind: 'exec', params: { command: 'echo same > {out.out}' } },
    { id: 'g3', kind: 'exec', gpus: 2, params: { command: 'echo "$CUDA_VISIBLE_DEVICES" > {out.out}' } },
    { id: 'big', kind: 'exec', gpus: 3, params: { command: 'true' } },
  ]));
  const run = await runToEnd(root, ['--gpus', '0,1', '--keep-going']);
  assert.equal(run.code, 1, JSON.stringify(run.events));
  const ids = (id: string) => readFileSync(join(root, '.cfpipe', 'artifacts', ofType(run.events, 'run-started')[0]!.tasks.find((t) => t.id === id)!.key, 'out'), 'utf8').trim();
  assert.deepEqual([ids('g1'), ids('g2')].sort(), ['0', '1']);
  assert.equal(ids('g3'), '0,1');
  // Same key: computed once, the twin takes the result.
  assert.equal(ofType(run.events, 'task-started').filter((e) => e.id.startsWith('same')).length, 1);
  assert.equal(ids('same2'), 'same');
  assert.match(ofType(run.events, 'task-skipped').find((e) => e.id === 'big')!.reason, /needs 3 GPU\(s\) but 2 are available/);
});

test('a worker that finished its task but hangs on exit is ended, and the task counts as done', () => {
  const root = tempRoot();
  writeFileSync(join(root, 'package.json'), '{}');
  writeFileSync(
    join(root, 'p.cf'),
    `pipeline "hang"\nstage a: steps {\n  n = 3\n  hang_on_exit = true\n  publish out to "out/a.txt"\n}\n` +
      `stage b: exec {\n  command = "cat $CFPIPE_IN_X > $CFPIPE_OUT_OUT"\n  x = a.out\n  output out: file = "b.txt"\n}\n`,
  );
  const started = Date.now();
  const run = cfpipe(root, 'run', 'p.cf');
  assert.equal(run.code, 0, run.out + run.err);
  assert.ok(Date.now() - started < 60_000, 'the hung worker was ended');
  assert.match(readFileSync(join(root, 'out', 'a.txt'), 'utf8'), /"steps":3/);
  assert.match(run.out, /^done +b /m, 'its consumer ran after it');
  const again = cfpipe(root, 'run', 'p.cf');
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, /2 cached, 0 to run|nothing to do|fresh/);
});
