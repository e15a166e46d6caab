// Merge throughput in MB/s (full and clean), beside two baselines measured in the same run: a
// read-only pass over the same rows with lmdb (the read side alone) and `cp -r` of the shard
// folders (raw file copy). Run: npx tsc -p . && node dist/test/bench/merge_throughput.js [rowsPerShard]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { planMerge } from '../../runner/merge/plan.js';
import { mergeShards } from '../../runner/merge/merge.js';
import { writeShard } from '../merge/fixture.js';
import { BENCH_ROW as ROW, BENCH_ROW_BYTES as rowBytes, benchShardPaths, benchTotalMB, timeCopyBaseline } from './merge_bench_shards.js';

const rowsPerShard = Number(process.argv[2] ?? '40');
const scratch = await mkdtemp(join(tmpdir(), 'cfpipe-bench-merge-'));
try {
  const shards = benchShardPaths(join(scratch, 'ODE6KCausal_chunkwise'));
  for (const [i, s] of shards.entries()) await writeShard(s, ROW, rowsPerShard, i + 1, 16);
  const totalMB = benchTotalMB(shards.length, rowsPerShard);

  const cpS = timeCopyBaseline(shards, scratch);

  let t = performance.now();
  let read = 0;
  for (const s of shards) {
    const db = open<Buffer, string>(s, { encoding: 'binary', readOnly: true, noSubdir: false });
    for (let i = 0; i < rowsPerShard; i++) read += db.getBinary(`latents_${i}_data`)?.length ?? 0;
    await db.close();
  }
  const readS = (performance.now() - t) / 1000;

  const results: string[] = [];
  for (const mode of ['full', 'clean'] as const) {
    const planned = planMerge(shards, mode);
    if (!planned.ok) throw new Error(planned.problems.join('\n'));
    const rss0 = process.memoryUsage().rss;
    let peakRss = rss0;
    t = performance.now();
    const r = await mergeShards({ plan: planned.plan, outPath: join(scratch, `merged-${mode}`), workDir: join(scratch, `work-${mode}`), onBatch: () => (peakRss = Math.max(peakRss, process.memoryUsage().rss)) });
    const s = (performance.now() - t) / 1000;
    results.push(`merge ${mode.padEnd(5)}: ${(totalMB / s).toFixed(0)} MB/s of shard data read, ${(r.bytesWritten / 1e6 / s).toFixed(0)} MB/s written (${s.toFixed(2)} s; peak batch ${(r.peakBatchBytes / 1e6).toFixed(0)} MB, RSS +${((peakRss - rss0) / 1e6).toFixed(0)} MB)`);
  }
  console.log(`shards: 4 x ${rowsPerShard} rows of [${ROW.join(', ')}] fp16 = ${totalMB.toFixed(0)} MB`);
  console.log(`cp -r + sync  : ${(totalMB / cpS).toFixed(0)} MB/s (${cpS.toFixed(2)} s)`);
  console.log(`lmdb read pass: ${(read / 1e6 / readS).toFixed(0)} MB/s (${readS.toFixed(2)} s)`);
  for (const line of results) console.log(line);
} finally {
  await rm(scratch, { recursive: true, force: true });
}
