// Benchmarks of the front of cfpipe, as real child processes (what a user waits for):
//   cfpipe --help                         target ≤ 150 ms
//   cfpipe check pipelines/framewise.cf   target ≤ 300 ms
//   cfpipe plan on a generated 10 000-stage pipeline   target ≤ 1 s, and faster than snakemake -n
//   cfpipe plan on 100 000 stages
//   snakemake -n on the same 10 000-job graph (Debian's snakemake; installed with apt-get if missing)
// Each figure is the median of several runs; the snakemake ratio is measured in the same run.
// Run: npx tsc -p . && node dist/test/bench/plan-bench.js [--quick]

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cfpipeBin, repoRoot } from '../util/paths.js';

const quick = process.argv.includes('--quick');

function timeRun(command: string, args: readonly string[], cwd = repoRoot): { ms: number; status: number | null; stderr: string } {
  const start = process.hrtime.bigint();
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 30, env: { ...process.env, NO_COLOR: '1' } });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { ms, status: result.status, stderr: result.stderr ?? String(result.error ?? '') };
}

function median(command: string, args: readonly string[], runs: number, cwd = repoRoot): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = timeRun(command, args, cwd);
    if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(0, 2000)}`);
    times.push(r.ms);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** Stage i reads stage i-1 and stage ⌊i/3⌋: a long chain with fan-in, N stages, < 2N edges. */
function depsOf(i: number): number[] {
  return [...new Set([i - 1, Math.floor(i / 3)])].filter((k) => k >= 0 && k !== i).sort((a, b) => a - b);
}

function cfPipeline(n: number): string {
  const out: string[] = [`pipeline "generated-${n}"`, ''];
  for (let i = 0; i < n; i++) {
    const deps = depsOf(i);
    const inputs = deps.length === 0 ? '' : `  src = [${deps.map((k) => `s${k}.out`).join(', ')}]\n`;
    out.push(`stage s${i}: exec {\n${inputs}  command = ["sh", "-c", "cat $CFPIPE_IN_SRC > $CFPIPE_OUT_OUT"]\n  output out: file\n}`);
  }
  return out.join('\n') + '\n';
}

function snakefile(n: number): string {
  return `N = ${n}
def deps(wildcards):
    i = int(wildcards.i)
    return [f"out/s{k}.txt" for k in sorted({i - 1, i // 3}) if k >= 0 and k != i]

rule all:
    input: expand("out/s{i}.txt", i=range(N))

rule stage:
    input: deps
    output: "out/s{i}.txt"
    shell: "cat {input} > {output}"
`;
}

function ensureSnakemake(): boolean {
  if (spawnSync('snakemake', ['--version']).status === 0) return true;
  console.log('snakemake not found: apt-get install -y snakemake');
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  spawnSync('apt-get', ['install', '-y', '-qq', 'snakemake'], { stdio: 'inherit' });
  return spawnSync('snakemake', ['--version']).status === 0;
}

const node = process.execPath;
const line = (what: string, ms: number, target?: number): void =>
  console.log(`${what.padEnd(48)} ${ms.toFixed(0).padStart(7)} ms${target ? `   (target ≤ ${target} ms: ${ms <= target ? 'met' : 'MISSED'})` : ''}`);

const baseline = median(node, ['-e', '0'], quick ? 3 : 9);
line('node -e 0 (process start, for reference)', baseline);
line('cfpipe --help', median(node, [cfpipeBin, '--help'], quick ? 3 : 9), 150);
line('cfpipe check pipelines/framewise.cf', median(node, [cfpipeBin, 'check', 'pipelines/framewise.cf'], quick ? 3 : 9), 300);

const dir = mkdtempSync(join(tmpdir(), 'cfpipe-plan-bench-'));
try {
  const sizes = quick ? [10_000] : [10_000, 100_000];
  const planMs = new Map<number, number>();
  for (const n of sizes) {
    const file = join(dir, `generated-${n}.cf`);
    writeFileSync(file, cfPipeline(n));
    const ms = median(node, [cfpipeBin, 'plan', file, '--root', dir], n >= 100_000 ? 1 : 3);
    planMs.set(n, ms);
    line(`cfpipe plan, ${n} stages`, ms, n === 10_000 ? 1000 : undefined);
  }
  const n = 10_000;
  if (ensureSnakemake()) {
    const work = join(dir, 'snakemake');
    mkdirSync(work);
    writeFileSync(join(work, 'Snakefile'), snakefile(n));
    const ms = median('snakemake', ['-n', '--quiet', '--cores', '1'], quick ? 1 : 2, work);
    line(`snakemake -n, ${n} jobs (same graph)`, ms);
    console.log(`ratio snakemake -n / cfpipe plan at ${n}: ${(ms / planMs.get(n)!).toFixed(1)}x`);
  } else {
    console.log('snakemake could not be installed: no comparison this run');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
