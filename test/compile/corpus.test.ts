// The semantic and config corpus: every `test/corpus/semantic/NAME.cf` is compiled and its
// diagnostics compared with `NAME.expected` (one line per diagnostic: severity, code, place,
// message, help). Each case must produce at least one diagnostic. Regenerate after a deliberate
// wording change with UPDATE_GOLDEN=1 and review the diff.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type { Diagnostic } from '../../grammar/diagnostic.js';
import { compilePipeline } from '../../runner/compile/index.js';
import { fromRoot, repoRoot } from '../util/paths.js';

const dir = fromRoot('test', 'corpus', 'semantic');
const place = (file: string, line: number, column: number): string => `${relative(repoRoot, resolve(file))}:${line}:${column}`;

export function goldenLines(diagnostics: readonly Diagnostic[]): string {
  return diagnostics
    .map((d) => {
      const where = d.range ? place(d.range.file, d.range.start.line, d.range.start.column) : '-';
      const help = d.help ? `\n    help: ${d.help}` : '';
      const related = (d.related ?? []).map((r) => `\n    related ${place(r.range.file, r.range.start.line, r.range.start.column)}: ${r.message}`).join('');
      return `${d.severity} ${d.code} ${where}: ${d.message}${help}${related}\n`;
    })
    .join('');
}

const cases = readdirSync(dir).filter((n) => n.endsWith('.cf')).sort();

test('the corpus has at least 20 semantic and config cases', () => {
  assert.ok(cases.length >= 20, `only ${cases.length} cases`);
});

for (const name of cases) {
  test(`corpus ${name}`, () => {
    const result = compilePipeline(join(dir, name), { root: repoRoot, gpusAvailable: 0 });
    assert.ok(result.diagnostics.length > 0, `${name} compiled without any diagnostic`);
    const actual = goldenLines(result.diagnostics);
    const expectedPath = join(dir, name.replace(/\.cf$/, '.expected'));
    if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(expectedPath, actual);
    assert.ok(existsSync(expectedPath), `no golden file ${expectedPath} (run with UPDATE_GOLDEN=1, then review it)`);
    assert.equal(actual, readFileSync(expectedPath, 'utf8'));
  });
}
