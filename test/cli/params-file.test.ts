// `--params FILE` (YAML presets of param values) through the real `cfpipe` executable: precedence
// (a file < a later file < --set), values typed by YAML (lists and maps included) entering the
// cache keys exactly as the same values given with --set, every mistake in a file as a diagnostic
// at its line and column, and the option on every command that reads a pipeline.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { compilePipeline } from '../../runner/compile/index.js';
import { cfpipeBin, fromRoot, repoRoot } from '../util/paths.js';

const PIPELINE = `pipeline "presets"

param n: int = 3
param lr: float = 0.5
param name: string = "base"
param on: bool = false
param tags: list = []
param opts: map = {}

stage echo: exec {
  command = ["sh", "-c", "echo \${n} \${lr} \${name} \${on} $TAGS > $CFPIPE_OUT_TEXT"]
  env = { TAGS: tags, OPTS: opts }
  output text: file
}
`;

/** A project with the pipeline and the given files; removed after the test. */
function project(t: { after: (fn: () => void) => void }, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-params-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'package.json'), '{}\n');
  writeFileSync(join(dir, 'p.cf'), PIPELINE);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function cfpipe(cwd: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cfpipeBin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CI: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

interface PlanJson {
  params: Record<string, unknown>;
  tasks: { id: string; key: string }[];
}

function plan(cwd: string, ...args: string[]): PlanJson {
  const result = cfpipe(cwd, 'plan', 'p.cf', '--format', 'json', ...args);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  return JSON.parse(result.stdout) as PlanJson;
}

const keys = (p: PlanJson): string[] => p.tasks.map((t) => t.key);

const PRESET_A = 'n: 5\nname: from-a\nlr: 0.25\ntags: [x, 1]\nopts:\n  lr: 0.1\n  sched: {warm: 10}\n';
const PRESET_B = '# a later file wins\nn: 7\n';

test('--params: a later file wins, --set wins over every file; keys equal those of the same values given with --set', (t) => {
  // The stage passes `tags` and `opts` on in its env, so list and map values enter its key.
  const dir = project(t, { 'a.yaml': PRESET_A, 'b.yaml': PRESET_B });
  const viaSet = ['--set', 'name=from-a', '--set', 'lr=0.25', '--set', 'tags=[x, 1]', '--set', 'opts={sched: {warm: 10}, lr: 0.1}'];

  const a = plan(dir, '--params', 'a.yaml');
  assert.deepEqual(a.params, { n: 5, lr: 0.25, name: 'from-a', on: false, tags: ['x', 1], opts: { lr: 0.1, sched: { warm: 10 } } });
  assert.deepEqual(keys(a), keys(plan(dir, '--set', 'n=5', ...viaSet)));
  assert.notDeepEqual(keys(a), keys(plan(dir)), 'the preset changes the key');

  const ab = plan(dir, '--params', 'a.yaml', '--params', 'b.yaml');
  assert.equal(ab.params['n'], 7);
  assert.equal(ab.params['name'], 'from-a', 'what the later file leaves out comes from the earlier one');
  assert.deepEqual(keys(ab), keys(plan(dir, '--set', 'n=7', ...viaSet)));
  assert.equal(plan(dir, '--params', 'b.yaml', '--params', 'a.yaml').params['n'], 5, 'order on the command line decides');

  const withSet = plan(dir, '--set', 'n=9', '--params', 'a.yaml', '--params', 'b.yaml');
  assert.equal(withSet.params['n'], 9, '--set wins wherever it is written');
  assert.deepEqual(keys(withSet), keys(plan(dir, '--set', 'n=9', ...viaSet)));

  // run reads them the same way: the command sees the values.
  const ran = cfpipe(dir, 'run', 'p.cf', '--params', 'a.yaml', '--params', 'b.yaml', '--set', 'on=true');
  assert.equal(ran.code, 0, ran.stderr + ran.stdout);
  const status = cfpipe(dir, 'status', 'p.cf', '--params', 'a.yaml', '--params', 'b.yaml', '--set', 'on=true', '--json');
  const task = (JSON.parse(status.stdout) as { tasks: { id: string; state: string; key: string }[] }).tasks[0]!;
  assert.equal(task.state, 'fresh');
  assert.equal(task.key, keys(plan(dir, '--set', 'n=7', '--set', 'on=true', ...viaSet))[0]);
  const explain = cfpipe(dir, 'explain', 'p.cf', 'echo', '--params', 'a.yaml', '--set', 'on=true');
  assert.equal(explain.code, 0, explain.stderr);
  assert.match(explain.stdout, /^ {2}params\.command: .*"echo 7 0\.25 from-a true .* → .*"echo 5 0\.25 from-a true /m, explain.stdout);
  const artifact = spawnSync('sh', ['-c', 'cat .cfpipe/artifacts/*/text'], { cwd: dir, encoding: 'utf8' }).stdout;
  assert.equal(artifact, '7 0.25 from-a true x,1\n');
});

interface JsonDiagnostic {
  file: string | null;
  line: number | null;
  column: number | null;
  endLine: number | null;
  endColumn: number | null;
  code: string;
  message: string;
  help: string | null;
}

function check(cwd: string, ...params: string[]): { code: number; diagnostics: JsonDiagnostic[]; stderr: string } {
  const result = cfpipe(cwd, 'check', 'p.cf', '--format', 'json', ...params.flatMap((p) => ['--params', p]));
  return { code: result.code, diagnostics: JSON.parse(result.stdout) as JsonDiagnostic[], stderr: result.stderr };
}

const where = (d: JsonDiagnostic) => [d.code, d.file, d.line, d.column, d.endLine, d.endColumn];

test('--params mistakes: each a diagnostic at its line and column (caret on the key or value), exit 2, nothing runs', (t) => {
  const dir = project(t, {
    'bad.yaml': 'nme: 4\nn: 3.0\nname: 12\ntags: {a: 1}\nopts: [1]\non: yes\nlr: fast\n',
    'broken.yaml': 'n: 1\nname: [unclosed\n',
    'list.yaml': '- n\n- 1\n',
    'empty.yaml': '',
  });
  const bad = check(dir, 'bad.yaml');
  assert.equal(bad.code, 2);
  assert.deepEqual(bad.diagnostics.map(where), [
    ['unknown-param', 'bad.yaml', 1, 1, 1, 3],
    ['bad-param-value', 'bad.yaml', 2, 4, 2, 6],
    ['bad-param-value', 'bad.yaml', 3, 7, 3, 8],
    ['bad-param-value', 'bad.yaml', 4, 7, 4, 12],
    ['bad-param-value', 'bad.yaml', 5, 7, 5, 9],
    ['bad-param-value', 'bad.yaml', 6, 5, 6, 7],
    ['bad-param-value', 'bad.yaml', 7, 5, 7, 8],
  ]);
  const [unknown, float, string, seq, map, bool, number] = bad.diagnostics;
  assert.equal(unknown!.message, 'the pipeline has no param `nme`');
  assert.equal(unknown!.help, 'did you mean `name`?');
  assert.equal(float!.message, '`n` is an int param, so its value must be an integer, not `3.0` (a YAML float)');
  assert.equal(float!.help, 'for example `n: 3`');
  assert.equal(string!.message, '`name` is a string param, so its value must be a string, not the number 12');
  assert.equal(string!.help, 'for example `name: "12"`');
  assert.equal(seq!.message, '`tags` is a list param, so its value must be a list like [1, 2], not a mapping');
  assert.equal(map!.message, '`opts` is a map param, so its value must be a map like {a: 1}, not a list of 1');
  assert.equal(map!.help, 'for example `opts: {a: 1}`');
  assert.equal(bool!.message, '`on` is a bool param, so its value must be `true` or `false`, not the string "yes"');
  assert.equal(number!.message, '`lr` is a float param, so its value must be a number, not the string "fast"');

  // The text form: file:line:col, the line, a caret under the key.
  const text = cfpipe(dir, 'plan', 'p.cf', '--params', 'bad.yaml');
  assert.equal(text.code, 2);
  assert.match(text.stderr, /error: the pipeline has no param `nme`\n --> bad\.yaml:1:1\n {2}\|\n1 \| nme: 4\n {2}\| \^\^\^\n {2}= help: did you mean `name`\?/);
  assert.match(text.stderr, /--> bad\.yaml:3:7\n {2}\|\n3 \| name: 12\n {2}\| {7}\^\^\n/);
  assert.doesNotMatch(text.stderr, /\n\s+at /, 'no stack trace');
  const github = cfpipe(dir, 'check', 'p.cf', '--params', 'bad.yaml', '--format', 'github');
  assert.match(github.stdout, /^::error file=bad\.yaml,line=1,col=1,endLine=1,endColumn=3,title=cfpipe unknown-param::the pipeline has no param `nme`%0Ahelp: did you mean `name`\?$/m);

  const missing = check(dir, 'nope.yaml', 'lst.yaml');
  assert.equal(missing.code, 2);
  assert.deepEqual(missing.diagnostics.map((d) => [d.code, d.file, d.message, d.help]), [
    ['missing-params-file', null, 'params file `nope.yaml` does not exist', 'a --params path is relative to the working directory'],
    ['missing-params-file', null, 'params file `lst.yaml` does not exist', 'did you mean `list.yaml`?'],
  ]);

  const broken = check(dir, 'broken.yaml');
  assert.equal(broken.code, 2);
  assert.deepEqual(broken.diagnostics.map((d) => [d.code, d.file, d.line]), [['config-syntax', 'broken.yaml', 3]]);
  assert.match(broken.diagnostics[0]!.message, /^YAML syntax error: /);

  const list = check(dir, 'list.yaml');
  assert.equal(list.code, 2);
  assert.deepEqual(list.diagnostics.map((d) => [d.code, d.file, d.line, d.column]), [['params-not-a-map', 'list.yaml', 1, 1]]);
  assert.equal(list.diagnostics[0]!.message, 'a params file must be a mapping of param names to values');

  assert.deepEqual(check(dir, 'empty.yaml'), { code: 0, diagnostics: [], stderr: '' }, 'an empty file sets nothing');

  // A run with any error in a file runs nothing and leaves no store behind.
  const run = cfpipe(dir, 'run', 'p.cf', '--params', 'empty.yaml', '--params', 'bad.yaml');
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--> bad\.yaml:1:1/);
  assert.equal(existsSync(join(dir, '.cfpipe')), false);
});

test('--params in every pipeline command\'s help and the README', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-params-help-'));
  try {
    for (const command of ['run', 'plan', 'check', 'status', 'explain']) {
      const help = cfpipe(dir, command, '--help');
      assert.match(help.stdout + help.stderr, /--params FILE .*\n(.*\n)*.*e\.g\. --params configs\/presets\/gpu\.yaml/, command);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  assert.match(readme, /--params configs\/presets\/gpu\.yaml/);
});

test('the shipped GPU preset compiles with every shipped pipeline and reaches every model stage\'s model_kwargs', () => {
  const presetPath = fromRoot('configs', 'presets', 'gpu.yaml');
  const preset = parseYaml(readFileSync(presetPath, 'utf8')) as { model: Record<string, unknown> };
  assert.ok(Object.keys(preset.model).length > 0);
  for (const pipeline of ['framewise', 'chunkwise', 'ablation']) {
    const { graph, diagnostics } = compilePipeline(fromRoot('pipelines', `${pipeline}.cf`), { paramFiles: [presetPath], root: repoRoot, gpusAvailable: 0 });
    assert.ok(graph, `${pipeline}: ${diagnostics.map((d) => d.message).join('; ')}`);
    const modelTasks = graph.tasks.filter((t) => ['train', 'ode_pairs', 'infer'].includes(t.kind));
    assert.ok(modelTasks.length >= 5, pipeline);
    // Every network the pipeline builds (train, ODE pairs, inference) must have the preset's shape,
    // or a checkpoint would not load into the next stage.
    for (const t of modelTasks) {
      const kwargs = t.config?.values['model_kwargs'] as Record<string, unknown> | undefined;
      for (const [key, value] of Object.entries(preset.model)) assert.deepEqual(kwargs?.[key], value, `${pipeline}: ${t.id} model_kwargs.${key}`);
    }
  }
});
