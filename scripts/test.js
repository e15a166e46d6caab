#!/usr/bin/env node
// `npm test`: the native C++ tests (ctest, when the engine is built) and every compiled
// TypeScript test under dist/test. `--long` adds the slow suites (*.long.test.js).
import { readdirSync, existsSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const long = process.argv.includes('--long');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));

function collect(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.js') && (long || !name.endsWith('.long.test.js'))) out.push(path);
  }
  return out;
}

const files = collect(join(root, 'dist', 'test'))
  .filter((f) => filters.length === 0 || filters.some((p) => relative(root, f).includes(p)))
  .sort();
if (files.length === 0) {
  console.error('no compiled tests found under dist/test: run `npm run build` first');
  process.exit(1);
}

const ctestDir = join(root, 'native', 'build');
if (filters.length === 0 && existsSync(join(ctestDir, 'CTestTestfile.cmake'))) {
  const ctest = spawnSync('ctest', ['--test-dir', ctestDir, '--output-on-failure'], { stdio: 'inherit' });
  if (ctest.status !== 0) process.exit(ctest.status ?? 1);
}

const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files],
  { stdio: 'inherit', cwd: root },
);
process.exit(result.status ?? 1);
