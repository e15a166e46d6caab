// The runner's answer to `cfpipe plan`'s "what state is each task in": the plan takes a
// synchronous StateOracle (runner/plan), so the states (which may hash provided files) are
// computed first, then looked up. Reads the project's store if it exists; never creates one.

import type { Task, TaskGraph } from '../graph.js';
import type { StateOracle, TaskStatus } from '../plan/index.js';
import { taskStates } from './task-state.js';

/** A StateOracle backed by the store under `root`: fresh / resumable / run, with the reason. */
export async function storeStateOracle(graph: TaskGraph, root: string): Promise<StateOracle> {
  const states = await taskStates(graph, { root });
  return (task: Task): TaskStatus => {
    const info = states.get(task.id);
    return info === undefined ? { state: 'run', reason: 'never built' } : { state: info.state, reason: info.reason };
  };
}
