// `cfpipe explain STAGE` without a FILE reads the graph as the last run did: that run's --params
// (and --set, --use, --device) are kept in its record, so a stage run with a preset is explained
// as fresh, not as "params changed"; flags given to explain replace the recorded ones.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cfpipeBin } from '../util/paths.js';

const PIPELINE = `pipeline "last-run"

param n: int = 3

stage echo: exec {
  command = ["sh", "-c", "echo \${n} > $CFPIPE_OUT_TEXT"]
  output text: file
}
`;

function cfpipe(cwd: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cfpipeBin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CI: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('explain without FILE uses the last run\'s --params; explicit flags replace them', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfpipe-explain-last-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'package.json'), '{}\n');
  writeFileSync(join(dir, 'p.cf'), PIPELINE);
  mkdirSync(join(dir, 'presets'));
  writeFileSync(join(dir, 'presets', 'big.yaml'), 'n: 9\n');

  const run = cfpipe(dir, 'run', 'p.cf', '--params', 'presets/big.yaml');
  assert.equal(run.code, 0, run.stderr + run.stdout);

  const same = cfpipe(dir, 'explain', 'echo');
  assert.equal(same.code, 0, same.stderr);
  assert.match(same.stdout, /^echo: fresh — nothing changed since its last success$/m);
  assert.match(same.stderr, /explain: with the last run's options: --params \/.*presets\/big\.yaml/);

  // Flags given to explain are used instead: the default n = 3 is a change from the run's 9.
  const other = cfpipe(dir, 'explain', 'echo', '--set', 'n=3');
  assert.equal(other.code, 0, other.stderr);
  assert.doesNotMatch(other.stdout, /nothing changed/);
  assert.match(other.stdout, /echo 9 .*→.*echo 3/);
  assert.doesNotMatch(other.stderr, /last run's options/);
});
