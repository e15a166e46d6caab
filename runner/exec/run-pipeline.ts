// `cfpipe run`, minus argument parsing: lock the store, decide each task's state, run what is
// not fresh (resuming from checkpoints), publish, record, release. Interrupts: the first
// SIGINT/SIGTERM asks every worker to checkpoint and stop; the second kills them.

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import type { Task, TaskGraph } from '../graph.js';
import { eventEmitter, type EventSink, type PlannedTask } from '../events.js';
import { resolveInputPath } from '../store/effective-key.js';
import { artifactDir } from '../store/layout.js';
import { acquireLock, describeHolder, releaseLock } from '../store/lock.js';
import { isAlive } from '../store/process-identity.js';
import { bootId, thisHost } from '../store/process-identity.js';
import { openStore, StoreError, type Store } from '../store/store.js';
import { taskStates, type TaskStateInfo } from '../store/task-state.js';
import type { RecordedGraphOptions } from '../store/records.js';
import { publishOutput } from './publish.js';
import { detectCpus } from './resources.js';
import type { DeviceRequest } from './device.js';
import { placeGraph } from './place-graph.js';
import { runAttempt, type AttemptOutcome, type RunningWorker } from './run-task.js';
import { describeError } from './errors.js';
import { schedule, type TaskOutcome } from './scheduler.js';
import { selectTasks, type SelectOptions } from './select.js';

export interface RunOptions extends SelectOptions {
  /** Project root: the folder holding `.cfpipe/`. */
  readonly root: string;
  /** CPU budget (`-j`); default: detected cores. */
  readonly jobs?: number;
  /** GPU ids to use; default: detected (`nvidia-smi -L`, or CUDA_VISIBLE_DEVICES). */
  readonly gpus?: readonly number[];
  /** `--device`: where tasks run unless their stage says otherwise; default auto. */
  readonly device?: DeviceRequest;
  readonly keepGoing?: boolean;
  readonly dryRun?: boolean;
  /** How long to wait for another runner's lock (ms); 0 = exit naming the holder. */
  readonly waitForLock?: number;
  readonly sinks: readonly EventSink[];
  /** The command line, recorded in the lock so a second runner can name it. */
  readonly command: string;
  /** The command line's graph options, kept in the run record (see RunRecord.graphOptions). */
  readonly graphOptions?: RecordedGraphOptions;
  /** Install SIGINT/SIGTERM handlers (the CLI does; tests driving the API may not). */
  readonly handleSignals?: boolean;
}

export type RunResult =
  | { readonly status: 'ok' | 'failed' | 'interrupted'; readonly outcomes: ReadonlyMap<string, TaskOutcome | 'fresh'> }
  | { readonly status: 'refused'; readonly message: string };

/** Exit codes: 0 ok, 1 a task failed, 2 usage/selection error, 3 store locked, 130 interrupted. */
export function exitCodeOf(result: RunResult): number {
  switch (result.status) {
    case 'ok':
      return 0;
    case 'failed':
      return 1;
    case 'interrupted':
      return 130;
    case 'refused':
      return /locked|is running/.test(result.message) ? 3 : 2;
  }
}

const newRunId = (): string => `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`;

/** Kills a worker left running by a runner that died, before its task is run again. */
async function stopOrphan(info: TaskStateInfo): Promise<void> {
  const worker = info.record?.status === 'running' ? info.record.worker : undefined;
  if (worker === undefined) return;
  if (!isAlive({ pid: worker.pid, procStart: worker.started, bootId: bootId(), host: thisHost() })) return;
  try {
    process.kill(-worker.pid, 'SIGKILL');
  } catch {
    try {
      process.kill(worker.pid, 'SIGKILL');
    } catch {
      return;
    }
  }
  for (let i = 0; i < 50 && isAlive({ pid: worker.pid, procStart: worker.started, bootId: bootId(), host: thisHost() }); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

function inputPaths(store: Store, task: Task, states: ReadonlyMap<string, TaskStateInfo>): Record<string, string[]> {
  const inputs: Record<string, string[]> = {};
  for (const input of task.inputs) {
    inputs[input.name] = input.sources.map((source) =>
      source.kind === 'path' ? resolveInputPath(store.layout.root, source.path) : join(artifactDir(store.layout, states.get(source.task)!.key.key), source.output),
    );
  }
  return inputs;
}

export async function runPipeline(compiled: TaskGraph, options: RunOptions): Promise<RunResult> {
  const emit = eventEmitter(options.sinks);
  const selected = selectTasks(compiled, options);
  if (!selected.ok) return { status: 'refused', message: selected.message };

  // Devices first: a request the machine cannot satisfy is refused before the store is touched.
  const placed = placeGraph(compiled, options.device ?? { kind: 'auto' }, selected.selection.tasks, options.gpus);
  if (!placed.ok) return { status: 'refused', message: placed.message };
  const { graph, placements, gpus, gpuDeviceClass: gpuClass } = placed;
  const selection = { ...selected.selection, tasks: placed.selected };

  let store: Store;
  try {
    store = openStore(options.root)!;
  } catch (error) {
    if (error instanceof StoreError) return { status: 'refused', message: error.message };
    throw error;
  }
  if (options.dryRun) {
    const states = await taskStates(graph, { root: options.root, store, gpuDeviceClass: gpuClass, force: selection.forced });
    emit({ type: 'run-started', runId: 'dry-run', pipeline: graph.pipeline, tasks: planned(selection.tasks, states) });
    const counts = countStates(selection.tasks, states);
    emit({ type: 'run-finished', runId: 'dry-run', status: 'ok', counts, durationMs: 0 });
    return { status: 'ok', outcomes: new Map(selection.tasks.map((t) => [t.id, states.get(t.id)!.state === 'fresh' ? 'fresh' : 'skipped'])) };
  }

  const lock = await acquireLock(store, options.command, options.waitForLock ?? 0, (holder) => emit({ type: 'lock-wait', holder: describeHolder(holder) }));
  if (!lock.ok) {
    return { status: 'refused', message: `another cfpipe is running on this project's store: ${describeHolder(lock.holder)}. Wait for it, or pass --wait.` };
  }
  const started = Date.now();
  const runId = newRunId();
  let stopping = false;
  let hard = false;
  const workers = new Map<string, RunningWorker>();
  const onSignal = (): void => {
    if (!stopping) {
      stopping = true;
      emit({ type: 'interrupt', hard: false });
      for (const worker of workers.values()) worker.kill('SIGTERM');
    } else if (!hard) {
      hard = true;
      emit({ type: 'interrupt', hard: true });
      for (const worker of workers.values()) {
        try {
          if (worker.pid !== undefined) process.kill(-worker.pid, 'SIGKILL');
        } catch {
          worker.kill('SIGKILL');
        }
      }
    }
  };
  if (options.handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  try {
    await store.runs.put(runId, { id: runId, pipeline: graph.pipeline, file: graph.file, pid: process.pid, host: thisHost(), startedAt: started, status: 'running', ...(options.graphOptions ? { graphOptions: options.graphOptions } : {}) });
    const states = await taskStates(graph, { root: options.root, store, gpuDeviceClass: gpuClass, force: selection.forced });
    emit({ type: 'run-started', runId, pipeline: graph.pipeline, tasks: planned(selection.tasks, states) });
    const outcomes = new Map<string, TaskOutcome | 'fresh'>();
    const toRun: Task[] = [];
    for (const task of selection.tasks) {
      const info = states.get(task.id)!;
      if (info.state === 'fresh') {
        for (const name of info.republish) {
          const output = task.outputs.find((o) => o.name === name)!;
          await publishOutput(store, info.key.key, name, output.publish!);
        }
        outcomes.set(task.id, 'fresh');
        emit({ type: 'task-cached', id: task.id });
      } else {
        toRun.push(task);
      }
    }
    // `--only` runs just the named stages: whatever they read must already be built.
    const running = new Set(toRun.map((t) => t.id));
    const inScope = new Set(selection.tasks.map((t) => t.id));
    for (const task of toRun) {
      const missing = task.deps.find((d) => !inScope.has(d) && states.get(d)!.state !== 'fresh');
      if (missing !== undefined) return await finish({ status: 'refused', message: `--only ${task.stage}: its input from ${missing} is not built yet (run without --only, or with --only ${missing} first)` });
    }
    for (const task of toRun) await stopOrphan(states.get(task.id)!);
    void running;
    // Two tasks with the same effective key compute the same thing: run the first, and let the
    // others wait for it and then take its result (they would otherwise share a work dir).
    const firstWithKey = new Map<string, string>();
    const scheduledTasks = toRun.map((task) => {
      const key = states.get(task.id)!.key.key;
      const first = firstWithKey.get(key);
      if (first === undefined) {
        firstWithKey.set(key, task.id);
        return task;
      }
      return { ...task, deps: [...task.deps, first] };
    });

    const scheduled = await schedule(scheduledTasks, {
      cpus: options.jobs ?? detectCpus(),
      gpus,
      gpuChoice: (task) => {
        const allowed = placements.get(task.id)?.allowed;
        return allowed && allowed.length > 0 ? allowed : undefined;
      },
      keepGoing: options.keepGoing ?? false,
      stopping: () => stopping,
      willRetry: (task, attempt) => attempt <= task.retries,
      skipped: (task, reason) => emit({ type: 'task-skipped', id: task.id, reason }),
      attempt: async (task, attempt, gpuIds) => {
        const info = states.get(task.id)!;
        if (firstWithKey.get(info.key.key) !== task.id) {
          emit({ type: 'task-cached', id: task.id });
          return 'done';
        }
        const previous = attempt === 1 ? info.record : store.tasks.get(info.key.key);
        let outcome: AttemptOutcome;
        try {
          outcome = await runAttempt({
            store,
            runId,
            task,
            key: info.key,
            inputs: inputPaths(store, task, states),
            attempt,
            gpuIds,
            ...(previous ? { previous } : {}),
            emit,
            stopping: () => stopping,
            onWorker: (worker) => {
              if (worker) {
                workers.set(task.id, worker);
                if (stopping) worker.kill('SIGTERM');
              } else workers.delete(task.id);
            },
          });
        } catch (error) {
          // An unexpected error of the runner itself while running this task: fail the task, not the run.
          outcome = { status: 'failed', message: `internal error: ${describeError(error)}` };
        }
        if (outcome.status === 'failed') {
          emit({ type: 'task-failed', id: task.id, message: outcome.message, willRetry: !stopping && attempt <= task.retries, log: store.tasks.get(info.key.key)?.log ?? '' });
        } else if (outcome.status === 'interrupted') {
          emit({ type: 'task-interrupted', id: task.id, ...(outcome.step !== undefined ? { step: outcome.step } : {}) });
        }
        return outcome.status;
      },
    });
    for (const [id, outcome] of scheduled) outcomes.set(id, outcome);
    const failed = [...scheduled.values()].some((o) => o === 'failed');
    const status = stopping ? 'interrupted' : failed ? 'failed' : 'ok';
    return await finish({ status, outcomes });
  } finally {
    if (options.handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    releaseLock(store);
  }

  async function finish(result: RunResult): Promise<RunResult> {
    const counts: Record<string, number> = {};
    if (result.status !== 'refused') for (const o of result.outcomes.values()) counts[o] = (counts[o] ?? 0) + 1;
    const status = result.status === 'refused' ? 'failed' : result.status;
    await store.runs.put(runId, { id: runId, pipeline: graph.pipeline, file: graph.file, pid: process.pid, host: thisHost(), startedAt: started, finishedAt: Date.now(), status, counts, ...(options.graphOptions ? { graphOptions: options.graphOptions } : {}) });
    rmSync(join(store.layout.tmp), { recursive: true, force: true });
    emit({ type: 'run-finished', runId, status, counts, durationMs: Date.now() - started });
    return result;
  }
}

function planned(tasks: readonly Task[], states: ReadonlyMap<string, TaskStateInfo>): PlannedTask[] {
  return tasks.map((t) => {
    const s = states.get(t.id)!;
    return { id: t.id, stage: t.stage, kind: t.kind, key: s.key.key, state: s.state, reason: s.reason, willRun: s.state !== 'fresh' };
  });
}

function countStates(tasks: readonly Task[], states: ReadonlyMap<string, TaskStateInfo>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const t of tasks) {
    const s = states.get(t.id)!.state;
    counts[s] = (counts[s] ?? 0) + 1;
  }
  return counts;
}
