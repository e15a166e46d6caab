// kill -9 of a real merge process mid-way; the rerun continues from the recorded batch and the
// result equals, key by key, the upstream-rule output (and so an uninterrupted merge).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fromRoot } from '../util/paths.js';
import { assertSameContent, expectedMerge, readAll, snapshotInputs, writeShard } from './fixture.js';

const child = fromRoot('dist', 'test', 'merge', 'merge_child.js');

function runChild(args: object, killAtRows?: number): Promise<{ signal: NodeJS.Signals | null; code: number | null; lines: { rows?: number; done?: number; resumedAtRow?: number }[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: { rows?: number; done?: number; resumedAtRow?: number }[] = [];
    createInterface({ input: p.stdout }).on('line', (l) => {
      const e = JSON.parse(l) as (typeof lines)[number];
      lines.push(e);
      if (killAtRows !== undefined && (e.rows ?? 0) >= killAtRows && p.exitCode === null) p.kill('SIGKILL');
    });
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, lines }));
  });
}

test('kill -9 mid-merge, rerun: continues from the last committed batch, output equals the upstream rules', async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'cfpipe-merge-kill-'));
  try {
    const shards = [0, 1].map((i) => join(scratch, `ODE6KCausal_framewise_${i}`));
    await writeShard(shards[0] ?? '', [6, 3, 4, 8, 8], 12, 21);
    await writeShard(shards[1] ?? '', [6, 3, 4, 8, 8], 10, 22);
    const inputs = snapshotInputs(shards);
    const args = { shards, mode: 'full', outPath: join(scratch, 'merged'), workDir: join(scratch, 'work'), batchRows: 2, pauseMs: 50 };
    const first = await runChild(args, 6);
    assert.equal(first.signal, 'SIGKILL');
    assert.equal(existsSync(args.outPath), false);
    const killedAfter = Math.max(...first.lines.map((l) => l.rows ?? 0));
    const second = await runChild({ ...args, pauseMs: 0 });
    assert.equal(second.code, 0);
    const done = second.lines.find((l) => l.done !== undefined);
    assert.equal(done?.done, 22);
    // Resumed at the last recorded batch (the killed process may have committed one more).
    assert.ok((done?.resumedAtRow ?? 0) >= killedAfter && (done?.resumedAtRow ?? 0) <= killedAfter + 2, `resumed at ${done?.resumedAtRow}, killed after ${killedAfter}`);
    assert.equal(assertSameContent(readAll(args.outPath), expectedMerge(shards, 'full')), undefined);
    assert.equal(snapshotInputs(shards), inputs);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});
