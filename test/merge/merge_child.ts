// A merge process for the kill -9 test: args as JSON in argv[2]; prints one line per committed
// batch. `pauseMs` sleeps after each batch so the parent's kill lands mid-merge.
import { planMerge } from '../../runner/merge/plan.js';
import { mergeShards } from '../../runner/merge/merge.js';

const a = JSON.parse(process.argv[2] ?? '{}') as { shards: string[]; mode: 'full' | 'clean'; outPath: string; workDir: string; batchRows: number; pauseMs: number };
const planned = planMerge(a.shards, a.mode);
if (!planned.ok) {
  process.stderr.write(`${planned.problems.join('\n')}\n`);
  process.exit(2);
}
const pause = new Int32Array(new SharedArrayBuffer(4));
const r = await mergeShards({
  plan: planned.plan,
  outPath: a.outPath,
  workDir: a.workDir,
  batchRows: a.batchRows,
  onBatch: (rows) => {
    process.stdout.write(`${JSON.stringify({ rows })}\n`);
    if (a.pauseMs > 0) Atomics.wait(pause, 0, 0, a.pauseMs);
  },
});
process.stdout.write(`${JSON.stringify({ done: r.rows, resumedAtRow: r.resumedAtRow })}\n`);
