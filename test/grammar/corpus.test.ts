// Golden corpus of malformed pipelines: each test/corpus/syntax/NAME.cf has NAME.expected
// holding the text diagnostics a user sees. `UPDATE_GOLDEN=1` rewrites the .expected files
// (read every changed one before committing: it is what a person will be shown).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { parsePipeline, renderText, hasErrors } from '../../grammar/index.js';
import { fromRoot } from '../util/paths.js';

const dir = fromRoot('test', 'corpus', 'syntax');
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.cf'))
  .map((f) => f.slice(0, -3))
  .sort();
const update = process.env['UPDATE_GOLDEN'] === '1';

test('the syntax corpus has at least 30 malformed files', () => {
  assert.ok(names.length >= 30, `${names.length} files`);
});

for (const name of names) {
  test(`syntax corpus: ${name}`, () => {
    const path = `${name}.cf`;
    const source = readFileSync(`${dir}/${path}`, 'utf8');
    const { diagnostics } = parsePipeline(path, source);
    assert.ok(hasErrors(diagnostics), 'a corpus file must have at least one error');
    const rendered = renderText(diagnostics, new Map([[path, source]]), { color: false });
    const expectedPath = `${dir}/${name}.expected`;
    if (update) writeFileSync(expectedPath, rendered);
    assert.ok(existsSync(expectedPath), `missing ${name}.expected (run with UPDATE_GOLDEN=1, then read it)`);
    assert.equal(rendered, readFileSync(expectedPath, 'utf8'));
  });
}
