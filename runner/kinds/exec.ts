// `exec`: runs any command with declared inputs and outputs, through execa.
//
//   stage prep: exec {
//     command = ["python", "prep.py", "--in", "{in.raw}", "--out", "{out.data}"]   # argv, no shell
//     # or: command = "sort {in.raw} > {out.data}"                                   # a string runs in sh -c
//     env = { OMP_NUM_THREADS = "2" }
//     cwd = "tools"                      # default: the task's work dir
//     launcher = "torchrun"              # or "slurm" / "local"; torchrun reads nnodes, nproc_per_node,
//     nnodes = 8                         # rdzv_endpoint, rdzv_id; slurm reads the `slurm` map
//     nproc_per_node = 8                 # (partition, time, gpus, ...)
//     rdzv_endpoint = "head:29500"
//   }
//
// An output declared with a path (`output model: file = "ckpt/model.pt"`) is written by the
// command at that path under its work dir and moved into place after the command succeeds.
// Placeholders: {in.NAME} (a fan-in expands to one argv item per path; space-joined inside a
// string), {out.NAME}, {work} (the task's persistent work dir, for the command's own
// checkpoints), {root}. The same values are in the environment as CFPIPE_IN_<NAME> (paths joined
// by ':'), CFPIPE_OUT_<NAME>, CFPIPE_WORK_DIR. A line `cfpipe:progress STEP TOTAL [k=v ...]` on
// stdout is shown as progress; `cfpipe:checkpoint STEP PATH` is recorded as a checkpoint.
// On the first interrupt the command gets SIGTERM and may checkpoint; it stays in the worker's
// process group, so a hard stop ends it together with the worker.

import { existsSync } from 'node:fs';
import { cp, rename } from 'node:fs/promises';
import { resolve } from 'node:path';
import { execa } from 'execa';
import type { Value } from '../graph.js';
import { readTorchrunLauncher, renderTorchrun } from './launch/torchrun.js';
import { runUnderSlurm } from './launch/slurm.js';
import { KindError, type KindContext, type StageKind } from './types.js';

const PLACEHOLDER = /\{(in|out)\.([A-Za-z_][A-Za-z0-9_]*)\}|\{(work|root)\}/g;

function placeholderValues(ctx: KindContext, which: string, name: string | undefined): string[] {
  if (which === 'work') return [ctx.workDir];
  if (which === 'root') return [ctx.root];
  const table = which === 'in' ? ctx.inputs : ctx.outputs;
  const value = table[name!];
  if (value === undefined) {
    throw new KindError(`exec: \`{${which}.${name}}\` names no ${which === 'in' ? 'input' : 'output'} of stage ${ctx.task.stage}`);
  }
  return typeof value === 'string' ? [value] : [...value];
}

/** Substitutes placeholders; an argv item that is exactly a fan-in placeholder becomes several items. */
export function expandArgv(ctx: KindContext, argv: readonly string[]): string[] {
  return argv.flatMap((arg) => {
    const whole = /^\{(in|out)\.([A-Za-z_][A-Za-z0-9_]*)\}$|^\{(work|root)\}$/.exec(arg);
    if (whole) return placeholderValues(ctx, whole[1] ?? whole[3]!, whole[2]);
    return [expandString(ctx, arg)];
  });
}

export function expandString(ctx: KindContext, text: string): string {
  return text.replace(PLACEHOLDER, (_m, which: string | undefined, name: string | undefined, other: string | undefined) =>
    placeholderValues(ctx, which ?? other!, name).join(' '),
  );
}

const isMap = (v: Value | undefined): v is { readonly [k: string]: Value } => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The work-dir path a declared output is written at (`output x: file = "path"`), if it has one. */
function declaredPath(ctx: KindContext, name: string): string | undefined {
  const path = ctx.task.outputs.find((o) => o.name === name)?.path;
  return path === undefined ? undefined : resolve(ctx.workDir, path);
}

/** Moves outputs the command wrote at their declared paths to where the runner collects them. */
async function collectDeclaredOutputs(ctx: KindContext): Promise<void> {
  for (const [name, target] of Object.entries(ctx.outputs)) {
    const source = declaredPath(ctx, name);
    if (source === undefined) continue;
    if (!existsSync(source)) throw new KindError(`exec: the command did not write output \`${name}\` at ${source}`);
    try {
      await rename(source, target);
    } catch {
      await cp(source, target, { recursive: true });
    }
  }
}

const envName = (name: string): string => name.toUpperCase().replace(/[^A-Z0-9_]/g, '_');

function commandArgv(ctx: KindContext): { argv: string[]; shell: boolean } {
  const command = ctx.task.params.command;
  if (typeof command === 'string') return { argv: [expandString(ctx, command)], shell: true };
  if (Array.isArray(command) && command.length > 0 && command.every((c) => typeof c === 'string' || typeof c === 'number')) {
    return { argv: expandArgv(ctx, command.map(String)), shell: false };
  }
  throw new KindError('exec: `command` must be a string (run by sh) or a non-empty list of strings (argv)');
}

function stringMap(value: Value | undefined, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new KindError(`exec: \`${what}\` must be a map`);
  return Object.fromEntries(Object.entries(value as Record<string, Value>).map(([k, v]) => [k, String(v)]));
}

function handleLine(ctx: KindContext, line: string): void {
  const progress = /^cfpipe:progress (\d+) (\d+)((?: [\w.]+=[-+0-9.eE]+)*)\s*$/.exec(line);
  if (progress) {
    const metrics: Record<string, number> = {};
    for (const pair of progress[3]!.trim().split(' ').filter(Boolean)) {
      const [k, v] = pair.split('=');
      metrics[k!] = Number(v);
    }
    ctx.progress(Number(progress[1]), Number(progress[2]), metrics);
    return;
  }
  const checkpoint = /^cfpipe:checkpoint (\d+) (.+)$/.exec(line);
  if (checkpoint) {
    ctx.checkpoint(Number(checkpoint[1]), resolve(ctx.workDir, checkpoint[2]!));
    return;
  }
  ctx.log(line);
}

export const kind: StageKind = {
  name: 'exec',
  async run(ctx: KindContext): Promise<void> {
    const params = ctx.task.params;
    let { argv, shell } = commandArgv(ctx);
    const env: Record<string, string> = { ...stringMap(params.env, 'env'), CFPIPE_WORK_DIR: ctx.workDir, CFPIPE_ROOT: ctx.root };
    for (const [name, paths] of Object.entries(ctx.inputs)) env[`CFPIPE_IN_${envName(name)}`] = paths.join(':');
    for (const [name, path] of Object.entries(ctx.outputs)) env[`CFPIPE_OUT_${envName(name)}`] = declaredPath(ctx, name) ?? path;
    const cwd = typeof params.cwd === 'string' ? resolve(ctx.root, expandString(ctx, params.cwd)) : ctx.workDir;
    const launcher = params.launcher;
    if (launcher !== undefined && launcher !== null && launcher !== 'local') {
      // Either `launcher = "torchrun"` with the settings as stage params, or one map holding both.
      const block: { readonly [k: string]: Value } =
        typeof launcher === 'string' ? { ...params, ...(isMap(params.slurm) ? params.slurm : {}), kind: launcher } : isMap(launcher) ? launcher : {};
      const launcherKind = block.kind ?? block.type;
      if (launcherKind === 'torchrun') {
        if (shell) argv = ['sh', '-c', argv[0]!];
        argv = renderTorchrun(readTorchrunLauncher(block), argv);
        shell = false;
      } else if (launcherKind === 'slurm') {
        await runUnderSlurm(ctx, block, shell ? ['sh', '-c', argv[0]!] : argv, { cwd, env, onLine: (line) => handleLine(ctx, line) });
        await collectDeclaredOutputs(ctx);
        return;
      } else {
        throw new KindError(`exec: unknown launcher \`${String(launcherKind)}\` (known: torchrun, slurm)`);
      }
    }
    ctx.log(`$ ${shell ? argv[0] : argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ')}`);
    const child = shell
      ? execa(argv[0]!, { shell: '/bin/sh', cwd, env, reject: false, lines: false, buffer: false, stdin: 'ignore', all: true, cancelSignal: ctx.signal, forceKillAfterDelay: false })
      : execa(argv[0]!, argv.slice(1), { cwd, env, reject: false, buffer: false, stdin: 'ignore', all: true, cancelSignal: ctx.signal, forceKillAfterDelay: false });
    for await (const line of child.iterable({ from: 'all' })) handleLine(ctx, String(line));
    const result = await child;
    if (ctx.signal.aborted) ctx.signal.throwIfAborted();
    if (result.failed) {
      if (result.signal) throw new KindError(`command was killed by ${result.signal}${result.signalDescription ? ` (${result.signalDescription})` : ''}`);
      if (result.exitCode !== undefined) throw new KindError(`command exited with code ${result.exitCode}`);
      throw new KindError(`command could not start: ${result.shortMessage ?? result.message}`);
    }
    await collectDeclaredOutputs(ctx);
  },
};
