import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePipeline, renderGithub, renderJson, renderText, suggest, editDistance } from '../../grammar/index.js';
import type { Diagnostic } from '../../grammar/diagnostic.js';

test('edit distance counts a swap of neighbours as one edit', () => {
  assert.equal(editDistance('stage', 'stage'), 0);
  assert.equal(editDistance('stgae', 'stage'), 1);
  assert.equal(editDistance('ar_difusion', 'ar_diffusion'), 1);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('abcdef', 'uvwxyz', 2), 3, 'stops early past the limit');
});

test('suggest finds close names, prefers case and distance, and stays quiet when nothing is close', () => {
  const stages = ['ar_diffusion', 'ode', 'ode_db', 'student', 'dmd'];
  assert.equal(suggest('ar_difusion', stages), 'ar_diffusion');
  assert.equal(suggest('AR_DIFFUSION', stages), 'ar_diffusion');
  assert.equal(suggest('studnet', stages), 'student');
  assert.equal(suggest('ode_bd', stages), 'ode_db');
  assert.equal(suggest('xyz', stages), undefined);
  assert.equal(suggest('x', ['y', 'z']), 'y', 'one edit is allowed even for a one-letter name');
  assert.equal(suggest('ode', ['ode']), undefined, 'an exact name is not a suggestion for itself');
  assert.equal(suggest('integer', ['string', 'int', 'float']), 'int', 'a prefix is a last resort');
  assert.equal(suggest('str', ['string', 'int']), 'string');
  assert.equal(suggest('checkpoint_evry', ['checkpoint_every', 'checkpoint_dir']), 'checkpoint_every');
});

const source = 'stage a: train {\n\tsteps: 10\n}\n';
const sources = new Map([['p.cf', source]]);

test('text rendering: header, location, source line, carets under the whole range, help', () => {
  const { diagnostics } = parsePipeline('p.cf', 'param n: integer = 3\n');
  assert.equal(
    renderText(diagnostics, new Map([['p.cf', 'param n: integer = 3\n']])),
    [
      'error: unknown type `integer` for param `n`',
      ' --> p.cf:1:10',
      '  |',
      '1 | param n: integer = 3',
      '  |          ^^^^^^^',
      '  = help: did you mean `int`?',
      '',
    ].join('\n'),
  );
});

test('text rendering expands tabs so carets line up, and colors only when asked', () => {
  const { diagnostics } = parsePipeline('p.cf', source);
  const plain = renderText(diagnostics, sources);
  assert.ok(plain.includes('2 |     steps: 10\n  |          ^\n'), plain);
  assert.ok(!plain.includes('\u001b['));
  const colored = renderText(diagnostics, sources, { color: true });
  assert.ok(colored.includes('\u001b[1;31merror\u001b[0m'));
  assert.equal(colored.replace(/\u001b\[[0-9;]*m/g, ''), plain);
});

test('text rendering of related places, of a file it has no source for, and of a diagnostic without place', () => {
  const d: Diagnostic[] = [
    {
      severity: 'warning',
      code: 'x',
      message: 'something odd',
      range: { file: 'gone.cf', start: { line: 12, column: 3, offset: 100 }, end: { line: 12, column: 5, offset: 102 } },
      related: [{ message: 'see also', range: { file: 'p.cf', start: { line: 1, column: 7, offset: 6 }, end: { line: 1, column: 8, offset: 7 } } }],
    },
    { severity: 'error', code: 'missing-file', message: 'no such file `x.cf`', help: 'check the path' },
  ];
  assert.equal(
    renderText(d, sources),
    [
      'warning: something odd',
      '  --> gone.cf:12:3',
      'note: see also',
      '  --> p.cf:1:7',
      '   |',
      ' 1 | stage a: train {',
      '   |       ^',
      '',
      'error: no such file `x.cf`',
      'help: check the path',
      '',
    ].join('\n'),
  );
});

test('JSON: one array with 1-based inclusive ends, help and related', () => {
  const { diagnostics } = parsePipeline('p.cf', 'param n: integer = 3\nparam n: int\n');
  const json = JSON.parse(renderJson(diagnostics)) as unknown[];
  assert.deepEqual(json, [
    { file: 'p.cf', line: 1, column: 10, endLine: 1, endColumn: 16, severity: 'error', code: 'unknown-type', message: 'unknown type `integer` for param `n`', help: 'did you mean `int`?', related: [] },
    {
      file: 'p.cf', line: 2, column: 7, endLine: 2, endColumn: 7, severity: 'error', code: 'duplicate-param', message: 'param `n` is declared twice', help: null,
      related: [{ message: 'first declared here', file: 'p.cf', line: 1, column: 7 }],
    },
  ]);
  assert.equal(renderJson([]), '[]\n');
});

test('GitHub annotations escape %, CR, LF in messages and also : and , in properties', () => {
  const d: Diagnostic = {
    severity: 'warning',
    code: 'odd,code',
    message: '100% wrong:\r\nreally',
    help: 'fix it',
    range: { file: 'dir,x/a:b.cf', start: { line: 2, column: 3, offset: 10 }, end: { line: 2, column: 9, offset: 16 } },
  };
  assert.equal(
    renderGithub([d, { severity: 'note', code: 'n', message: 'plain' }]),
    '::warning file=dir%2Cx/a%3Ab.cf,line=2,col=3,endLine=2,endColumn=8,title=cfpipe odd%2Ccode::100%25 wrong:%0D%0Areally%0Ahelp: fix it\n' +
      '::notice title=cfpipe n::plain\n',
  );
});
