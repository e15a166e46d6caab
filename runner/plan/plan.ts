// A plan: every task of a graph with the state it is in and why. Until the runner's store
// exists, everything is `run` / "never built"; the runner passes its own oracle (one function)
// to say fresh / cached / resumable and the reason.

import type { Task, TaskGraph } from '../graph.js';

export type TaskState = 'fresh' | 'cached' | 'resumable' | 'run';

export interface TaskStatus {
  readonly state: TaskState;
  /** Why, in a few words: "never built", "config.lr 2e-6 → 4e-6", "checkpoint at step 400". */
  readonly reason: string;
}

/** Says what a task's state is; the runner supplies one backed by its store. */
export type StateOracle = (task: Task, graph: TaskGraph) => TaskStatus;

export const neverBuilt: StateOracle = () => ({ state: 'run', reason: 'never built' });

export interface PlanEntry extends TaskStatus {
  readonly task: Task;
}

export interface Plan {
  readonly graph: TaskGraph;
  /** In the graph's topological order. */
  readonly entries: readonly PlanEntry[];
}

export function buildPlan(graph: TaskGraph, oracle: StateOracle = neverBuilt): Plan {
  return { graph, entries: graph.tasks.map((task) => ({ task, ...oracle(task, graph) })) };
}
