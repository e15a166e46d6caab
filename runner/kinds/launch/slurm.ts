// Runs an exec stage's command as a Slurm batch job: `sbatch --parsable` a generated script,
// poll `squeue` until the job leaves the queue, read the final state and exit code from
// `sacct` (or `scontrol show job` where accounting is off), and stream the job's output file
// line by line to the exec kind (progress and checkpoint lines work as in a local run).
// An interrupt cancels the job with SIGTERM first (`scancel --signal=TERM`) so the command can
// checkpoint, exactly as a local run would; a hard stop of the worker cancels it outright. The
// job id is kept in the work dir, so a rerun after a kill -9 cancels a job still left running.
import { execFileSync } from 'node:child_process';
import { chmod, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { atHardStop } from '../../exec/hard-stop.js';
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

type QueueState = { readonly state: string } | 'gone' | 'unreachable';

/** The job's state while Slurm still lists it as queued or running; 'gone' once it has left. */
async function queueState(jobId: string): Promise<QueueState> {
  const r = await execa('squeue', ['-h', '-j', jobId, '-o', '%T'], { reject: false });
  if (r.exitCode !== 0) return /Invalid job id/i.test(r.stderr) ? 'gone' : 'unreachable';
  const state = r.stdout.trim();
  return state === '' ? 'gone' : { state };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until the job leaves the queue; `each` runs after every poll. Tolerates a controller away for a while. */
async function waitForJob(jobId: string, pollMs: number, each: () => Promise<void>): Promise<void> {
  let unreachableSince: number | undefined;
  for (;;) {
    const state = await queueState(jobId);
    await each();
    if (state === 'gone') return;
    if (state === 'unreachable') {
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince > UNREACHABLE_LIMIT_MS) {
        throw new KindError(`slurm: squeue could not reach the controller for ${UNREACHABLE_LIMIT_MS / 1000} s while job ${jobId} was queued`);
      }
    } else unreachableSince = undefined;
    await sleep(pollMs);
  }
}

const UNREACHABLE_LIMIT_MS = 120_000;

/** Cancels a job: SIGTERM to a running one (so it can checkpoint), plain scancel for a pending one. */
async function cancelGently(jobId: string): Promise<void> {
  const signalled = await execa('scancel', ['--signal=TERM', '--full', jobId], { reject: false });
  // A pending job cannot be signalled ("Job can not be altered now"): cancel it outright.
  if (signalled.exitCode !== 0) await execa('scancel', [jobId], { reject: false });
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
    await sleep(500);
  }
  throw new KindError(`slurm: could not learn the final state of job ${jobId} (sacct and scontrol gave none)`);
}

/** Hands each new complete line of the job's output file to `onLine`; `final` also flushes a last unterminated line. */
function follower(path: string, onLine: (line: string) => void): (final?: boolean) => Promise<void> {
  let offset = 0;
  let partial = '';
  return async (final = false) => {
    let size = offset;
    try {
      size = (await stat(path)).size;
    } catch {
      // Not created yet (the job has not started).
    }
    if (size > offset) {
      const handle = await open(path, 'r');
      try {
        const buffer = Buffer.alloc(size - offset);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        offset += bytesRead;
        const lines = (partial + buffer.subarray(0, bytesRead).toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) onLine(line);
      } finally {
        await handle.close();
      }
    }
    if (final && partial !== '') {
      onLine(partial);
      partial = '';
    }
  };
}

/** The file in the task's work dir naming the job it submitted, so a rerun can clean up after a crash. */
const JOB_FILE = 'slurm-job';

/**
 * A job submitted by an earlier attempt of this task (same key) whose worker was killed may
 * still be queued or running, and would race the new one on the same work dir: cancel it and
 * wait until it has left the queue.
 */
async function cancelLeftoverJob(ctx: KindContext): Promise<void> {
  const path = join(ctx.workDir, JOB_FILE);
  let jobId: string;
  try {
    jobId = (await readFile(path, 'utf8')).trim();
  } catch {
    return;
  }
  if (!/^\d+$/.test(jobId)) return;
  const state = await queueState(jobId);
  if (typeof state === 'object') {
    ctx.log(`cancelling Slurm job ${jobId} left by an earlier attempt (${state.state})`);
    await execa('scancel', ['--full', jobId], { reject: false });
    const deadline = Date.now() + 60_000;
    while (typeof (await queueState(jobId)) === 'object') {
      if (Date.now() > deadline) throw new KindError(`slurm: job ${jobId} of an earlier attempt did not leave the queue within 60 s of scancel`);
      await sleep(500);
    }
  }
  await rm(path, { force: true });
}

export interface SlurmRunOptions {
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** Each complete line of the job's output, in order (default: into the task log). */
  readonly onLine?: (line: string) => void;
}

export async function runUnderSlurm(ctx: KindContext, block: { readonly [k: string]: Value }, argv: readonly string[], options: SlurmRunOptions): Promise<void> {
  await cancelLeftoverJob(ctx);
  ctx.signal.throwIfAborted();
  // Absolute: sbatch runs in the command's cwd, and the job may start anywhere.
  const scriptPath = resolve(ctx.workDir, 'sbatch.sh');
  const outputPath = resolve(ctx.workDir, 'slurm-%j.out');
  await writeFile(scriptPath, renderSbatchScript(block, argv, { ...options, jobName: `cfpipe-${ctx.task.id}`, outputPath }));
  await chmod(scriptPath, 0o755);
  const submit = await execa('sbatch', ['--parsable', scriptPath], { reject: false, cwd: options.cwd });
  if (submit.failed) throw new KindError(`slurm: sbatch failed: ${(submit.stderr || submit.shortMessage || '').trim()}`);
  const jobId = submit.stdout.trim().split(';')[0]!;
  await writeFile(join(ctx.workDir, JOB_FILE), `${jobId}\n`);
  ctx.log(`submitted Slurm job ${jobId}`);
  const follow = follower(outputPath.replace('%j', jobId), options.onLine ?? ((line) => ctx.log(line)));
  let cancelled = false;
  const onAbort = (): void => {
    cancelled = true;
    void cancelGently(jobId);
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  // A hard stop of the worker leaves no time for polling: cancel the job outright, synchronously.
  const forget = atHardStop(() => {
    execFileSync('scancel', ['--full', jobId], { stdio: 'ignore', timeout: 5000 });
  });
  try {
    await waitForJob(jobId, Number(block.poll_seconds ?? 2) * 1000, follow);
    await follow(true);
    const result = await finalState(jobId);
    await rm(join(ctx.workDir, JOB_FILE), { force: true });
    if (cancelled) ctx.signal.throwIfAborted();
    if (result.state !== 'COMPLETED' || result.exitCode !== 0) {
      throw new KindError(`slurm job ${jobId} ended ${result.state} (exit code ${result.exitCode}${result.signal ? `, signal ${result.signal}` : ''})`);
    }
  } finally {
    forget();
    ctx.signal.removeEventListener('abort', onAbort);
  }
}
