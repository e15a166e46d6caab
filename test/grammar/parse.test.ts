import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parsePipeline } from '../../grammar/index.js';
import type { Expression, OutputRef, ParamDecl, StageDecl, Statement, StringLiteral } from '../../grammar/ast.js';
import { CfParser } from '../../grammar/parser.js';
import { validatedLexer } from '../../grammar/lexer.js';
import { fromRoot } from '../util/paths.js';
import { naivePosition, rangedNodes } from './ast-walk.js';

const fixture = (name: string): string => readFileSync(fromRoot('test', 'grammar', 'fixtures', name), 'utf8');
const stage = (ss: readonly Statement[], name: string): StageDecl => {
  const s = ss.find((x): x is StageDecl => x.kind === 'Stage' && x.name.name === name);
  assert.ok(s, `stage ${name}`);
  return s;
};
const value = (s: StageDecl, name: string): Expression => {
  const item = s.items.find((i) => i.kind === 'Assign' && i.name.name === name);
  assert.ok(item && item.kind === 'Assign', `item ${name}`);
  return item.value;
};

test('the grammar and the token set pass chevrotain validation (no ambiguities)', () => {
  const ctx = { source: '', stageName: undefined, stageBrace: undefined, details: [] };
  assert.doesNotThrow(() => new CfParser(ctx, true));
  assert.doesNotThrow(() => validatedLexer());
});

test('the language sketch parses into the expected statements', () => {
  const { file, diagnostics } = parsePipeline('sketch.cf', fixture('sketch.cf'));
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(
    file.statements.map((s) => s.kind),
    ['Pipeline', 'Include', 'Param', 'Param', 'Default', 'Provide', 'Stage', 'Stage', 'Stage', 'Stage'],
  );
  const [pipeline, include, variant, steps, dflt, provide] = file.statements;
  assert.equal(pipeline?.kind === 'Pipeline' && pipeline.name.parts[0]?.kind === 'Text' && pipeline.name.parts[0].text, 'causal-forcing/framewise');
  assert.equal(include?.kind === 'Include' && include.path.parts.length, 1);
  assert.equal(variant?.kind === 'Param' && variant.type.name, 'string');
  assert.equal((variant as ParamDecl).doc, 'types: string int float bool list map path');
  assert.ok(steps?.kind === 'Param' && steps.default?.kind === 'Number' && steps.default.value === 1200 && steps.default.isInteger);
  assert.deepEqual(dflt?.kind === 'Default' && dflt.targets.map((t) => t.name), ['infer', 'eval']);
  assert.ok(provide?.kind === 'Provide' && provide.target.stage.name === 'ar_diffusion' && provide.target.output.name === 'model');

  const ar = stage(file.statements, 'ar_diffusion');
  assert.equal(ar.stageKind.name, 'train');
  const init = value(ar, 'init') as OutputRef;
  assert.deepEqual([init.kind, init.stage.name, init.output.name, init.index], ['OutputRef', 'base', 'model', undefined]);
  assert.deepEqual(value(ar, 'steps'), { kind: 'Name', name: (value(ar, 'steps') as { name: unknown }).name, range: value(ar, 'steps').range });
  const overrides = value(ar, 'overrides');
  assert.ok(overrides.kind === 'Map');
  const lr = overrides.entries[0];
  assert.ok(lr && lr.key.kind === 'Identifier' && lr.key.name === 'lr');
  assert.deepEqual(lr.value.kind === 'Number' && [lr.value.value, lr.value.raw, lr.value.isInteger], [4e-6, '4e-6', false]);
  const steps4 = overrides.entries[1]?.value;
  assert.ok(steps4?.kind === 'List');
  assert.deepEqual(steps4.items.map((i) => i.kind === 'Number' && i.value), [1000, 750, 500, 250]);
  const publish = ar.items.at(-1);
  assert.ok(publish?.kind === 'Publish' && publish.output.name === 'model' && publish.path.kind === 'String');

  const ode = stage(file.statements, 'ode');
  assert.equal(ode.fanOut?.variable.name, 'shard');
  const domain = ode.fanOut?.domain;
  assert.ok(domain?.kind === 'Range' && domain.low.kind === 'Number' && domain.low.value === 0 && domain.high.kind === 'Number' && domain.high.value === 4);

  const parts = value(stage(file.statements, 'ode_db'), 'parts') as OutputRef;
  assert.equal(parts.index?.kind, 'All');
  assert.equal(parts.output.name, 'trajectories');

  const notes = stage(file.statements, 'notes');
  const command = value(notes, 'command');
  assert.ok(command.kind === 'List' && command.items.length === 4);
  const out = command.items[3] as StringLiteral;
  assert.deepEqual(out.parts.map((p) => p.kind), ['Interpolation']);
  const output = notes.items[1];
  assert.ok(output?.kind === 'Output' && output.name.name === 'report' && output.type.name === 'file' && output.path?.kind === 'String');
  assert.equal(file.comments.length, 12);
});

test('every range of a parsed file is inside the source, ordered, and agrees with its offsets', () => {
  for (const name of ['sketch.cf', 'chunkwise.cf', 'common.cf']) {
    const source = fixture(name);
    const { file, diagnostics } = parsePipeline(name, source);
    assert.deepEqual(diagnostics, [], name);
    const nodes = rangedNodes(file);
    assert.ok(nodes.length > 20, name);
    for (const { range } of [...nodes, ...file.comments.map((c) => ({ range: c.range }))]) {
      assert.equal(range.file, name);
      assert.ok(range.start.offset <= range.end.offset && range.end.offset <= source.length);
      assert.deepEqual(naivePosition(source, range.start.offset), { line: range.start.line, column: range.start.column });
      assert.deepEqual(naivePosition(source, range.end.offset), { line: range.end.line, column: range.end.column });
    }
  }
});

test('ranges cover exactly the text of names, strings, numbers, references and whole stages', () => {
  const source = fixture('chunkwise.cf');
  const { file } = parsePipeline('c.cf', source);
  const text = (r: { start: { offset: number }; end: { offset: number } }): string => source.slice(r.start.offset, r.end.offset);
  const dmd = stage(file.statements, 'dmd');
  assert.equal(text(dmd.name.range), 'dmd');
  assert.ok(text(dmd.range).startsWith('stage dmd: train {') && text(dmd.range).endsWith('safetensors"\n}'));
  assert.equal(text(value(dmd, 'first').range), 'ode[0].trajectories');
  assert.equal(text(value(dmd, 'config').range), '"configs/causal_forcing_dmd_${variant}.yaml"');
  const ode = stage(file.statements, 'ode');
  assert.equal(text(ode.fanOut!.range), '[shard in 0..ode_shards]');
  assert.equal(text(ode.fanOut!.domain.range), '0..ode_shards');
  assert.equal(text(value(ode, 'seed').range), '-17');
  const lr = file.statements.find((s): s is ParamDecl => s.kind === 'Param' && s.name.name === 'lr')!;
  assert.equal(text(lr.range), 'param lr: float = 2e-6');
  assert.equal(text(lr.type.range), 'float');
});

test('string escapes decode and `${}` holes parse as expressions with their own ranges', () => {
  const source = 'param p: string = "a\\"b\\\\c\\n\\t\\$${x} ${ode[2].out}-${s.o}\\${lit}"\n';
  const { file, diagnostics } = parsePipeline('s.cf', source);
  assert.deepEqual(diagnostics, []);
  const p = file.statements[0] as ParamDecl;
  const str = p.default as StringLiteral;
  assert.deepEqual(
    str.parts.map((x) => (x.kind === 'Text' ? x.text : x.expr.kind)),
    ['a"b\\c\n\t$', 'Name', ' ', 'OutputRef', '-', 'OutputRef', '${lit}'],
  );
  const holes = str.parts.filter((x) => x.kind === 'Interpolation');
  assert.deepEqual(holes.map((h) => source.slice(h.range.start.offset, h.range.end.offset)), ['${x}', '${ode[2].out}', '${s.o}']);
  const ode = holes[1]!.kind === 'Interpolation' ? (holes[1]!.expr as OutputRef) : undefined;
  assert.equal(ode && source.slice(ode.stage.range.start.offset, ode.stage.range.end.offset), 'ode');
  assert.equal(ode?.index && ode.index.kind === 'Number' && ode.index.value, 2);
  assert.equal(ode?.index?.range.start.column, source.indexOf('[2]') + 2);
});

test('string problems: unknown escape, unterminated hole, empty hole, bad hole, unterminated string', () => {
  const cases: [string, string][] = [
    ['param p: string = "a\\qb"', 'bad-escape'],
    ['param p: string = "${x"', 'unterminated-interpolation'],
    ['param p: string = "${ }"', 'empty-interpolation'],
    ['param p: string = "${a b}"', 'bad-interpolation'],
    ['param p: string = "${a.}"', 'expected-token'],
    ['param p: string = "abc\nparam q: int = 1', 'unterminated-string'],
  ];
  for (const [source, code] of cases) {
    const { diagnostics } = parsePipeline('s.cf', source);
    assert.deepEqual(diagnostics.map((d) => d.code), [code], source);
  }
});

test('separators: new lines, commas and semicolons all separate items, in bodies, maps and lists', () => {
  const a = parsePipeline('a.cf', 'stage s: k {\n  x = [1\n 2]\n  y = {a: 1\n b: 2}\n}\n');
  const b = parsePipeline('b.cf', 'stage s: k { x = [1, 2,]; y = {a: 1; b: 2,}, }');
  assert.deepEqual(a.diagnostics, []);
  assert.deepEqual(b.diagnostics, []);
  const items = (f: typeof a): unknown =>
    (f.file.statements[0] as StageDecl).items.map((i) => i.kind === 'Assign' && i.value.kind);
  assert.deepEqual(items(a), ['List', 'Map']);
  assert.deepEqual(items(b), ['List', 'Map']);
});

test('a name followed by a list on the same line is not an index unless `[` touches it', () => {
  const { file, diagnostics } = parsePipeline('l.cf', 'stage s: k { x = [a [1], b[2].o] }');
  assert.deepEqual(diagnostics, []);
  const list = (file.statements[0] as StageDecl).items[0];
  assert.ok(list?.kind === 'Assign' && list.value.kind === 'List');
  assert.deepEqual(list.value.items.map((i) => i.kind), ['Name', 'List', 'OutputRef']);
});

test('keywords may be map keys; CRLF line ends and a byte-order mark are accepted', () => {
  const { file, diagnostics } = parsePipeline('k.cf', '\uFEFFstage s: k {\r\n  x = { default: 1, stage: 2 } # note\r\n}\r\n');
  assert.deepEqual(diagnostics, []);
  assert.equal(file.comments[0]?.text, '# note');
  const x = (file.statements[0] as StageDecl).items[0];
  assert.ok(x?.kind === 'Assign' && x.value.kind === 'Map');
  assert.deepEqual(x.value.entries.map((e) => e.key.kind === 'Identifier' && e.key.name), ['default', 'stage']);
});

test('recovery reports each independent error once and keeps the stages around them', () => {
  const source = [
    'stage a: train {',
    '  x = 1',
    '  y =',
    '  z = base.',
    '  w = 2',
    '',
    'stage b: train { q = [1, 2 }',
    'param n: integer = 3',
    'stgae c: x {}',
    'stage d: x { o = {a: 1, a: 2}',
    '  o = 3 }',
    '}',
  ].join('\n');
  const { file, diagnostics } = parsePipeline('r.cf', source);
  assert.deepEqual(
    diagnostics.map((d) => [d.range?.start.line, d.code]),
    [
      [3, 'expected-value'],
      [4, 'expected-token'],
      [5, 'unclosed-stage'],
      [7, 'unclosed-list'],
      [8, 'unknown-type'],
      [9, 'expected-statement'],
      [10, 'duplicate-key'],
      [11, 'duplicate-key'],
      [12, 'unexpected-token'],
    ],
  );
  assert.equal(diagnostics.find((d) => d.code === 'unknown-type')?.help, 'did you mean `int`?');
  assert.equal(diagnostics.find((d) => d.code === 'expected-statement')?.help, 'did you mean `stage`?');
  const a = stage(file.statements, 'a');
  assert.deepEqual(a.items.map((i) => i.kind === 'Assign' && i.name.name), ['x', 'w']);
  assert.deepEqual(file.statements.map((s) => s.kind), ['Stage', 'Stage', 'Param', 'Stage']);
});

test('duplicate params, stages, outputs and pipeline names point at both places', () => {
  const source = 'pipeline "a"\npipeline "b"\nparam x: int\nparam x: int\nstage s: k { output o: file\n output o: file }\nstage s: k {}\n';
  const { diagnostics } = parsePipeline('d.cf', source);
  assert.deepEqual(
    diagnostics.map((d) => [d.code, d.range?.start.line, d.related?.[0]?.range.start.line]),
    [
      ['duplicate-pipeline', 2, 1],
      ['duplicate-param', 4, 3],
      ['duplicate-output', 6, 5],
      ['duplicate-stage', 7, 5],
    ],
  );
});

test('inputs that are not pipelines never throw and give diagnostics inside the source', () => {
  const inputs = ['', '#', '\n\n', '}', '{', '"', '"${', '${}', 'stage', 'stage s', 'stage s[', 'param', '[[[[', '@@@', 'a.b.c', '-', '1..', 'stage s: k { x = a[*] }'];
  inputs.push('['.repeat(5000), 'stage s: k { x = ' + '['.repeat(100) + ' }', `stage s: k { x = "${'${'.repeat(50)}" }`);
  for (const source of inputs) {
    const { diagnostics } = parsePipeline('x.cf', source);
    for (const d of diagnostics) {
      assert.ok(d.range && d.range.end.offset <= source.length && d.range.start.offset <= d.range.end.offset, `${source}: ${d.message}`);
      assert.ok(!/[<>]{2}|Expecting|token of type/.test(d.message), `chevrotain wording leaked: ${d.message}`);
    }
    if (source.trim() !== '' && source !== '#') assert.ok(diagnostics.length > 0, source.slice(0, 40));
  }
});
