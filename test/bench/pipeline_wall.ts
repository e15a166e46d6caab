// Wall time of a whole pipeline from a clean store, per stage, plus the eval metrics it produced.
// It copies pipelines/ and configs/ into a fresh temporary project (so no cache is reused), runs
// `cfpipe run <pipeline> --json` there, and prints one line per task (start offset, duration)
// and, per eval stage, adherence (colour/shape/direction), forward calls per video and time.
//
//   npx tsc -p . && node dist/test/bench/pipeline_wall.js [pipelines/framewise.cf] [--set k=v ...] [--keep DIR]
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { RunEvent } from '../../runner/events.js';
import { cfpipeBin, repoRoot } from '../util/paths.js';

const args = process.argv.slice(2);
const keepAt = args.indexOf('--keep');
const keep = keepAt >= 0 ? args[keepAt + 1] : undefined;
const rest = args.filter((_, i) => i !== keepAt && i !== keepAt + 1);
const pipeline = rest.find((a) => a.endsWith('.cf')) ?? 'pipelines/framewise.cf';
const sets = rest.filter((a) => !a.endsWith('.cf'));

const project = keep ?? mkdtempSync(join(tmpdir(), 'cfpipe-bench-pipeline-'));
for (const dir of ['pipelines', 'configs']) cpSync(join(repoRoot, dir), join(project, dir), { recursive: true });

const started = new Map<string, number>();
const rows: { id: string; startS: number; seconds: number; status: string }[] = [];
let t0 = 0;
let total = 0;
let status = 'unknown';
const child = spawn(process.execPath, [cfpipeBin, 'run', pipeline, '--json', '--keep-going', ...sets], { cwd: project, stdio: ['ignore', 'pipe', 'inherit'] });
for await (const line of createInterface({ input: child.stdout })) {
  let e: RunEvent;
  try {
    e = JSON.parse(line) as RunEvent;
  } catch {
    continue;
  }
  if (e.type === 'run-started') t0 = e.time;
  else if (e.type === 'task-started') started.set(e.id, e.time);
  else if (e.type === 'task-finished' || e.type === 'task-failed') {
    const s = started.get(e.id) ?? e.time;
    rows.push({ id: e.id, startS: (s - t0) / 1000, seconds: (e.time - s) / 1000, status: e.type === 'task-finished' ? 'done' : `FAILED: ${e.message}` });
    process.stderr.write(`${e.id.padEnd(16)} ${((e.time - s) / 1000).toFixed(1).padStart(7)} s${e.type === 'task-failed' ? `  FAILED ${e.message}` : ''}\n`);
  } else if (e.type === 'run-finished') {
    total = e.durationMs / 1000;
    status = e.status;
  }
}
await new Promise((r) => child.on('close', r));

console.log(`pipeline ${pipeline} ${sets.join(' ')} on ${cpus().length} CPU(s) (${cpus()[0]?.model ?? 'unknown'}): ${status}, ${total.toFixed(1)} s wall`);
console.log('task              start s   wall s');
for (const r of rows.sort((a, b) => a.startS - b.startS)) console.log(`${r.id.padEnd(16)} ${r.startS.toFixed(1).padStart(8)} ${r.seconds.toFixed(1).padStart(8)}  ${r.status === 'done' ? '' : r.status}`);

// Metrics of every eval output in the content store (the runner publishes nothing by default).
const metrics: string[] = [];
const walk = (dir: string) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name === 'metrics' || name.endsWith('metrics.json')) metrics.push(p);
  }
};
if (existsSync(join(project, '.cfpipe'))) walk(join(project, '.cfpipe'));
for (const p of metrics) {
  try {
    const m = JSON.parse(readFileSync(p, 'utf8')) as {
      label?: string;
      adherence?: { color: number; shape: number; direction: number };
      sampling?: Record<string, string>;
      frechet_distance?: number;
    };
    if (!m.adherence) continue;
    console.log(
      `${(m.label ?? p).padEnd(32)} colour ${m.adherence.color.toFixed(3)} shape ${m.adherence.shape.toFixed(3)} direction ${m.adherence.direction.toFixed(3)} ` +
        `FD ${m.frechet_distance?.toFixed(3)} calls/video ${m.sampling?.forward_calls_per_video ?? '?'} s/video ${m.sampling?.generation_seconds_per_video ?? '?'}`,
    );
  } catch {
    // not a metrics file
  }
}
if (!keep) rmSync(project, { recursive: true, force: true });
else console.log(`project kept at ${project}`);
