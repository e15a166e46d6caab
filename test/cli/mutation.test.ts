// Random mutations of the shipped pipelines and configs, checked through the very function the
// executable runs (runCli) and, for a few dozen, through real child processes. Whatever the
// mutation, cfpipe prints diagnostics and exits 0 or 2: never an internal error, a stack trace
// or a hang. Seeded, so a failure names a case that can be replayed (CFPIPE_MUTATION_SEED).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../runner/cli/cli.js';
import type { CliIO } from '../../runner/cli/io.js';
import { cfpipeBin, fromRoot } from '../util/paths.js';
import { seededRandom } from '../util/seeded_random.js';

const SEED = Number(process.env['CFPIPE_MUTATION_SEED'] ?? 20260724);
const IN_PROCESS = 2400;
const CHILDREN = 30;

const FRAGMENTS = ['{', '}', '[', ']', '[*]', '..', '.', '=', ':', ',', '"', '${', '#', '\n', ' ', '0', '-1', '4e-6', '1e309',
  'stage', 'param', 'include', 'provide', 'default', 'publish', 'to', 'output', 'in', 'true', 'int', 'train', 'exec',
  'base', 'model', 'clean', 'latents', 'ode', 'trajectories', 'config', 'steps', 'gpus = 3', '"configs/x.yaml"', '\\', 'é', '\t'];

/** One random edit of `text`: delete, insert, duplicate, swap lines, replace a word, truncate. */
function mutate(text: string, random: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const at = Math.floor(random() * (text.length + 1));
  const lines = text.split('\n');
  switch (Math.floor(random() * 7)) {
    case 0:
      return text.slice(0, at) + text.slice(Math.min(text.length, at + 1 + Math.floor(random() * 12)));
    case 1:
      return text.slice(0, at) + pick(FRAGMENTS) + text.slice(at);
    case 2: {
      const i = Math.floor(random() * lines.length);
      lines.splice(i, 0, lines[i] ?? '');
      return lines.join('\n');
    }
    case 3: {
      const i = Math.floor(random() * lines.length);
      const j = Math.floor(random() * lines.length);
      [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
      return lines.join('\n');
    }
    case 4: {
      const words = text.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? ['x'];
      const from = pick(words);
      return text.replace(new RegExp(`\\b${from}\\b`), pick([...words, from.slice(1), `${from}s`]));
    }
    case 5:
      return text.slice(0, at);
    default: {
      const numbers = [...text.matchAll(/\d+/g)];
      if (numbers.length === 0) return text + pick(FRAGMENTS);
      const n = pick(numbers);
      return text.slice(0, n.index) + pick(['-5', '99999999', '0', '2.5', '"3"', 'true']) + text.slice(n.index! + n[0].length);
    }
  }
}

/** A scratch project: the shipped pipelines and configs, so includes and config paths resolve. */
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-mutation-'));
  cpSync(fromRoot('pipelines'), join(dir, 'pipelines'), { recursive: true });
  cpSync(fromRoot('configs'), join(dir, 'configs'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{}\n');
  return dir;
}

const TARGETS = ['pipelines/framewise.cf', 'pipelines/common.cf', 'pipelines/smoke.cf', 'pipelines/ablation.cf', 'configs/causal_forcing_dmd_framewise.yaml', 'configs/default_config.yaml'];

function collector(): { io: CliIO; out: () => string } {
  let text = '';
  return { io: { stdout: (s) => void (text += s), stderr: (s) => void (text += s), color: false }, out: () => text };
}

function assertOnlyDiagnostics(code: number, output: string, what: string): void {
  assert.ok(code === 0 || code === 2, `${what}: exit ${code}\n${output}`);
  assert.doesNotMatch(output, /internal error/, what);
  assert.doesNotMatch(output, /\n\s+at .*:\d+:\d+\)?\n/, `${what}: a stack trace`);
  if (code === 2) assert.match(output, /(^|\n)(error|warning)(\[|:)/, `${what}: exit 2 without a diagnostic`);
}

test(`${IN_PROCESS} mutated pipelines and configs through runCli: only diagnostics`, async (t) => {
  const dir = scratch();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const random = seededRandom(SEED);
  const originals = new Map(TARGETS.map((p) => [p, readFileSync(join(dir, p), 'utf8')]));
  let slowest = 0;
  let failedChecks = 0;
  for (let i = 0; i < IN_PROCESS; i++) {
    const target = TARGETS[i % TARGETS.length]!;
    let text = originals.get(target)!;
    const edits = 1 + Math.floor(random() * 3);
    for (let e = 0; e < edits; e++) text = mutate(text, random);
    writeFileSync(join(dir, target), text);
    const entry = target.endsWith('.cf') && target !== 'pipelines/common.cf' ? target : 'pipelines/framewise.cf';
    const command = i % 5 === 0 ? 'plan' : 'check';
    const { io, out } = collector();
    const started = performance.now();
    const code = await runCli([command, join(dir, entry), '--root', dir, '--gpus', '0'], io);
    slowest = Math.max(slowest, performance.now() - started);
    assertOnlyDiagnostics(code, out(), `case ${i} (seed ${SEED}, ${target}, ${command})`);
    if (code === 2) failedChecks++;
    writeFileSync(join(dir, target), originals.get(target)!);
  }
  assert.ok(slowest < 5000, `slowest case took ${slowest.toFixed(0)} ms`);
  assert.ok(failedChecks > IN_PROCESS / 3, `only ${failedChecks} mutations were rejected: the mutations are too weak`);
});

test(`${CHILDREN} mutated pipelines through the real executable`, (t) => {
  const dir = scratch();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const random = seededRandom(SEED + 1);
  const original = readFileSync(join(dir, 'pipelines/framewise.cf'), 'utf8');
  for (let i = 0; i < CHILDREN; i++) {
    writeFileSync(join(dir, 'pipelines/framewise.cf'), mutate(mutate(original, random), random));
    const result = spawnSync(process.execPath, [cfpipeBin, i % 2 ? 'plan' : 'check', join(dir, 'pipelines/framewise.cf'), '--root', dir, '--gpus', '0'], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, NO_COLOR: '1' },
    });
    assert.equal(result.signal, null, `case ${i}: killed (hang?)`);
    assertOnlyDiagnostics(result.status ?? -1, result.stdout + result.stderr, `child case ${i} (seed ${SEED + 1})`);
  }
});
