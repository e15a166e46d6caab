#!/usr/bin/env node
// `npm run bench [NAME ...]`: runs the benchmarks under test/bench (each prints its figures beside
// a baseline measured in the same run). With no name it lists them; `all` runs every one except
// the whole-pipeline wall-time run (`pipeline`, ~10 minutes), which must be named.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const js = (name) => [process.execPath, [join(root, 'dist', 'test', 'bench', `${name}.js`)]];
const sh = (name) => ['bash', [join(root, 'test', 'bench', `${name}.sh`)]];
const BENCHES = {
  plan: { run: js('plan-bench'), about: 'cfpipe --help, check, plan on 10k/100k stages vs snakemake -n' },
  grammar: { run: js('grammar_startup'), about: 'parser start-up and throughput' },
  runner: { run: js('runner'), about: 'no-op rerun of 1000 tasks, cold-run overhead per task vs a shell loop' },
  domain: { run: js('domain_throughput'), about: 'synth, fp16, LMDB write, eval, GIF throughput' },
  fetch: { run: js('fetch_throughput'), about: 'download throughput from a local hub beside curl' },
  merge: { run: js('merge_throughput'), about: 'LMDB shard merge MB/s beside cp and a read-only pass' },
  'native-io': { run: js('native-io'), about: 'checkpoint save/load and progress-event cost' },
  gemm: { run: sh('native-gemm'), about: 'CPU GEMM GFLOP/s beside OpenBLAS on the model shapes' },
  attention: { run: sh('native-attention'), about: 'masked attention, new kernels vs the scalar baseline' },
  step: { run: sh('native-step'), about: 'training-step time per objective, tiny preset' },
  samplers: { run: sh('native-samplers'), about: 'few-step vs many-step sampling cost per video' },
  pipeline: { run: js('pipeline_wall'), about: 'wall time per stage of pipelines/framewise.cf from a clean store (~10 min)', explicit: true },
};

const names = process.argv.slice(2);
if (names.length === 0) {
  console.log('Usage: npm run bench -- NAME [NAME ...] | all\n');
  for (const [name, b] of Object.entries(BENCHES)) console.log(`  ${name.padEnd(10)} ${b.about}`);
  process.exit(0);
}
const chosen = names.includes('all') ? Object.keys(BENCHES).filter((n) => !BENCHES[n].explicit) : names;
let failed = 0;
for (const name of chosen) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown benchmark \`${name}\`; run \`npm run bench\` for the list`);
    process.exit(2);
  }
  console.log(`\n## ${name}: ${bench.about}`);
  const [cmd, args] = bench.run;
  const result = spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
  if (result.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
