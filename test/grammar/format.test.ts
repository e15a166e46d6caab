import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { formatPipeline, formatSource, parsePipeline } from '../../grammar/index.js';
import { fromRoot } from '../util/paths.js';
import { withoutRanges } from './ast-walk.js';

const fixtures = fromRoot('test', 'grammar', 'fixtures');

function format(source: string): string {
  const r = formatSource('f.cf', source);
  assert.ok(r.text !== undefined, JSON.stringify(r.diagnostics));
  return r.text;
}

test('formatting the fixtures is idempotent, keeps the AST and keeps every comment', () => {
  for (const name of readdirSync(fixtures).filter((f) => f.endsWith('.cf'))) {
    const source = readFileSync(`${fixtures}/${name}`, 'utf8');
    const before = parsePipeline(name, source);
    const once = formatPipeline(before.file);
    const after = parsePipeline(name, once);
    assert.deepEqual(after.diagnostics, [], name);
    assert.deepEqual(withoutRanges(after.file.statements), withoutRanges(before.file.statements), name);
    assert.deepEqual(after.file.comments.map((c) => c.text), before.file.comments.map((c) => c.text.trimEnd()), name);
    assert.equal(formatPipeline(after.file), once, `${name}: not idempotent`);
  }
});

test('canonical layout: indentation, spacing, separators, blank lines, empty bodies', () => {
  const messy = [
    'pipeline   "p"',
    '',
    '',
    '',
    'param  n :int=3;param m: list = [1,2 ,3]',
    'default a ,b',
    'stage a:k{x=1;y="s",z=b.o',
    '        output  r :file="r.txt" publish r to "out/${n}.txt"}',
    'stage b[i in 0..n]: k {}',
    'stage c: k {',
    '',
    '',
    '   q = { k: [ ], m: { } , "x y": true }',
    '}',
  ].join('\n');
  assert.equal(
    format(messy),
    [
      'pipeline "p"',
      '',
      'param n: int = 3',
      'param m: list = [1, 2, 3]',
      'default a, b',
      'stage a: k {',
      '  x = 1',
      '  y = "s"',
      '  z = b.o',
      '  output r: file = "r.txt"',
      '  publish r to "out/${n}.txt"',
      '}',
      'stage b[i in 0..n]: k {}',
      'stage c: k {',
      '  q = { k: [], m: {}, "x y": true }',
      '}',
      '',
    ].join('\n'),
  );
});

test('long lists and maps break one element per line with trailing commas, nested ones too', () => {
  const words = Array.from({ length: 12 }, (_, i) => `"argument-number-${i}"`).join(', ');
  const out = format(`stage e: exec {\n  command = [${words}]\n  env = { a: 1, b: [${words}] }\n}\n`);
  const lines = out.split('\n');
  assert.equal(lines[1], '  command = [');
  assert.equal(lines[2], '    "argument-number-0",');
  assert.equal(lines[14], '  ]');
  assert.equal(lines[15], '  env = {');
  assert.equal(lines[16], '    a: 1,');
  assert.equal(lines[17], '    b: [');
  assert.equal(lines[18], '      "argument-number-0",');
  assert.ok(lines.every((l) => l.length <= 100));
  assert.equal(format(out), out);
});

test('comments stay where they were: own-line, trailing, after `{`, before `}`, inside maps, at the end', () => {
  const source = [
    '# head',
    '',
    'param n: int = 1 # trailing param',
    '# about a',
    'stage a: k { # after brace',
    '  # before x',
    '  x = 1 # after x',
    '',
    '  y = {',
    '    # inside map',
    '    a: 1, # after a',
    '    b: 2,',
    '    # before map close',
    '  } # after map',
    '  # before close',
    '} # after stage',
    '# tail',
    '',
  ].join('\n');
  assert.equal(format(source), source);
});

test('comments inside a one-line statement move above it without becoming a param doc', () => {
  const source = 'param # odd\n  n: int = 1 # doc of n\n';
  const out = format(source);
  assert.equal(out, '# odd\n\nparam n: int = 1 # doc of n\n');
  const docs = (s: string): unknown => parsePipeline('f.cf', s).file.statements.map((x) => x.kind === 'Param' && x.doc);
  assert.deepEqual(docs(out), docs(source));
});

test('strings are printed with their escapes; numbers as written', () => {
  const source = 'param s: string = "q\\"b\\\\s\\n\\t\\${x}$y ${n}"\nparam f: float = 2E-6\nparam i: int = -0\n';
  assert.equal(format(source), 'param s: string = "q\\"b\\\\s\\n\\t\\${x}$y ${n}"\nparam f: float = 2E-6\nparam i: int = -0\n');
});

test('a file with errors is not formatted', () => {
  const r = formatSource('bad.cf', 'stage a: k {\n');
  assert.equal(r.text, undefined);
  assert.equal(r.diagnostics[0]?.code, 'unclosed-stage');
  assert.equal(format(''), '');
  assert.equal(format('# only\n'), '# only\n');
});
