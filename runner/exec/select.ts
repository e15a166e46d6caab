// Which tasks a run covers: the targets and everything they need (`--only` narrows to the named
// stages alone; `--from` forces the named stages and everything downstream; `--force` forces
// the named stages only). Names match a stage (all its fan-out members) or one task id.

import type { Task, TaskGraph } from '../graph.js';

export interface Selection {
  /** Task ids in scope of this run, in graph order. */
  readonly tasks: readonly Task[];
  /** Task ids that must run even if fresh. */
  readonly forced: ReadonlySet<string>;
}

export interface SelectOptions {
  readonly targets?: readonly string[];
  readonly only?: readonly string[];
  readonly from?: readonly string[];
  readonly force?: readonly string[];
}

export type SelectResult = { readonly ok: true; readonly selection: Selection } | { readonly ok: false; readonly message: string };

function matching(graph: TaskGraph, name: string): Task[] {
  return graph.tasks.filter((t) => t.id === name || t.stage === name);
}

export function selectTasks(graph: TaskGraph, options: SelectOptions): SelectResult {
  const byId = new Map(graph.tasks.map((t) => [t.id, t]));
  const resolve = (names: readonly string[], flag: string): Task[] | string => {
    const found: Task[] = [];
    for (const name of names) {
      const tasks = matching(graph, name);
      if (tasks.length === 0) return `${flag} ${name}: no stage or task of that name in ${graph.pipeline}`;
      found.push(...tasks);
    }
    return found;
  };
  const forced = new Set<string>();
  for (const [names, flag] of [[options.force ?? [], '--force'], [options.from ?? [], '--from']] as const) {
    const tasks = resolve(names, flag);
    if (typeof tasks === 'string') return { ok: false, message: tasks };
    for (const t of tasks) forced.add(t.id);
  }
  if ((options.from ?? []).length > 0) {
    // Everything downstream of a --from stage is forced too.
    // (The graph is in topological order, so one pass reaches every descendant.) --force alone
    // does not spread: its dependents keep their keys, so they stay fresh.
    const fromRoots = resolve(options.from!, '--from') as Task[];
    const downstream = new Set(fromRoots.map((t) => t.id));
    for (const task of graph.tasks) if (task.deps.some((d) => downstream.has(d))) downstream.add(task.id);
    for (const id of downstream) forced.add(id);
  }
  let roots: Task[];
  if ((options.only ?? []).length > 0) {
    const tasks = resolve(options.only!, '--only');
    if (typeof tasks === 'string') return { ok: false, message: tasks };
    const ids = new Set(tasks.map((t) => t.id));
    return { ok: true, selection: { tasks: graph.tasks.filter((t) => ids.has(t.id)), forced } };
  }
  if ((options.targets ?? []).length > 0) {
    const tasks = resolve(options.targets!, 'target');
    if (typeof tasks === 'string') return { ok: false, message: tasks };
    roots = tasks;
  } else {
    roots = graph.defaults.map((id) => byId.get(id)).filter((t): t is Task => t !== undefined);
  }
  for (const id of forced) roots.push(byId.get(id)!);
  const inScope = new Set<string>();
  const stack = roots.map((t) => t.id);
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (inScope.has(id)) continue;
    inScope.add(id);
    for (const dep of byId.get(id)?.deps ?? []) stack.push(dep);
  }
  return { ok: true, selection: { tasks: graph.tasks.filter((t) => inScope.has(t.id)), forced } };
}
