// The worker side channel: the job goes to the worker as JSON on stdin; the worker answers
// with one JSON message per line on fd 3. The worker leads its own process group, and commands
// it starts stay in that group, so the runner stops a task's whole tree with one kill(-pid).
// stdout/stderr of the worker (and of any command it
// runs) go straight to the task's log file, so logs survive a runner that dies.

import type { Task } from '../graph.js';

/** Worker exit codes the runner understands. */
export const EXIT_FAILED = 10;
export const EXIT_INTERRUPTED = 11;

/** The fd of the side channel in the worker. */
export const CHANNEL_FD = 3;

export interface WorkerJob {
  readonly task: Task;
  readonly inputs: Readonly<Record<string, readonly string[]>>;
  readonly outputs: Readonly<Record<string, string>>;
  readonly workDir: string;
  readonly root: string;
  readonly device: string;
}

export type WorkerMessage =
  | { readonly t: 'started'; readonly pid: number }
  | { readonly t: 'progress'; readonly step: number; readonly total: number; readonly metrics?: Readonly<Record<string, number>> }
  | { readonly t: 'checkpoint'; readonly step: number; readonly path: string }
  | { readonly t: 'failed'; readonly message: string }
  | { readonly t: 'interrupted' }
  | { readonly t: 'finished' };
