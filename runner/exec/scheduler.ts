// Walks the selected tasks in dependency order and runs as many at once as the CPU and GPU
// budgets allow. GPUs are handed out by id. Failure policy: by default a failure stops the
// scheduling of new tasks (running ones finish); with keepGoing, only the failed task's
// dependents are skipped. A failed task is retried up to `task.retries` times.

import type { Task } from '../graph.js';

export type TaskOutcome = 'done' | 'failed' | 'interrupted' | 'skipped';

export interface ScheduleOptions {
  readonly cpus: number;
  readonly gpus: readonly number[];
  readonly keepGoing: boolean;
  /** Returns true when the run is being stopped (interrupt): nothing new starts. */
  readonly stopping: () => boolean;
  /** Runs one attempt; resolves with its outcome. */
  readonly attempt: (task: Task, attempt: number, gpuIds: readonly number[]) => Promise<'done' | 'failed' | 'interrupted'>;
  readonly willRetry: (task: Task, attempt: number) => boolean;
  readonly skipped: (task: Task, reason: string) => void;
  /** The GPU ids a task may take (a stage pinned to `cuda:N`); default: any of `gpus`. */
  readonly gpuChoice?: (task: Task) => readonly number[] | undefined;
}

/**
 * Runs `toRun` (a subset of the graph's tasks, in topological order). Deps outside `toRun` are
 * taken as already available.
 */
export async function schedule(toRun: readonly Task[], options: ScheduleOptions): Promise<Map<string, TaskOutcome>> {
  const outcomes = new Map<string, TaskOutcome>();
  const pending = new Set(toRun.map((t) => t.id));
  const attempts = new Map<string, number>();
  const freeGpus = [...options.gpus];
  let freeCpus = options.cpus;
  let halted = false;
  const running = new Map<string, Promise<void>>();

  const cpuNeed = (t: Task): number => Math.min(Math.max(1, t.resources.cpus || 1), options.cpus);
  const depsReady = (t: Task): boolean => t.deps.every((d) => !pending.has(d) || outcomes.get(d) === 'done');
  const blockedBy = (t: Task): string | undefined => t.deps.find((d) => pending.has(d) && outcomes.has(d) && outcomes.get(d) !== 'done');

  let wake: () => void = () => {};
  for (;;) {
    // Skip tasks whose dependency ended without success.
    let changed = true;
    while (changed) {
      changed = false;
      for (const task of toRun) {
        if (outcomes.has(task.id) || running.has(task.id)) continue;
        const blocker = blockedBy(task);
        if (blocker !== undefined) {
          outcomes.set(task.id, 'skipped');
          options.skipped(task, `${blocker} did not finish`);
          changed = true;
        }
      }
    }
    if (!halted && !options.stopping()) {
      for (const task of toRun) {
        if (outcomes.has(task.id) || running.has(task.id) || !depsReady(task)) continue;
        const cpus = cpuNeed(task);
        const gpus = task.resources.gpus;
        const allowed = options.gpuChoice?.(task) ?? options.gpus;
        if (gpus > allowed.length) {
          outcomes.set(task.id, 'failed');
          options.skipped(task, `needs ${gpus} GPU(s) but ${allowed.length} are available`);
          if (!options.keepGoing) halted = true;
          continue;
        }
        const usable = gpus === 0 ? [] : freeGpus.filter((id) => allowed.includes(id));
        if (cpus > freeCpus || gpus > usable.length) continue;
        freeCpus -= cpus;
        const gpuIds = usable.slice(0, gpus);
        for (const id of gpuIds) freeGpus.splice(freeGpus.indexOf(id), 1);
        const attempt = (attempts.get(task.id) ?? 0) + 1;
        attempts.set(task.id, attempt);
        running.set(
          task.id,
          options.attempt(task, attempt, gpuIds).then((result) => {
            freeCpus += cpus;
            freeGpus.push(...gpuIds);
            freeGpus.sort((a, b) => a - b);
            running.delete(task.id);
            if (result === 'failed' && !options.stopping() && options.willRetry(task, attempt)) {
              // Not recorded: it becomes ready again on the next pass.
            } else {
              outcomes.set(task.id, result);
              if (result === 'failed' && !options.keepGoing) halted = true;
            }
            wake();
          }),
        );
      }
    }
    if (running.size === 0) break;
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  for (const task of toRun) {
    if (!outcomes.has(task.id)) {
      outcomes.set(task.id, 'skipped');
      options.skipped(task, options.stopping() ? 'the run was interrupted' : 'the run stopped after a failure');
    }
  }
  return outcomes;
}
