// Runner benchmarks, each beside a plain shell loop doing the same work in the same run:
//   no-op rerun of an N-task pipeline (every task fresh)  vs  a shell loop that checks N outputs
//   cold run (overhead per task)                         vs  a shell loop that runs the N commands
// Usage: node dist/test/bench/runner.js [--noop 1000,10000] [--cold 200]
// Every task is an `exec` stage copying one small input file to its output.

import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeGraph } from '../runner/fixtures/graphs.js';
import { fromRoot } from '../util/paths.js';

// Run from a private copy of the compiled runner, so a rebuild of dist/ in the working tree
// during a long benchmark cannot hand a starting worker a half-written module.
function snapshotDist(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-bench-dist-'));
  cpSync(fromRoot('dist'), join(dir, 'dist'), { recursive: true });
  cpSync(fromRoot('package.json'), join(dir, 'package.json'));
  symlinkSync(fromRoot('node_modules'), join(dir, 'node_modules'));
  return join(dir, 'dist', 'test', 'runner', 'fixtures', 'run-graph.js');
}
const runGraphJs = snapshotDist();

const arg = (name: string, fallback: string): number[] => {
  const i = process.argv.indexOf(name);
  return (i >= 0 ? process.argv[i + 1]! : fallback).split(',').filter(Boolean).map(Number);
};

function project(n: number): string {
  const root = mkdtempSync(join(tmpdir(), `cfpipe-bench-${n}-`));
  mkdirSync(join(root, 'in'));
  mkdirSync(join(root, 'out'));
  for (let i = 0; i < n; i++) writeFileSync(join(root, 'in', `f${i}.txt`), `input ${i}\n`);
  const graph = makeGraph(
    Array.from({ length: n }, (_, i) => ({
      id: `t[${i}]`,
      kind: 'exec',
      params: { command: ['cp', `in/f${i}.txt`, '{out.out}'], cwd: '.' },
      inputs: { src: `path:in/f${i}.txt` },
    })),
    `bench-${n}`,
  );
  writeFileSync(join(root, 'graph.json'), JSON.stringify(graph));
  return root;
}

function timed(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function runner(root: string, env: Record<string, string> = {}): number {
  return timed(() => {
    const r = spawnSync(process.execPath, [runGraphJs, join(root, 'graph.json'), root, '--json'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
    if (r.status !== 0) throw new Error(`runner exited ${r.status}`);
  });
}

/** A cold run; if a task failed (e.g. the machine is starved), the rerun resumes and its time is added. */
function coldRunner(root: string, env: Record<string, string> = {}): number {
  try {
    return runner(root, env);
  } catch {
    return runner(root, env);
  }
}

const shell = (root: string, script: string, n: number): number =>
  timed(() => execFileSync('sh', ['-c', script, 'sh', String(n)], { cwd: root, stdio: 'ignore' }));

const COPY_LOOP = 'i=0; while [ $i -lt $1 ]; do cp in/f$i.txt out/f$i.txt; i=$((i+1)); done';
// The same freshness check make does: the output exists and is newer than its input.
const CHECK_LOOP = 'i=0; while [ $i -lt $1 ]; do [ out/f$i.txt -nt in/f$i.txt ] || cp in/f$i.txt out/f$i.txt; i=$((i+1)); done';

const fmt = (s: number): string => `${s.toFixed(3)} s`;

for (const n of arg('--cold', '200')) {
  // Before/after in the same run: workers without V8's compile cache (Node's own switch) first.
  const uncached = coldRunner(project(n), { NODE_DISABLE_COMPILE_CACHE: '1' });
  const root = project(n);
  const cold = coldRunner(root);
  const loop = shell(root, COPY_LOOP, n);
  const perTask = (s: number): string => `${((s / n) * 1000).toFixed(1)} ms/task`;
  console.log(`cold run, ${n} tasks: cfpipe ${fmt(cold)} (${perTask(cold)}), shell loop ${fmt(loop)} (${((loop / n) * 1000).toFixed(2)} ms/task); overhead ${(((cold - loop) / n) * 1000).toFixed(1)} ms per task`);
  console.log(`  workers without the compile cache: ${fmt(uncached)} (${perTask(uncached)}); with it ${((cold / uncached - 1) * 100).toFixed(0)}% time change`);
}
for (const n of arg('--noop', '1000')) {
  const root = project(n);
  const t0 = coldRunner(root);
  shell(root, COPY_LOOP, n);
  const noop = [runner(root), runner(root), runner(root)].sort((a, b) => a - b)[1]!;
  const check = [shell(root, CHECK_LOOP, n), shell(root, CHECK_LOOP, n), shell(root, CHECK_LOOP, n)].sort((a, b) => a - b)[1]!;
  console.log(`no-op rerun, ${n} tasks (cold run took ${fmt(t0)}): cfpipe ${fmt(noop)} (median of 3; target ≤ 0.3 s at 1000), shell freshness loop ${fmt(check)}; ratio ${(noop / check).toFixed(2)}×`);
}
