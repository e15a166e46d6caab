// What a run would do with each task, decided before anything runs — shared by `run` (to pick
// the work), `plan` (to show it) and `status`:
//   fresh      a success record for this exact key exists and its outputs check out
//   resumable  not fresh, but the work dir of this key holds a checkpoint to continue from
//   run        not fresh and nothing to resume
// Output checks use the digest memo, so an unchanged output costs one stat and one read.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Task, TaskGraph } from '../graph.js';
import { listCheckpointSteps } from '../kinds/checkpoints.js';
import { verifyPath } from './digest.js';
import { effectiveKeys, resolveInputPath, type EffectiveKey } from './effective-key.js';
import { artifactDir, workDirFor } from './layout.js';
import type { TaskRecord } from './records.js';
import { openStore, type Store } from './store.js';

export type TaskState = 'fresh' | 'resumable' | 'run';

export interface TaskStateInfo {
  readonly task: Task;
  readonly state: TaskState;
  /** One short phrase: why (e.g. `cached`, `never run`, `output model was modified`, `checkpoint at step 40`). */
  readonly reason: string;
  readonly key: EffectiveKey;
  /** The record for this key, if any. */
  readonly record?: TaskRecord;
  /** Published copies that are missing and only need copying again (fresh tasks). */
  readonly republish: readonly string[];
}

export interface StateOptions {
  readonly root: string;
  readonly gpuDeviceClass?: string;
  /** Task ids to run whatever their state (`--force`, `--from`). */
  readonly force?: ReadonlySet<string>;
  /** Use this store (run holds it open); otherwise the project's store is opened if it exists. */
  readonly store?: Store;
}

async function checkOutputs(store: Store, task: Task, record: TaskRecord): Promise<{ problem?: string; republish: string[] }> {
  const republish: string[] = [];
  for (const output of task.outputs) {
    const recorded = record.outputs?.[output.name];
    if (recorded === undefined) return { problem: `output ${output.name} was not recorded`, republish };
    const stored = await verifyPath(store, join(artifactDir(store.layout, record.key), output.name), recorded.digest);
    if (stored !== 'ok') return { problem: `output ${output.name} is ${stored === 'missing' ? 'missing from the cache' : 'corrupt (digest mismatch)'}`, republish };
    if (output.publish !== undefined) {
      const published = await verifyPath(store, resolveInputPath(store.layout.root, output.publish), recorded.digest);
      if (published === 'missing') republish.push(output.name);
      else if (published === 'changed') return { problem: `published ${output.publish} was modified`, republish };
    }
  }
  return { republish };
}

function resumeReason(store: Store, key: string, record: TaskRecord | undefined): string | undefined {
  const dir = workDirFor(store.layout, key);
  if (!existsSync(dir)) return undefined;
  if (record?.lastCheckpoint !== undefined) return `checkpoint at step ${record.lastCheckpoint.step}`;
  // Checkpoints written by the kind without the runner hearing of it (runner killed first).
  const steps = listCheckpointStepsSync(dir);
  if (steps.length > 0) return `checkpoint at step ${steps[0]}`;
  return readdirSync(dir).length > 0 ? 'work dir kept from an interrupted attempt' : undefined;
}

function listCheckpointStepsSync(dir: string): number[] {
  return readdirSync(dir)
    .map((n) => /^ckpt-(\d{12})\.bin$/.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => b - a);
}

function notFreshReason(store: Store, task: Task, key: string, record: TaskRecord | undefined): string {
  if (record?.status === 'failed') return `failed last time: ${record.error ?? 'unknown error'}`;
  if (record?.status === 'interrupted') return 'interrupted last time';
  if (record?.status === 'running') return 'was running when the runner stopped';
  const pointer = store.latest.get(task.id);
  if (pointer?.lastSuccess !== undefined && pointer.lastSuccess !== key) return 'inputs or settings changed since the last success (see `cfpipe explain`)';
  return 'never run';
}

/** Decides the state of every task of the graph. */
export async function taskStates(graph: TaskGraph, options: StateOptions): Promise<Map<string, TaskStateInfo>> {
  const store = options.store ?? openStore(options.root, { existingOnly: true });
  const keys = await effectiveKeys(graph, { root: options.root, gpuDeviceClass: options.gpuDeviceClass ?? 'cpu', ...(store ? { store } : {}) });
  const states = new Map<string, TaskStateInfo>();
  for (const task of graph.tasks) {
    const key = keys.get(task.id)!;
    if (store === undefined) {
      states.set(task.id, { task, state: 'run', reason: 'never run', key, republish: [] });
      continue;
    }
    const record = store.tasks.get(key.key);
    const forced = options.force?.has(task.id) === true;
    if (record?.status === 'done' && !forced) {
      const check = await checkOutputs(store, task, record);
      if (check.problem === undefined) {
        states.set(task.id, { task, state: 'fresh', reason: check.republish.length ? `cached (re-publish ${check.republish.join(', ')})` : 'cached', key, record, republish: check.republish });
        continue;
      }
      states.set(task.id, { task, state: 'run', reason: check.problem, key, record, republish: [] });
      continue;
    }
    const resume = resumeReason(store, key.key, record);
    const why = forced ? 'forced' : notFreshReason(store, task, key.key, record);
    if (resume !== undefined) states.set(task.id, { task, state: 'resumable', reason: `${resume} (${why})`, key, ...(record ? { record } : {}), republish: [] });
    else states.set(task.id, { task, state: 'run', reason: why, key, ...(record ? { record } : {}), republish: [] });
  }
  return states;
}

export { listCheckpointSteps };
