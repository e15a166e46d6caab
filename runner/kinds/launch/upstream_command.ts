// The command line an `upstream` stage runs, from its params alone (no inputs resolved), so
// `cfpipe plan` can show it before anything runs and the kind runs exactly what the plan shows.
//
//   launcher "torchrun": torchrun --nnodes=8 --nproc_per_node=8 --rdzv_id=5235 --rdzv_backend=c10d
//                        --rdzv_endpoint=$MASTER_ADDR train.py --config_path configs/X.yaml ...
//   launcher "python":   python utils/create_lmdb_iterative.py --data_path ... --lmdb_path ...
//
// Placeholders ({in.NAME}, {out.NAME}, {work}, {run}, {root}) stay as written here; the kind
// substitutes them when it runs.

import type { Task, Value } from '../../graph.js';
import { KindError } from '../types.js';
import { readTorchrunLauncher, renderTorchrun } from './torchrun.js';

export const UPSTREAM_LAUNCHERS = ['torchrun', 'python'] as const;

/** The stage's script and arguments, unexpanded. */
export function upstreamScriptArgv(params: { readonly [k: string]: Value }): string[] {
  const script = params.script;
  if (typeof script !== 'string' || script === '') throw new KindError('upstream: `script` must name the upstream script (e.g. "train.py")');
  const args = params.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string' || typeof a === 'number')) {
    throw new KindError('upstream: `args` must be a list of strings');
  }
  return [script, ...args.map(String)];
}

/** The full argv (launcher included), unexpanded. */
export function upstreamArgv(params: { readonly [k: string]: Value }): string[] {
  const command = upstreamScriptArgv(params);
  const launcher = params.launcher ?? 'torchrun';
  if (launcher === 'python') return [typeof params.python === 'string' ? params.python : 'python', ...command];
  if (launcher !== 'torchrun') throw new KindError(`upstream: unknown launcher \`${String(launcher)}\` (known: ${UPSTREAM_LAUNCHERS.join(', ')})`);
  const block: { [k: string]: Value } = { ...params };
  if (typeof params.torchrun === 'string') block.program = params.torchrun;
  return renderTorchrun(readTorchrunLauncher(block), command);
}

const shellWord = (s: string): string => (/^[\w@%+=:,./${}-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** One line a person can read (and paste into a shell on node 0). */
export const commandLine = (argv: readonly string[]): string => argv.map(shellWord).join(' ');

/**
 * The command line a task will run, for the plan: `upstream` stages always, `exec` stages with
 * the torchrun launcher. Undefined for other tasks or when the params cannot make one.
 */
export function previewCommandLine(task: Pick<Task, 'kind' | 'params'>): string | undefined {
  try {
    if (task.kind === 'upstream') return commandLine(upstreamArgv(task.params));
    if (task.kind === 'exec' && task.params.launcher === 'torchrun') {
      const command = task.params.command;
      const argv = typeof command === 'string' ? ['sh', '-c', command] : Array.isArray(command) ? command.map(String) : undefined;
      if (argv === undefined) return undefined;
      return commandLine(renderTorchrun(readTorchrunLauncher(task.params), argv));
    }
  } catch {
    return undefined;
  }
  return undefined;
}
