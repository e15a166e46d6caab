// The command table. Adding a command is one line here plus its module under commands/, which
// exports `help` and `run`; modules load only when their command runs, so `cfpipe --help`
// imports nothing but this table.

import type { CliIO } from './io.js';

export interface CommandModule {
  /** Full help: usage, description, options. */
  readonly help: string;
  /** Run with the arguments after the command name; resolves to the exit code. */
  run(args: readonly string[], io: CliIO): Promise<number>;
}

export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  readonly load: () => Promise<CommandModule>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'check', summary: 'check pipelines: syntax, names, types, configs, resources', load: () => import('./commands/check.js') },
  { name: 'plan', summary: 'show every task with its cache key, state and reason (text, json, dot, mermaid)', load: () => import('./commands/plan.js') },
  { name: 'fmt', summary: 'rewrite pipelines in the canonical layout (--check for CI)', load: () => import('./commands/fmt.js') },
  { name: 'run', summary: 'run a pipeline: every task not fresh, resuming from checkpoints', load: () => import('./commands/run.js') },
  { name: 'status', summary: 'show the state of every task and any run in progress', load: () => import('./commands/status.js') },
  { name: 'explain', summary: 'why a stage will run: what changed since its last success', load: () => import('./commands/explain.js') },
  { name: 'logs', summary: "show a stage's task logs (last attempt, or --all)", load: () => import('./commands/logs.js') },
  { name: 'gc', summary: 'delete unreferenced artifacts, work dirs and logs; report bytes freed', load: () => import('./commands/gc.js') },
];

export const findCommand = (name: string): CommandEntry | undefined => COMMANDS.find((c) => c.name === name);
