// Merge throughput on format-1 shards written by Python lmdb (upstream's own format), in MB/s,
// into format 1 and into format 2, beside baselines measured in the same run: `cp -r` of the shard
// folders, and Python lmdb reading every row (what upstream's merge scripts pay to read).
// Run: npx tsc -p . && node dist/test/upstream/bench_merge_v1.js [rowsPerShard]
// (kept beside its tests because it needs their Python helpers; not a test file: no `.test.`)
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPythonWithLmdb, runPython } from '../domain/python.js';
import { planMerge } from '../../runner/merge/plan.js';
import { mergeShards } from '../../runner/merge/merge.js';
import { BENCH_ROW as ROW, BENCH_ROW_BYTES as rowBytes, benchShardPaths, benchTotalMB, timeCopyBaseline } from '../bench/merge_bench_shards.js';

const python = findPythonWithLmdb();
if (python === undefined) {
  console.log('skipped: python3 with lmdb and numpy is not installed');
  process.exit(0);
}
const rowsPerShard = Number(process.argv[2] ?? '40');
const scratch = await mkdtemp(join(tmpdir(), 'cfpipe-bench-merge-v1-'));
try {
  runPython(python, `
import sys, lmdb, numpy as np
base, n, shape = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split(',')]
for s in range(4):
    env = lmdb.open(f"{base}_{s}", map_size=1 << 32)
    rng = np.random.default_rng(s)
    with env.begin(write=True) as txn:
        for i in range(n):
            txn.put(f"latents_{i}_data".encode(), rng.standard_normal(shape).astype(np.float16).tobytes())
            txn.put(f"prompts_{i}_data".encode(), f"prompt {s} {i}".encode())
        txn.put(b"latents_shape", " ".join(map(str, [n] + shape)).encode())
        txn.put(b"prompts_shape", str(n).encode())
    env.close()
`, [join(scratch, 'ODE6KCausal_framewise'), String(rowsPerShard), ROW.join(',')]);
  const shards = benchShardPaths(join(scratch, 'ODE6KCausal_framewise'));
  const totalMB = benchTotalMB(shards.length, rowsPerShard);

  const cpS = timeCopyBaseline(shards, scratch);

  let t = performance.now();
  runPython(python, `
import sys, lmdb
for p in sys.argv[1:]:
    env = lmdb.open(p, readonly=True, lock=False)
    with env.begin() as txn:
        n = int(txn.get(b"latents_shape").split()[0])
        for i in range(n):
            bytes(txn.get(f"latents_{i}_data".encode()))
    env.close()
`, shards);
  const pyReadS = (performance.now() - t) / 1000;

  console.log(`format-1 shards: 4 x ${rowsPerShard} rows of ${(rowBytes / 1e6).toFixed(2)} MB = ${totalMB.toFixed(0)} MB`);
  console.log(`baseline cp -r:            ${(totalMB / cpS).toFixed(0)} MB/s`);
  console.log(`baseline Python lmdb read: ${(totalMB / pyReadS).toFixed(0)} MB/s`);
  for (const mode of ['full', 'clean'] as const) {
    const planned = planMerge(shards, mode);
    if (!planned.ok) throw new Error(planned.problems.join('\n'));
    for (const format of [1, 2] as const) {
      t = performance.now();
      const r = await mergeShards({ plan: planned.plan, outPath: join(scratch, `${mode}_${format}`), workDir: join(scratch, `w_${mode}_${format}`), format });
      execFileSync('sync');
      const s = (performance.now() - t) / 1000;
      console.log(`merge ${mode.padEnd(5)} -> format ${format}: ${(totalMB / s).toFixed(0)} MB/s read (${(r.bytesWritten / 1e6 / s).toFixed(0)} MB/s written), ${(cpS / s).toFixed(2)}x cp speed`);
    }
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}
