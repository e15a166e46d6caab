// A graph placed on this machine: each task's GPUs decided by `--device`, its stage's own
// `device` and the GPUs the machine has, and the device class the keys of tasks on a GPU carry.
// `run` and `plan` both place through here, so a plan shows the keys and states a run would use.

import type { Task, TaskGraph } from '../graph.js';
import { needsGpuDetection, placedTask, placeTasks, type DeviceRequest, type Placement } from './device.js';
import { detectGpus, gpuDeviceClass } from './resources.js';

export interface PlacedGraph {
  /** The graph with each task's GPU count set by its placement. */
  readonly graph: TaskGraph;
  /** The tasks in scope (`selected`), placed, in graph order. */
  readonly selected: readonly Task[];
  readonly placements: ReadonlyMap<string, Placement>;
  /** GPU ids of the machine: given, or detected only when a task in scope could use one. */
  readonly gpus: readonly number[];
  /** The class of the GPUs tasks are placed on, e.g. `cuda:sm90` ('cpu' when no task is). */
  readonly gpuDeviceClass: string;
}

export type PlaceGraphResult = ({ readonly ok: true } & PlacedGraph) | { readonly ok: false; readonly message: string };

/**
 * Places every task of `compiled` under `request`. A task in `selected` that cannot be placed
 * refuses the whole placement (the message names the flag or the stage).
 */
export function placeGraph(compiled: TaskGraph, request: DeviceRequest, selected: readonly Task[], gpus?: readonly number[]): PlaceGraphResult {
  const machine = gpus ?? (needsGpuDetection(selected, request) ? detectGpus() : []);
  const placed = placeTasks(compiled.tasks, request, machine, new Set(selected.map((t) => t.id)));
  if (!placed.ok) return placed;
  const { placements } = placed;
  const graph: TaskGraph = { ...compiled, tasks: compiled.tasks.map((t) => placedTask(t, placements.get(t.id))) };
  const byId = new Map(graph.tasks.map((t) => [t.id, t]));
  const inScope = selected.map((t) => byId.get(t.id)!);
  // One class per run: that of the first GPU the first task on a GPU may use.
  const onGpu = inScope.find((t) => t.resources.gpus > 0);
  const allowed = onGpu === undefined ? [] : placements.get(onGpu.id)!.allowed;
  const deviceClass = onGpu === undefined ? 'cpu' : gpuDeviceClass(allowed.length > 0 ? allowed : machine);
  return { ok: true, graph, selected: inScope, placements, gpus: machine, gpuDeviceClass: deviceClass };
}

/** Where a placed task runs, as a plan shows it: the GPU class when it takes a GPU, else 'cpu'. */
export const taskDevice = (task: Task, gpuClass: string): string => (task.resources.gpus > 0 ? gpuClass : 'cpu');
