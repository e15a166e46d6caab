// A plan: every task of a graph with the state it is in and why. Until the runner's store
// exists, everything is `run` / "never built"; the runner passes its own oracle (one function)
// to say fresh / cached / resumable and the reason, with the cache key and device it would use.

import type { Task, TaskGraph } from '../graph.js';

export type TaskState = 'fresh' | 'cached' | 'resumable' | 'run';

export interface TaskStatus {
  readonly state: TaskState;
  /** Why, in a few words: "never built", "config.lr 2e-6 → 4e-6", "checkpoint at step 400". */
  readonly reason: string;
  /** The cache key the runner stores the task under (default: the compiler's key). */
  readonly key?: string;
  /** Where the task runs when that is not the CPU, e.g. `cuda:sm90`. */
  readonly device?: string;
}

/** Says what a task's state is; the runner supplies one backed by its store. */
export type StateOracle = (task: Task, graph: TaskGraph) => TaskStatus;

export const neverBuilt: StateOracle = () => ({ state: 'run', reason: 'never built' });

export interface PlanEntry extends TaskStatus {
  readonly task: Task;
  readonly key: string;
}

export interface Plan {
  readonly graph: TaskGraph;
  /** In the graph's topological order. */
  readonly entries: readonly PlanEntry[];
}

export function buildPlan(graph: TaskGraph, oracle: StateOracle = neverBuilt): Plan {
  return {
    graph,
    entries: graph.tasks.map((task) => {
      const status = oracle(task, graph);
      return { task, ...status, key: status.key ?? task.key };
    }),
  };
}
