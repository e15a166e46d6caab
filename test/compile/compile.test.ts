// The compiler on small pipelines written in the test: fan-out and fan-in, params and --set,
// provide, defaults, includes, resolved configs, and that user mistakes never throw.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { compilePipeline, type CompileOptions } from '../../runner/compile/index.js';
import { parseYamlConfig } from '../../runner/config/index.js';
import { fromRoot, repoRoot } from '../util/paths.js';

/** Compile `text` as a pipeline beside the shipped ones (so `include "common.cf"` works). */
function compile(text: string, options: CompileOptions = {}) {
  const path = join(repoRoot, 'pipelines', '__test__.cf');
  return compilePipeline(path, { root: repoRoot, gpusAvailable: 0, overlay: new Map([[path, text]]), ...options });
}
const codes = (r: ReturnType<typeof compile>) => r.diagnostics.map((d) => d.code);

const ODE = `include "common.cf"
param shards: int = 3
stage ode[s in 0..shards]: ode_pairs {
  teacher = base.model
  data = clean.latents
  shard = s
  shards = shards
}
stage db: lmdb_build { parts = ode[*].trajectories }
stage one: lmdb_build { parts = [ode[2].trajectories, ode[0].trajectories] }
`;

test('fan-out gives one task per member, fan-in collects them in order', () => {
  const { graph, diagnostics } = compile(ODE);
  assert.deepEqual(diagnostics, []);
  assert.ok(graph);
  const ids = graph.tasks.map((t) => t.id);
  assert.deepEqual(ids.filter((id) => id.startsWith('ode')), ['ode[0]', 'ode[1]', 'ode[2]']);
  const members = graph.tasks.filter((t) => t.stage === 'ode');
  assert.deepEqual(members.map((t) => [t.fanOut?.value, t.params['shard']]), [[0, 0], [1, 1], [2, 2]]);
  assert.equal(new Set(members.map((t) => t.key)).size, 3, 'members have distinct keys');
  const db = graph.tasks.find((t) => t.id === 'db')!;
  assert.deepEqual(db.inputs[0]!.sources, [0, 1, 2].map((i) => ({ kind: 'task', task: `ode[${i}]`, output: 'trajectories' })));
  assert.deepEqual(graph.tasks.find((t) => t.id === 'one')!.deps, ['ode[0]', 'ode[2]']);
  // Topological: every task after its deps.
  for (const [i, task] of graph.tasks.entries()) for (const dep of task.deps) assert.ok(ids.indexOf(dep) < i, `${dep} before ${task.id}`);
});

test('--set is parsed by the param type; mistakes are diagnostics with did-you-mean', () => {
  assert.equal(compile(ODE, { set: { shards: '5' } }).graph?.tasks.filter((t) => t.stage === 'ode').length, 5);
  const bad = compile(ODE, { set: { shards: 'five' } });
  assert.equal(bad.graph, undefined);
  assert.ok(codes(bad).includes('bad-set-value'));
  assert.match(bad.diagnostics[0]!.message, /`shards` is an int param/);
  const unknown = compile(ODE, { set: { shard: '2' } });
  assert.deepEqual(codes(unknown), ['unknown-param']);
  assert.equal(unknown.diagnostics[0]!.help, 'did you mean `shards`?');
});

test('a provided output replaces the producer for its consumers; the producer stays in the graph', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-provide-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'base.safetensors'), 'x');
  const { graph, diagnostics } = compile(`${ODE}provide base.model = "${join(dir, 'base.safetensors')}"\n`);
  assert.deepEqual(diagnostics, []);
  const ode0 = graph!.tasks.find((task) => task.id === 'ode[0]')!;
  assert.deepEqual(ode0.deps, ['clean']);
  assert.deepEqual(ode0.inputs.find((i) => i.name === 'teacher')!.sources, [{ kind: 'path', path: join(dir, 'base.safetensors') }]);
  assert.ok(graph!.tasks.some((task) => task.id === 'base'));
  const missing = compile(`${ODE}provide base.model = "${join(dir, 'nope')}"\n`);
  assert.deepEqual(codes(missing), ['missing-provided-file']);
  assert.equal(missing.diagnostics[0]!.range?.start.line, 11);
});

test('default targets: named stages (fan-out expanded), or every task', () => {
  assert.deepEqual(compile(`${ODE}default db, ode\n`).graph!.defaults, ['db', 'ode[0]', 'ode[1]', 'ode[2]']);
  assert.equal(compile(ODE).graph!.defaults.length, compile(ODE).graph!.tasks.length);
});

test('a train stage gets default_config under its YAML, overrides on top, steps as max_steps', () => {
  const { graph, diagnostics } = compile(`include "common.cf"
stage ar: train {
  config = "configs/ar_diffusion_tf_framewise.yaml"
  init = base.model
  data = clean.latents
  steps = 12
  overrides = { lr: 5e-5, model_kwargs: { num_layers: 2 } }
}
`);
  assert.deepEqual(diagnostics, []);
  const config = graph!.tasks.find((t) => t.id === 'ar')!.config!;
  assert.equal(config.path, 'configs/ar_diffusion_tf_framewise.yaml');
  assert.equal(config.values['max_steps'], 12);
  assert.equal(config.values['lr'], 5e-5);
  assert.equal(config.values['weight_decay'], 0.01, 'from default_config.yaml');
  assert.equal(config.values['num_frame_per_block'], 1, 'from the chosen file');
  const kwargs = config.values['model_kwargs'] as Record<string, unknown>;
  assert.equal(kwargs['num_layers'], 2, 'override');
  assert.equal(kwargs['dim'], 64, 'default block kept beside the override');
  const chosen = parseYaml(readFileSync(fromRoot('configs/ar_diffusion_tf_framewise.yaml'), 'utf8')) as { model_kwargs: Record<string, unknown> };
  assert.equal(kwargs['timestep_shift'], chosen.model_kwargs['timestep_shift'], 'chosen file merged into the default block');
});

test('GPU requests are checked against --gpus', () => {
  const text = `include "common.cf"
stage ar: train {
  config = "configs/ar_diffusion_tf_framewise.yaml"
  init = base.model
  data = clean.latents
  steps = 12
  gpus = 4
}
`;
  assert.deepEqual(codes(compile(text, { gpusAvailable: 2 })), ['gpus-unavailable']);
  assert.ok(compile(text, { gpusAvailable: 8 }).graph);
});

test('a file included twice (a diamond) is read once; a missing pipeline is a diagnostic', () => {
  const diamond = compile(`include "common.cf"\ninclude "../pipelines/common.cf"\n`);
  assert.deepEqual(diamond.diagnostics, []);
  assert.equal(diamond.graph!.tasks.length, 2);
  const missing = compilePipeline(join(repoRoot, 'pipelines', 'no-such.cf'), { root: repoRoot });
  assert.deepEqual(missing.diagnostics.map((d) => d.code), ['missing-file']);
});

test('odd inputs never throw: empty file, only comments, syntax errors', () => {
  for (const text of ['', '# nothing\n', 'stage', 'stage x: train {', '}{', 'param x: int = x\nstage a: synth { clips = x }']) {
    const result = compile(text);
    assert.ok(Array.isArray(result.diagnostics));
  }
  assert.deepEqual(codes(compile('param x: int = x\nstage a: synth { clips = x }')), ['param-cycle']);
});

test('YAML values carry 1-based line and column; syntax errors are diagnostics', () => {
  const ok = parseYamlConfig('c.yaml', 'a: 1\nnested:\n  b: [1, 2]\n');
  const b = ok.root!.entries!.get('nested')!.entries!.get('b')!;
  assert.deepEqual([b.range.start.line, b.range.start.column], [3, 6]);
  assert.deepEqual([b.keyRange!.start.line, b.keyRange!.start.column], [3, 3]);
  assert.deepEqual(b.value, [1, 2]);
  const bad = parseYamlConfig('c.yaml', 'a: [1\n');
  assert.equal(bad.root, undefined);
  assert.equal(bad.diagnostics[0]!.code, 'config-syntax');
});
