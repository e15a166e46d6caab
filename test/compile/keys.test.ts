// Cache keys follow meaning, not text: comments, YAML key order and number spelling never change
// a key; changing a value changes exactly the keys of the stages that read it and their
// descendants. Each test compiles a copy of the shipped pipelines and configs in a temp project.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument, isMap } from 'yaml';
import { compilePipeline, type CompileOptions } from '../../runner/compile/index.js';
import type { TaskGraph } from '../../runner/graph.js';
import { canonicalJson } from '../../runner/key/index.js';
import { fromRoot } from '../util/paths.js';

function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-keys-'));
  cpSync(fromRoot('configs'), join(dir, 'configs'), { recursive: true });
  cpSync(fromRoot('pipelines'), join(dir, 'pipelines'), { recursive: true });
  return dir;
}

function keys(dir: string, options: CompileOptions = {}, file = 'pipelines/framewise.cf'): Map<string, string> {
  const result = compilePipeline(join(dir, file), { root: dir, gpusAvailable: 0, ...options });
  assert.ok(result.graph, `did not compile: ${result.diagnostics.map((d) => d.message).join('; ')}`);
  return new Map(result.graph.tasks.map((t) => [t.id, t.key]));
}

function graph(dir: string): TaskGraph {
  return compilePipeline(join(dir, 'pipelines/framewise.cf'), { root: dir, gpusAvailable: 0 }).graph!;
}

/** The tasks whose key must change when `roots` change: the roots and everything downstream. */
function descendants(g: TaskGraph, roots: readonly string[]): Set<string> {
  const out = new Set(roots);
  for (const task of g.tasks) if (task.deps.some((d) => out.has(d))) out.add(task.id);
  return out;
}

function changed(before: Map<string, string>, after: Map<string, string>): Set<string> {
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
  return new Set([...before].filter(([id, key]) => after.get(id) !== key).map(([id]) => id));
}

const edit = (dir: string, path: string, change: (text: string) => string): void => {
  const file = join(dir, path);
  const before = readFileSync(file, 'utf8');
  const after = change(before);
  assert.notEqual(after, before, `the edit of ${path} changed nothing`);
  writeFileSync(file, after);
};

test('comments, YAML key order and number spelling leave every key unchanged', (t) => {
  const dir = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const before = keys(dir);
  for (const name of ['causal_ode_framewise.yaml', 'default_config.yaml', 'causal_forcing_dmd_framewise.yaml']) {
    edit(dir, `configs/${name}`, (text) => {
      const doc = parseDocument(text);
      assert.ok(isMap(doc.contents));
      doc.contents.items.reverse();
      doc.commentBefore = 'reordered by the test';
      return doc.toString().replace(/^(lr: .*)$/m, '$1 # a trailing comment');
    });
  }
  // The same number spelled another way (whatever value the preset holds).
  edit(dir, 'configs/causal_ode_framewise.yaml', (text) =>
    text.replace(/^lr: ([0-9.e+-]+)/m, (_, value: string) => `lr: ${Number(value).toFixed(12)}`));
  edit(dir, 'pipelines/framewise.cf', (text) => `# a new comment at the top\n${text.replace('stage ode_db', '# and one here\nstage ode_db')}`);
  edit(dir, 'pipelines/common.cf', (text) => text.replace('stage base:', '# comment\nstage base:'));
  assert.deepEqual(changed(before, keys(dir)), new Set());
});

test('a config value changes exactly the keys of the stages reading it and their descendants', (t) => {
  const dir = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const g = graph(dir);
  const before = keys(dir);
  edit(dir, 'configs/causal_ode_framewise.yaml', (text) => text.replace(/^lr: .*$/m, 'lr: 3.0e-4'));
  // ode_init trains with it; infer_ode samples with the same file but inference does not read lr.
  assert.deepEqual(changed(before, keys(dir)), descendants(g, ['ode_init']));
});

test('a key the inference stage reads changes the training stage and the inference stage', (t) => {
  const dir = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const g = graph(dir);
  const before = keys(dir);
  edit(dir, 'configs/causal_ode_framewise.yaml', (text) => text.replace('denoising_step_list: [1000, 750, 500, 250]', 'denoising_step_list: [1000, 500]'));
  assert.deepEqual(changed(before, keys(dir)), descendants(g, ['ode_init', 'infer_ode']));
});

test('logging-only keys (log_iters, gc_interval, sharding) and checkpoint_every never change a key', (t) => {
  const dir = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const before = keys(dir);
  edit(dir, 'configs/ar_diffusion_tf_framewise.yaml', (text) =>
    text.replace(/^log_iters: .*$/m, 'log_iters: 7').replace(/^sharding_strategy: .*$/m, 'sharding_strategy: no_shard'));
  edit(dir, 'configs/default_config.yaml', (text) => text.replace(/^gc_interval: .*$/m, 'gc_interval: 5'));
  edit(dir, 'pipelines/framewise.cf', (text) => text.replace('checkpoint_every = 100', 'checkpoint_every = 25'));
  assert.deepEqual(changed(before, keys(dir)), new Set());
});

test('the model size in default_config.yaml reaches every stage that builds or reads the model', (t) => {
  const dir = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const g = graph(dir);
  const before = keys(dir);
  edit(dir, 'configs/default_config.yaml', (text) => text.replace(/^ {2}dim: 64$/m, '  dim: 96'));
  assert.deepEqual(changed(before, keys(dir)), descendants(g, ['clean']));
});

test('--set and --use change the set stage and its descendants only', (t) => {
  const dir = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const g = graph(dir);
  const before = keys(dir);
  const dmdSteps = Number(g.params['dmd_steps']);
  assert.deepEqual(changed(before, keys(dir, { set: { dmd_steps: String(dmdSteps + 1) } })), descendants(g, ['dmd']));
  assert.deepEqual(changed(before, keys(dir, { set: { dmd_steps: String(dmdSteps) } })), new Set(), 'setting the default value is no change');

  writeFileSync(join(dir, 'teacher.safetensors'), 'weights');
  const used = compilePipeline(join(dir, 'pipelines/framewise.cf'), { root: dir, gpusAvailable: 0, use: { 'ar_diffusion.model': 'teacher.safetensors' } }).graph!;
  const readers = used.tasks.filter((task) => task.inputs.some((i) => i.sources.some((s) => s.kind === 'path' && s.path === 'teacher.safetensors')));
  assert.deepEqual(readers.map((r) => r.id).sort(), ['infer_teacher', 'ode[0]', 'ode[1]', 'ode[2]', 'ode[3]', 'ode_init']);
  const usedKeys = new Map(used.tasks.map((task) => [task.id, task.key]));
  const moved = changed(before, usedKeys);
  assert.deepEqual(moved, new Set([...descendants(g, ['ar_diffusion'])].filter((id) => id !== 'ar_diffusion')));
  assert.ok(!used.tasks.find((task) => task.id === 'ode_init')!.deps.includes('ar_diffusion'));
});

test('the stages shared by the two variants have the same keys in both pipelines', (t) => {
  const dir = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const frame = keys(dir);
  const chunk = keys(dir, {}, 'pipelines/chunkwise.cf');
  assert.equal(frame.get('clean'), chunk.get('clean'));
  assert.equal(frame.get('base'), chunk.get('base'));
  assert.notEqual(frame.get('ar_diffusion'), chunk.get('ar_diffusion'));
});

test('canonical JSON sorts keys and spells numbers one way', () => {
  assert.equal(canonicalJson({ b: 1, a: [2e-6, -0, 1.0] }), '{"a":[0.000002,0,1],"b":1}');
  assert.equal(canonicalJson({ a: { y: true, x: null } }), canonicalJson({ a: { x: null, y: true } }));
  assert.throws(() => canonicalJson(Number.NaN));
});
