// The contract between the runner and a stage kind. A kind's `run` executes INSIDE a worker
// child process (runner/exec/worker.ts), one process per task, so a crash or a poisoned native
// context takes down one task and never the runner. Everything a kind needs comes through the
// context; everything it reports goes out through it (as events on the worker's side channel).

import type { Task } from '../graph.js';

export interface KindContext {
  /** The task being run (params, config, resources, key), from runner/graph.ts. */
  readonly task: Task;
  /** Input name → resolved artifact paths; a fan-in input has several, in fan-out order. */
  readonly inputs: Readonly<Record<string, readonly string[]>>;
  /**
   * Output name → the path to write that output at (a file, or a directory for `dir`-like
   * outputs). The path sits in a fresh temporary folder; the runner moves it into the content
   * store and publishes it only after `run` resolves. Never write anywhere else.
   */
  readonly outputs: Readonly<Record<string, string>>;
  /**
   * A folder owned by this task's cache key that survives failures, interruptions and kill -9.
   * Checkpoints live here: on a rerun with the same key the kind finds them again and resumes.
   * The runner deletes it after the task succeeds. Use runner/kinds/checkpoints.ts to write
   * and read checkpoints atomically with a checksum.
   */
  readonly workDir: string;
  /** The project root (the folder holding `.cfpipe/`), for configs and other relative paths. */
  readonly root: string;
  /**
   * Aborted on the first Ctrl-C / SIGTERM: finish the current step, write a checkpoint, then
   * stop by throwing (`ctx.signal.throwIfAborted()`). A second signal kills the process.
   */
  readonly signal: AbortSignal;
  /** Step-wise progress, drawn as a bar with ETA; metrics (loss, rates) shown beside it. */
  progress(step: number, total: number, metrics?: Readonly<Record<string, number>>): void;
  /** Report that a complete checkpoint for `step` now exists at `path` (already renamed into place). */
  checkpoint(step: number, path: string): void;
  /** One line for the task's log file (and the interface's detail view). */
  log(line: string): void;
  /** 'cpu' or 'cuda:N' (N counts within CUDA_VISIBLE_DEVICES, which the runner sets). */
  readonly device: string;
}

/**
 * A stage kind. `run` resolves only when every output named in `ctx.outputs` is complete.
 * To stop early (ctx.signal aborted), throw; the task is then recorded as interrupted, not
 * failed, and resumes from its work dir on the next run. Any other throw fails the task with
 * the error's message (a `KindError` shows its message without a stack trace).
 */
export interface StageKind {
  readonly name: string;
  run(ctx: KindContext): Promise<void>;
}

/** An expected failure of a kind (bad input, tool exited non-zero): reported as its message alone. */
export class KindError extends Error {
  override readonly name = 'KindError';
}
