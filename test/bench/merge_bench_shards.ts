// What the merge benchmarks (test/bench/merge_throughput.ts, test/upstream/bench_merge_v1.ts)
// share: the row every shard holds, the shard paths, and the `cp -r` + sync baseline that a merge's
// MB/s is read against.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** One fp16 latent row: 786 kB. */
export const BENCH_ROW = [6, 4, 16, 32, 32];
export const BENCH_ROW_BYTES = BENCH_ROW.reduce((a, b) => a * b, 1) * 2;

/** The four shard folders `<base>_0` .. `<base>_3`. */
export const benchShardPaths = (base: string): string[] => [0, 1, 2, 3].map((i) => `${base}_${i}`);

/** MB of row data in `shards` shards of `rowsPerShard` rows. */
export const benchTotalMB = (shards: number, rowsPerShard: number): number => (shards * rowsPerShard * BENCH_ROW_BYTES) / 1e6;

/** Seconds that `cp -r` of the shard folders into `<scratch>/copy`, then sync, takes. */
export function timeCopyBaseline(shards: readonly string[], scratch: string): number {
  const t = performance.now();
  execFileSync('mkdir', ['-p', join(scratch, 'copy')]);
  execFileSync('cp', ['-r', ...shards, join(scratch, 'copy')]);
  execFileSync('sync');
  return (performance.now() - t) / 1000;
}
