// Runs an exec stage's command as a Slurm batch job: `sbatch --parsable` a generated script,
// poll `squeue` until the job leaves the queue, read the final state and exit code from
// `sacct` (or `scontrol show job` where accounting is off), and stream the job's output file
// into the task log. An interrupt cancels the job with SIGTERM first (`scancel --signal=TERM`)
// so the command can checkpoint, exactly as a local run would.

import { open, writeFile, chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Value } from '../../graph.js';
import { KindError, type KindContext } from '../types.js';

const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

const SBATCH_OPTIONS: Readonly<Record<string, string>> = {
  partition: 'partition',
  time: 'time',
  nodes: 'nodes',
  ntasks: 'ntasks',
  cpus_per_task: 'cpus-per-task',
  gpus: 'gpus',
  gpus_per_node: 'gpus-per-node',
  mem: 'mem',
  account: 'account',
  qos: 'qos',
  constraint: 'constraint',
  signal: 'signal',
};

/** The batch script: #SBATCH lines from the launcher block, the environment, then the command. */
export function renderSbatchScript(
  block: { readonly [k: string]: Value },
  argv: readonly string[],
  options: { cwd: string; env: Readonly<Record<string, string>>; jobName: string; outputPath: string },
): string {
  const lines = ['#!/bin/sh', `#SBATCH --job-name=${shellQuote(options.jobName)}`, `#SBATCH --output=${shellQuote(options.outputPath)}`, `#SBATCH --chdir=${shellQuote(options.cwd)}`];
  for (const [key, flag] of Object.entries(SBATCH_OPTIONS)) {
    const value = block[key];
    if (value !== undefined && value !== null) lines.push(`#SBATCH --${flag}=${shellQuote(String(value))}`);
  }
  for (const [name, value] of Object.entries(options.env)) lines.push(`export ${name}=${shellQuote(value)}`);
  lines.push(`exec ${argv.map(shellQuote).join(' ')}`, '');
  return lines.join('\n');
}

async function queueState(jobId: string): Promise<string | undefined> {
  const r = await execa('squeue', ['-h', '-j', jobId, '-o', '%T'], { reject: false });
  const state = r.stdout.trim();
  return r.exitCode === 0 && state !== '' ? state : undefined;
}

async function finalState(jobId: string): Promise<{ state: string; exitCode: number; signal: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const acct = await execa('sacct', ['-j', jobId, '-n', '-P', '-X', '-o', 'State,ExitCode'], { reject: false });
    const row = acct.exitCode === 0 ? acct.stdout.trim().split('\n')[0] : undefined;
    if (row && row.includes('|')) {
      const [state, code] = row.split('|');
      const [exit, sig] = (code ?? '0:0').split(':').map(Number);
      if (state && !/PENDING|RUNNING|COMPLETING/.test(state)) return { state: state.split(' ')[0]!, exitCode: exit ?? 0, signal: sig ?? 0 };
    }
    const show = await execa('scontrol', ['show', 'job', jobId], { reject: false });
    const st = /JobState=(\S+)/.exec(show.stdout)?.[1];
    const ec = /ExitCode=(\d+):(\d+)/.exec(show.stdout);
    if (st && !/PENDING|RUNNING|COMPLETING/.test(st)) return { state: st, exitCode: Number(ec?.[1] ?? 0), signal: Number(ec?.[2] ?? 0) };
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new KindError(`slurm: could not learn the final state of job ${jobId} (sacct and scontrol gave none)`);
}

/** Copies new lines of the job's output file into the task log. */
function follower(ctx: KindContext, path: string): () => Promise<void> {
  let offset = 0;
  let partial = '';
  return async () => {
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      return;
    }
    if (size <= offset) return;
    const handle = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(size - offset);
      await handle.read(buffer, 0, buffer.length, offset);
      offset = size;
      const text = partial + buffer.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) ctx.log(line);
    } finally {
      await handle.close();
    }
  };
}

export async function runUnderSlurm(
  ctx: KindContext,
  block: { readonly [k: string]: Value },
  argv: readonly string[],
  options: { cwd: string; env: Readonly<Record<string, string>> },
): Promise<void> {
  const scriptPath = join(ctx.workDir, 'sbatch.sh');
  const outputPath = join(ctx.workDir, 'slurm-%j.out');
  await writeFile(scriptPath, renderSbatchScript(block, argv, { ...options, jobName: `cfpipe-${ctx.task.id}`, outputPath }));
  await chmod(scriptPath, 0o755);
  const submit = await execa('sbatch', ['--parsable', scriptPath], { reject: false, cwd: options.cwd });
  if (submit.failed) throw new KindError(`slurm: sbatch failed: ${(submit.stderr || submit.shortMessage || '').trim()}`);
  const jobId = submit.stdout.trim().split(';')[0]!;
  ctx.log(`submitted Slurm job ${jobId}`);
  const follow = follower(ctx, outputPath.replace('%j', jobId));
  let cancelled = false;
  const onAbort = (): void => {
    cancelled = true;
    void execa('scancel', ['--signal=TERM', '--full', jobId], { reject: false });
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const poll = Number(block.poll_seconds ?? 2) * 1000;
    while ((await queueState(jobId)) !== undefined) {
      await follow();
      await new Promise((r) => setTimeout(r, poll));
    }
    await follow();
    const result = await finalState(jobId);
    if (cancelled) ctx.signal.throwIfAborted();
    if (result.state !== 'COMPLETED' || result.exitCode !== 0) {
      throw new KindError(`slurm job ${jobId} ended ${result.state} (exit code ${result.exitCode}${result.signal ? `, signal ${result.signal}` : ''})`);
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
}
