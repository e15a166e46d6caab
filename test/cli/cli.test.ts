// The cfpipe executable as users run it (real child processes): help, check and plan on every
// shipped pipeline, plan formats (the dot output is laid out by real Graphviz, compiled to wasm,
// and by the `dot` binary when installed), fmt, and exit codes for user mistakes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graphviz } from '@hpcc-js/wasm-graphviz';
import { cfpipeBin, fromRoot, repoRoot } from '../util/paths.js';

function cfpipe(...args: string[]): { code: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cfpipeBin, ...args], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

const shipped = readdirSync(fromRoot('pipelines'))
  .filter((n) => n.endsWith('.cf'))
  .map((n) => `pipelines/${n}`);

test('help: the overview, per-command help both ways, version', () => {
  const overview = cfpipe('--help');
  assert.equal(overview.code, 0);
  for (const name of ['check', 'plan', 'fmt']) assert.match(overview.stdout, new RegExp(`^  ${name} `, 'm'));
  assert.equal(cfpipe('help', 'plan').stdout, cfpipe('plan', '--help').stdout);
  assert.match(cfpipe('plan', '--help').stdout, /--format text\|json\|dot\|mermaid/);
  assert.match(cfpipe('--version').stdout, /^cfpipe \d+\.\d+\.\d+\n$/);
});

test('check passes on every shipped pipeline, with no warnings', () => {
  assert.ok(shipped.length >= 5);
  const result = cfpipe('check', ...shipped);
  assert.equal(result.code, 0, result.stderr);
  for (const file of shipped) assert.match(result.stderr, new RegExp(`^ok ${file.replace('.', '\\.')}: \\d+ tasks\\n`, 'm'));
  assert.doesNotMatch(result.stderr, /warning/);
});

test('plan --format json: every task with id, stage, kind, inputs, outputs, deps, key, state, reason', () => {
  for (const file of shipped) {
    const result = cfpipe('plan', file, '--format', 'json');
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout) as { pipeline: string; tasks: Record<string, unknown>[]; diagnostics: unknown[] };
    assert.equal(typeof plan.pipeline, 'string');
    assert.deepEqual(plan.diagnostics, []);
    const seen = new Set<string>();
    for (const task of plan.tasks) {
      for (const field of ['id', 'stage', 'kind', 'inputs', 'outputs', 'deps', 'key', 'state', 'reason']) assert.ok(field in task, `${field} in ${file}`);
      assert.match(task['key'] as string, /^[0-9a-f]{64}$/);
      // States come from the project's store; a clean checkout has none, a developer's may.
      assert.ok(['run', 'fresh', 'resumable'].includes(task['state'] as string), String(task['state']));
      assert.equal(typeof task['reason'], 'string');
      for (const dep of task['deps'] as string[]) assert.ok(seen.has(dep), `${dep} listed before ${task['id'] as string}`);
      seen.add(task['id'] as string);
    }
  }
});

test('plan text: one line per task in topological order with state, short key, reason, deps', () => {
  const json = JSON.parse(cfpipe('plan', 'pipelines/framewise.cf', '--format', 'json').stdout) as { tasks: { id: string; key: string }[] };
  const text = cfpipe('plan', 'pipelines/framewise.cf');
  assert.equal(text.code, 0);
  const lines = text.stdout.trimEnd().split('\n').slice(1);
  assert.equal(lines.length, json.tasks.length);
  lines.forEach((line, i) => {
    const task = json.tasks[i]!;
    assert.match(line, new RegExp(`^(run|fresh|resumable) +${task.key.slice(0, 12)}  ${task.id.replace(/[[\]]/g, '\\$&')} `), line);
  });
  assert.match(text.stdout, /^\w+ +\w{12} {2}ode_db .*← ode\[0\], ode\[1\], ode\[2\], ode\[3\]$/m);
});

test('plan --format dot renders with Graphviz (wasm, and dot when installed)', async () => {
  const graphviz = await Graphviz.load();
  const hasDot = spawnSync('dot', ['-V']).status === 0;
  for (const file of shipped) {
    const dot = cfpipe('plan', file, '--format', 'dot');
    assert.equal(dot.code, 0);
    const svg = graphviz.dot(dot.stdout, 'svg');
    assert.match(svg, /<svg/);
    const tasks = (JSON.parse(cfpipe('plan', file, '--format', 'json').stdout) as { tasks: { id: string; deps: string[] }[] }).tasks;
    for (const task of tasks) assert.ok(svg.includes(`<title>${task.id}</title>`), `node ${task.id} in the layout`);
    const edges = (svg.match(/class="edge"/g) ?? []).length;
    assert.ok(edges >= tasks.reduce((n, t) => n + t.deps.length, 0), 'an edge per dependency at least');
    if (hasDot) {
      const native = spawnSync('dot', ['-Tsvg'], { input: dot.stdout, encoding: 'utf8' });
      assert.equal(native.status, 0, native.stderr);
      assert.match(native.stdout, /<svg/);
    }
  }
});

test('plan --format mermaid: a flowchart with a node per task and an edge per source', () => {
  const result = cfpipe('plan', 'pipelines/smoke.cf', '--format', 'mermaid');
  assert.equal(result.code, 0);
  const lines = result.stdout.split('\n');
  assert.equal(lines[0], 'flowchart LR');
  const tasks = (JSON.parse(cfpipe('plan', 'pipelines/smoke.cf', '--format', 'json').stdout) as { tasks: { inputs: { sources: { kind: string }[] }[] }[] }).tasks;
  assert.equal(lines.filter((l) => /^ {2}t\d+\[".*"\]:::run$/.test(l)).length, tasks.length);
  const sources = tasks.reduce((n, t) => n + t.inputs.reduce((m, i) => m + i.sources.filter((s) => s.kind === 'task').length, 0), 0);
  assert.equal(lines.filter((l) => / -->\|/.test(l)).length, sources);
});

test('user mistakes exit 2 with one clear message and no stack', () => {
  const cases: [string[], RegExp][] = [
    [['chek', 'x.cf'], /unknown command `chek` \(did you mean `check`\?\)/],
    [['check'], /which pipeline/],
    [['check', 'pipelines/nope.cf'], /pipeline file `pipelines\/nope.cf` does not exist/],
    [['check', 'pipelines/framewise.cf', '--bogus'], /unknown option '--bogus'/],
    [['plan', 'pipelines/framewise.cf', '--format', 'svg'], /`--format svg` is not one of text, json, dot, mermaid/],
    [['plan', 'pipelines/framewise.cf', '--set', 'ar_steps=lots'], /`ar_steps` is an int param/],
    [['plan', 'pipelines/framewise.cf', '--set', 'ar_step=3'], /did you mean `ar_steps`/],
    [['plan', 'pipelines/framewise.cf', '--use', 'ar_diffusion.model=/no/such/file'], /does not exist/],
    [['check', 'pipelines/framewise.cf', '--gpus', 'many'], /must be a whole number/],
    [['--frobnicate'], /unknown option/],
  ];
  for (const [args, message] of cases) {
    const result = cfpipe(...args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('check --format json and github report the same diagnostics', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bad.cf');
  writeFileSync(file, 'stage a: synth { clips = "many" }\nstage b: merge { parts = [a.latnets] }\n');
  const json = cfpipe('check', file, '--format', 'json');
  assert.equal(json.code, 2);
  const diagnostics = JSON.parse(json.stdout) as { code: string; line: number; help: string | null }[];
  assert.deepEqual(diagnostics.map((d) => [d.code, d.line]), [['param-type', 1], ['unknown-output', 2]]);
  assert.equal(diagnostics[1]!.help, 'did you mean `latents`?');
  const github = cfpipe('check', file, '--format', 'github');
  assert.equal(github.code, 2);
  assert.equal(github.stdout.split('\n').filter((l) => l.startsWith('::error file=')).length, 2);
  const text = cfpipe('check', file);
  assert.match(text.stderr, /error: stage `a` has no output `latnets`|error: `clips` must be an integer/);
  assert.match(text.stderr, /--> .*bad\.cf:2:/);
});

test('fmt rewrites in place, is idempotent, and --check fails only before formatting', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-fmt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'p.cf');
  writeFileSync(file, 'param n:int=3 # count\nstage   a :synth{clips=n\nseed=1}\n');
  assert.equal(cfpipe('fmt', '--check', file).code, 1);
  assert.equal(cfpipe('fmt', file).code, 0);
  const once = readFileSync(file, 'utf8');
  assert.match(once, /# count/);
  assert.equal(cfpipe('fmt', '--check', file).code, 0);
  assert.equal(cfpipe('fmt', file).code, 0);
  assert.equal(readFileSync(file, 'utf8'), once);
  assert.deepEqual(readdirSync(dir), ['p.cf'], 'no temporary file left behind');
  assert.equal(cfpipe('fmt', '--check', ...shipped).code, 0, 'shipped pipelines are formatted');
  copyFileSync(file, join(dir, 'q.cf'));
  writeFileSync(join(dir, 'broken.cf'), 'stage a: {\n');
  const broken = cfpipe('fmt', join(dir, 'broken.cf'));
  assert.equal(broken.code, 2);
  assert.equal(readFileSync(join(dir, 'broken.cf'), 'utf8'), 'stage a: {\n', 'a file with syntax errors is left alone');
});

test('plan reads the store: after a run its tasks are fresh, an edited stage and its consumers run again', () => {
  const project = mkdtempSync(join(tmpdir(), 'cfpipe-plan-store-'));
  try {
    writeFileSync(join(project, 'package.json'), '{"name":"plan-store"}\n');
    const pipeline = (word: string) =>
      `pipeline "plan-store"\n` +
      `stage hello: exec {\n  command = ["sh", "-c", "echo ${word} > $CFPIPE_OUT_TEXT"]\n  output text: file\n}\n` +
      `stage shout: exec {\n  source = hello.text\n  command = ["sh", "-c", "tr a-z A-Z < $CFPIPE_IN_SOURCE > $CFPIPE_OUT_TEXT"]\n  output text: file\n}\n`;
    writeFileSync(join(project, 'p.cf'), pipeline('hi'));
    const inProject = (...args: string[]) =>
      spawnSync(process.execPath, [cfpipeBin, ...args], { cwd: project, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CI: '1' } });
    const before = inProject('plan', 'p.cf');
    assert.equal(before.status, 0, before.stderr);
    assert.match(before.stdout, /^run .* hello /m);
    assert.equal(readdirSync(project).includes('.cfpipe'), false, 'plan must not create a store');
    const ran = inProject('run', 'p.cf');
    assert.equal(ran.status, 0, ran.stdout + ran.stderr);
    const after = inProject('plan', 'p.cf');
    assert.match(after.stdout, /^fresh .* hello /m);
    assert.match(after.stdout, /^fresh .* shout /m);
    writeFileSync(join(project, 'p.cf'), pipeline('ho'));
    const edited = inProject('plan', 'p.cf');
    assert.match(edited.stdout, /^run .* hello /m);
    assert.match(edited.stdout, /^run .* shout /m);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
});
