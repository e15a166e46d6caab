// Mutation fuzzing of the front end: real pipeline text with tokens deleted, duplicated,
// swapped or replaced, random characters inserted, or cut short. Seeded, so a failure
// reproduces; the failing input is printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { formatPipeline, parsePipeline } from '../../grammar/index.js';
import { hasErrors } from '../../grammar/diagnostic.js';
import { fromRoot } from '../util/paths.js';
import { seededRandom } from '../util/seeded_random.js';
import { naivePosition, withoutRanges } from './ast-walk.js';

// Seeds: the grammar fixtures and the pipelines the product ships.
const seedDirs = [fromRoot('test', 'grammar', 'fixtures'), fromRoot('pipelines')].filter((d) => existsSync(d));
const seeds = seedDirs.flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.cf'))
    .sort()
    .map((f) => readFileSync(`${dir}/${f}`, 'utf8')),
);

const pieces = /\s+|[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?(?:e-?\d+)?|"(?:[^"\\\n]|\\.)*"|#[^\n]*|\.\.|./g;
const noise = ['{', '}', '[', ']', '"', ':', '=', '.', '..', ',', ';', '#', '$', '${', '\\', '@', '\n', '*', '-', 'stage', 'in', 'x', '0', 'é', '\t', "'"];

function mutate(text: string, rnd: () => number): string {
  let tokens: string[] = [...(text.match(pieces) ?? [])];
  const pick = (n: number): number => Math.floor(rnd() * n);
  const rounds = 1 + pick(3);
  for (let r = 0; r < rounds && tokens.length > 0; r++) {
    const i = pick(tokens.length);
    switch (pick(6)) {
      case 0:
        tokens.splice(i, 1);
        break;
      case 1:
        tokens.splice(i, 0, tokens[i] ?? '');
        break;
      case 2: {
        const j = Math.min(tokens.length - 1, i + 1 + pick(3));
        [tokens[i], tokens[j]] = [tokens[j] ?? '', tokens[i] ?? ''];
        break;
      }
      case 3:
        tokens[i] = tokens[pick(tokens.length)] ?? '';
        break;
      case 4:
        tokens.splice(i, 0, noise[pick(noise.length)] ?? '');
        break;
      default:
        tokens = tokens.slice(0, i);
        break;
    }
  }
  return tokens.join('');
}

test('mutated pipelines never throw, finish fast, and keep every diagnostic inside the source', () => {
  const rnd = seededRandom(Number(process.env.FUZZ_SEED ?? 20240611));
  const cases = 3000;
  let withErrors = 0;
  let clean = 0;
  let slowest = 0;
  for (let n = 0; n < cases; n++) {
    const source = mutate(seeds[n % seeds.length] ?? '', rnd);
    const started = performance.now();
    let result;
    try {
      result = parsePipeline('fuzz.cf', source);
    } catch (error) {
      assert.fail(`parsePipeline threw ${String(error)} on case ${n}:\n${source}`);
    }
    slowest = Math.max(slowest, performance.now() - started);
    for (const d of result.diagnostics) {
      const r = d.range;
      assert.ok(r, `case ${n}: diagnostic without range: ${d.message}`);
      assert.ok(r.start.offset >= 0 && r.start.offset <= r.end.offset && r.end.offset <= source.length, `case ${n}: ${d.message}\n${source}`);
      assert.deepEqual(naivePosition(source, r.start.offset), { line: r.start.line, column: r.start.column }, `case ${n}`);
      assert.ok(d.message.length > 0 && !d.message.includes('\u0000'), `case ${n}: raw message ${JSON.stringify(d.message)}`);
    }
    if (hasErrors(result.diagnostics)) {
      withErrors += 1;
      continue;
    }
    // A mutant that still parses must survive the formatter unchanged in meaning.
    clean += 1;
    const formatted = formatPipeline(result.file);
    const again = parsePipeline('fuzz.cf', formatted);
    assert.deepEqual(again.diagnostics.filter((d) => d.severity === 'error'), [], `case ${n}: formatted text does not parse:\n${formatted}`);
    assert.deepEqual(withoutRanges(again.file.statements), withoutRanges(result.file.statements), `case ${n}: formatting changed the AST`);
    assert.equal(formatPipeline(again.file), formatted, `case ${n}: formatting is not idempotent`);
  }
  assert.ok(withErrors > cases / 4 && clean > 50, `mutations should give both kinds of input (${withErrors} broken, ${clean} clean)`);
  assert.ok(slowest < 1000, `slowest parse took ${slowest.toFixed(1)} ms`);
});
