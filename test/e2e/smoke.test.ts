// pipelines/smoke.cf end to end, as a user runs it: the real `cfpipe run --json` in a fresh
// project (a copy of pipelines/ and configs/, so no cache is shared), then checks that every
// stage kind and every trainer ran, every eval's metrics are finite and in range, the trained
// base model beats the same model untrained, and a second run does nothing. No timed
// assertions: the wall time is printed (test/bench/pipeline_wall.ts measures it properly).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import type { RunEvent } from '../../runner/events.js';
import { cfpipeBin, repoRoot } from '../util/paths.js';

const PIPELINE = 'pipelines/smoke.cf';
/** Minutes the whole test may take: generous, for a loaded 2-core machine (it takes ~20 s idle). */
const BUDGET_MIN = 10;

interface CliRun {
  readonly code: number | null;
  readonly events: RunEvent[];
  readonly stdout: string;
  readonly stderr: string;
}

function cfpipe(cwd: string, args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cfpipeBin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => {
      const events: RunEvent[] = [];
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          events.push(JSON.parse(line) as RunEvent);
        } catch {
          // not an event line
        }
      }
      resolve({ code, events, stdout, stderr });
    });
  });
}

const ofType = <T extends RunEvent['type']>(events: readonly RunEvent[], type: T): Extract<RunEvent, { type: T }>[] =>
  events.filter((e): e is Extract<RunEvent, { type: T }> => e.type === type);

interface Metrics {
  readonly format: string;
  readonly label: string;
  readonly stage: string;
  readonly videos: number;
  readonly adherence: { readonly color: number; readonly shape: number; readonly direction: number; readonly all: number };
  readonly temporal_consistency: Readonly<Record<string, number>>;
  readonly dynamic_degree: Readonly<Record<string, number>>;
  readonly frechet_distance: number;
  readonly sampling: Readonly<Record<string, string>>;
}

/** Every number in a JSON value, with its path (sampling figures are written as strings). */
function numbersIn(value: unknown, path: string, out: [string, number][]): [string, number][] {
  if (typeof value === 'number') out.push([path, value]);
  else if (Array.isArray(value)) value.forEach((v, i) => numbersIn(v, `${path}[${i}]`, out));
  else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) numbersIn(v, `${path}.${k}`, out);
  return out;
}

/** Every output file or folder named `name` in the project's content store. */
function storeOutputs(project: string, name: string): string[] {
  const artifacts = join(project, '.cfpipe', 'artifacts');
  return readdirSync(artifacts)
    .map((key) => join(artifacts, key, name))
    .filter((p) => existsSync(p));
}

/** The stored file a task published as `output` in the first run (matched by the digest it reported). */
function outputFile(id: string, output: string): string {
  const event = ofType(first.events, 'task-output').find((e) => e.id === id && e.output === output);
  assert.ok(event !== undefined, `${id} reported output ${output}`);
  const match = storeOutputs(project, output).filter((p) => statSync(p).isFile() && `sha256:${createHash('sha256').update(readFileSync(p)).digest('hex')}` === event.digest);
  assert.ok(match[0] !== undefined, `${id}.${output} (${event.digest}) is in the store`);
  return match[0];
}

const readMetrics = (id: string): Metrics => JSON.parse(readFileSync(outputFile(id, 'metrics'), 'utf8')) as Metrics;

let project: string;
let first: CliRun;
let wallS = 0;

before(async () => {
  project = mkdtempSync(join(tmpdir(), 'cfpipe-e2e-smoke-'));
  for (const dir of ['pipelines', 'configs']) cpSync(join(repoRoot, dir), join(project, dir), { recursive: true });
  const t0 = performance.now();
  first = await cfpipe(project, ['run', PIPELINE, '--json']);
  wallS = (performance.now() - t0) / 1000;
});
after(() => {
  rmSync(project, { recursive: true, force: true });
});

test('smoke: cfpipe run finishes every task of the pipeline, exit 0', { timeout: BUDGET_MIN * 60_000 }, () => {
  assert.equal(first.code, 0, `exit ${first.code}\n${first.stderr}\n${first.stdout.slice(-4000)}`);
  const started = ofType(first.events, 'run-started')[0];
  assert.ok(started !== undefined, 'a run-started event');
  const planned = started.tasks.map((t) => t.id).sort();
  const finished = ofType(first.events, 'task-finished').map((e) => e.id).sort();
  assert.deepEqual(finished, planned, 'every planned task finished');
  assert.deepEqual(ofType(first.events, 'task-failed'), []);
  const done = ofType(first.events, 'run-finished')[0];
  assert.equal(done?.status, 'ok');
  console.log(`smoke: ${planned.length} tasks in ${wallS.toFixed(1)} s wall (runner: ${((done?.durationMs ?? 0) / 1000).toFixed(1)} s)`);
});

test('smoke: every stage kind and every trainer (base and AR diffusion, ode, CD, DMD) is a default target', async () => {
  const started = ofType(first.events, 'run-started')[0];
  assert.ok(started !== undefined);
  const kinds = new Set(started.tasks.map((t) => t.kind));
  for (const kind of ['synth', 'fetch', 'merge', 'train', 'ode_pairs', 'lmdb_build', 'infer', 'eval', 'exec', 'report']) {
    assert.ok(kinds.has(kind), `a ${kind} task ran`);
  }
  // Which trainer each train task is comes from its config: ask the plan for the config paths.
  const plan = await cfpipe(project, ['plan', PIPELINE, '--format', 'json']);
  assert.equal(plan.code, 0, plan.stderr);
  const tasks = (JSON.parse(plan.stdout) as { tasks: { id: string; kind: string; config?: string }[] }).tasks;
  const trainers = new Set<string>();
  for (const t of tasks.filter((t) => t.kind === 'train')) {
    assert.ok(t.config !== undefined, `${t.id} has a config`);
    const config = parseYaml(readFileSync(join(project, t.config), 'utf8')) as { trainer: string; causal?: boolean };
    trainers.add(config.trainer === 'diffusion' ? `diffusion (${config.causal === false ? 'bidirectional' : 'causal AR'})` : config.trainer);
  }
  assert.deepEqual([...trainers].sort(), ['consistency_distillation', 'diffusion (bidirectional)', 'diffusion (causal AR)', 'ode', 'score_distillation']);
});

test('smoke: every eval writes finite, in-range metrics, for many-step and few-step samplers', () => {
  const evals = ofType(first.events, 'run-started')[0]?.tasks.filter((t) => t.kind === 'eval').map((t) => t.id).sort();
  assert.deepEqual(evals, ['score', 'score_base', 'score_cd', 'score_untrained']);
  const all = evals.map(readMetrics);
  for (const m of all) {
    assert.equal(m.format, 'cfpipe-metrics/1');
    for (const [path, v] of numbersIn(m, m.stage, [])) assert.ok(Number.isFinite(v), `${path} = ${v} is finite`);
    for (const [k, v] of Object.entries(m.adherence)) assert.ok(v >= 0 && v <= 1, `${m.stage} adherence.${k} = ${v} in [0, 1]`);
    assert.ok(m.frechet_distance >= 0, `${m.stage} FD = ${m.frechet_distance} >= 0`);
    assert.ok(m.videos > 0, `${m.stage} evaluated videos`);
    const calls = Number(m.sampling.forward_calls_per_video);
    assert.ok(Number.isFinite(calls) && calls > 0, `${m.stage} forward calls per video = ${m.sampling.forward_calls_per_video}`);
    const seconds = Number(m.sampling.generation_seconds_per_video);
    assert.ok(Number.isFinite(seconds) && seconds >= 0, `${m.stage} generation seconds = ${m.sampling.generation_seconds_per_video}`);
  }
  const mode = (stage: string): string | undefined => all.find((m) => m.stage === stage)?.sampling.mode;
  assert.equal(mode('score_base'), 'many_step');
  assert.equal(mode('score_untrained'), 'many_step');
  assert.equal(mode('score'), 'few_step');
  assert.equal(mode('score_cd'), 'few_step');
  const calls = (stage: string): number => Number(all.find((m) => m.stage === stage)?.sampling.forward_calls_per_video);
  assert.ok(calls('score') < calls('score_base'), `few-step (${calls('score')} calls) is cheaper than many-step (${calls('score_base')})`);
});

test('smoke: the trained base model is clearly closer to held-out clips than the same model untrained', () => {
  const trained = readMetrics('score_base');
  const untrained = readMetrics('score_untrained');
  console.log(`smoke: FD trained ${trained.frechet_distance.toFixed(3)} vs untrained ${untrained.frechet_distance.toFixed(3)}; colour ${trained.adherence.color} vs ${untrained.adherence.color}`);
  // Over seeds 1-5 the trained FD is 2.04-2.28 and the untrained 7.01-7.15: half is a wide margin.
  assert.ok(trained.frechet_distance < 0.5 * untrained.frechet_distance, `FD ${trained.frechet_distance} (trained) < half of ${untrained.frechet_distance} (untrained)`);
  assert.ok(trained.adherence.color >= untrained.adherence.color, 'colour adherence does not get worse with training');
});

test('smoke: the fetch copied the project file, the exec counted the prompts, the report names every model', () => {
  assert.deepEqual(readFileSync(outputFile('base_config', 'yaml')), readFileSync(join(project, 'configs', 'default_config.yaml')));
  const prompts = readFileSync(outputFile('clean', 'prompts'), 'utf8');
  const lines = prompts.split('\n').length - 1;
  assert.ok(lines > 0);
  assert.equal(Number(readFileSync(outputFile('count_prompts', 'count'), 'utf8').trim()), lines);
  const text = readFileSync(outputFile('summary', 'summary'), 'utf8');
  for (const label of ['base, trained', 'base, untrained', 'DMD student, 4-step', 'CD student, 4-step']) assert.ok(text.includes(label), `the report names ${label}`);
  // Each model's row ends with its network calls and generation seconds per video (from infer's metadata).
  const dmdRow = text.split('\n').find((l) => l.startsWith('| DMD student, 4-step'));
  assert.match(dmdRow ?? '', /\| \d+ \| \d+\.\d{3} \|$/, `the DMD row shows calls and seconds per video: ${dmdRow}`);
});

test('smoke: a second cfpipe run is a no-op (every task fresh, nothing started)', { timeout: BUDGET_MIN * 60_000 }, async () => {
  const again = await cfpipe(project, ['run', PIPELINE, '--json']);
  assert.equal(again.code, 0, again.stderr);
  const started = ofType(again.events, 'run-started')[0];
  assert.ok(started !== undefined);
  const notFresh = started.tasks.filter((t) => t.state !== 'fresh').map((t) => `${t.id}: ${t.reason}`);
  assert.deepEqual(notFresh, [], 'every task is fresh');
  assert.deepEqual(ofType(again.events, 'task-started').map((e) => e.id), []);
  assert.equal(ofType(again.events, 'run-finished')[0]?.status, 'ok');
});
