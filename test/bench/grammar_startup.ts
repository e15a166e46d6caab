// Front-end cost at startup and in steady state. `cfpipe --help` must stay ≤150 ms and
// `cfpipe check` ≤300 ms overall, so the grammar's share is measured in fresh processes beside
// a bare `node` start (the baseline, same run), plus parse throughput on a large pipeline.
// Run: npx tsc -p . && node dist/test/bench/grammar_startup.js [runs]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fromRoot } from '../util/paths.js';
import { formatPipeline, parsePipeline } from '../../grammar/index.js';

const runs = Number(process.argv[2] ?? '9');
const grammarUrl = new URL('../../grammar/index.js', import.meta.url).href;
const sketch = fromRoot('test', 'grammar', 'fixtures', 'chunkwise.cf');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/** Wall time of a fresh `node --input-type=module -e CODE`, median of `runs`. */
function fresh(code: string): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
    times.push(performance.now() - t);
    if (r.status !== 0) throw new Error(r.stderr);
  }
  return median(times);
}

/** In-process timings reported by a fresh child (import, first parse, second parse). */
function phases(): { importMs: number; firstMs: number; secondMs: number } {
  const code = `
    const t0 = performance.now();
    const g = await import(${JSON.stringify(grammarUrl)});
    const t1 = performance.now();
    const src = (await import('node:fs')).readFileSync(${JSON.stringify(sketch)}, 'utf8');
    const t2 = performance.now();
    g.parsePipeline('a.cf', src);
    const t3 = performance.now();
    g.parsePipeline('a.cf', src);
    const t4 = performance.now();
    console.log(JSON.stringify({ importMs: t1 - t0, firstMs: t3 - t2, secondMs: t4 - t3 }));`;
  const all: { importMs: number; firstMs: number; secondMs: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    all.push(JSON.parse(r.stdout));
  }
  return {
    importMs: median(all.map((x) => x.importMs)),
    firstMs: median(all.map((x) => x.firstMs)),
    secondMs: median(all.map((x) => x.secondMs)),
  };
}

const bare = fresh('');
const importOnly = fresh(`await import(${JSON.stringify(grammarUrl)});`);
const importParse = fresh(
  `const g = await import(${JSON.stringify(grammarUrl)}); g.parsePipeline('a.cf', (await import('node:fs')).readFileSync(${JSON.stringify(sketch)}, 'utf8'));`,
);
const p = phases();

// Steady state: a pipeline of 400 stages (about 8k lines), parsed and formatted in-process.
const stage = readFileSync(sketch, 'utf8').split('\nstage ').slice(1).map((s) => `stage ${s}`);
const big = Array.from({ length: 400 }, (_, i) => (stage[i % stage.length] ?? '').replace(/^stage (\w+)/, `stage $1_${i}`)).join('\n');
const bigMB = Buffer.byteLength(big) / 1e6;
let t = performance.now();
let parsed = parsePipeline('big.cf', big);
for (let i = 0; i < 4; i++) parsed = parsePipeline('big.cf', big);
const parseMs = (performance.now() - t) / 5;
t = performance.now();
for (let i = 0; i < 5; i++) JSON.parse(JSON.stringify(parsed.file.statements));
const jsonMs = (performance.now() - t) / 5;
t = performance.now();
for (let i = 0; i < 5; i++) formatPipeline(parsed.file);
const formatMs = (performance.now() - t) / 5;

console.log(`grammar startup, median of ${runs} fresh processes`);
console.log(`  bare node start (baseline)     ${bare.toFixed(1)} ms`);
console.log(`  + import grammar               ${importOnly.toFixed(1)} ms  (+${(importOnly - bare).toFixed(1)} ms, ${(importOnly / bare).toFixed(2)}x baseline)`);
console.log(`  + build parser, parse one file ${importParse.toFixed(1)} ms  (+${(importParse - bare).toFixed(1)} ms, ${(importParse / bare).toFixed(2)}x baseline)`);
console.log(`  in-process: import ${p.importMs.toFixed(1)} ms, first parse (incl. parser construction) ${p.firstMs.toFixed(1)} ms, second parse ${p.secondMs.toFixed(2)} ms`);
console.log(`steady state on ${big.split('\n').length} lines (${bigMB.toFixed(2)} MB), ${parsed.diagnostics.length} diagnostics`);
console.log(`  parse   ${parseMs.toFixed(1)} ms  (${(bigMB / (parseMs / 1000)).toFixed(2)} MB/s; ${(parseMs / jsonMs).toFixed(1)}x a JSON round trip of the AST)`);
console.log(`  format  ${formatMs.toFixed(1)} ms`);
