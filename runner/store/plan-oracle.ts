// The runner's answer to `cfpipe plan`'s "what state is each task in": the plan takes a
// synchronous StateOracle (runner/plan), so the states (which may hash provided files) are
// computed first, then looked up. Reads the project's store if it exists; never creates one.

import type { Task, TaskGraph } from '../graph.js';
import type { StateOracle, TaskStatus } from '../plan/index.js';
import { taskStates } from './task-state.js';

export interface OracleOptions {
  readonly root: string;
  /** The device class of tasks placed on a GPU, as `run` would key them ('cpu' when none is). */
  readonly gpuDeviceClass: string;
}

/**
 * A StateOracle backed by the store under `root`: fresh / resumable / run with the reason, and
 * the cache key a run stores the task under. `graph` must be placed as the run would place it.
 */
export async function storeStateOracle(graph: TaskGraph, options: OracleOptions): Promise<StateOracle> {
  const states = await taskStates(graph, { root: options.root, gpuDeviceClass: options.gpuDeviceClass });
  return (task: Task): TaskStatus => {
    const info = states.get(task.id);
    return info === undefined ? { state: 'run', reason: 'never built' } : { state: info.state, reason: info.reason, key: info.key.key };
  };
}
