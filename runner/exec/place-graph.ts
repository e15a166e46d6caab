// A graph placed on this machine: each task's GPUs decided by `--device`, its stage's own
// `device` and the GPUs the machine has, and the device class the keys of tasks on a GPU carry.
// `run`, `plan`, `status` and `explain` all place through here, so they show the keys and states a run would use.

import type { Task, TaskGraph } from '../graph.js';
import { needsGpuDetection, parseDevice, placedTask, placeTasks, type DeviceRequest, type Placement } from './device.js';
import { detectGpus, gpuDeviceClass } from './resources.js';
import { selectTasks } from './select.js';

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
  const graph = withPlacements(compiled, placements);
  const byId = new Map(graph.tasks.map((t) => [t.id, t]));
  const inScope = selected.map((t) => byId.get(t.id)!);
  // One class per run: that of the first GPU the first task on a GPU may use.
  const onGpu = inScope.find((t) => t.resources.gpus > 0);
  const allowed = onGpu === undefined ? [] : placements.get(onGpu.id)!.allowed;
  const deviceClass = onGpu === undefined ? 'cpu' : gpuDeviceClass(allowed.length > 0 ? allowed : machine);
  return { ok: true, graph, selected: inScope, placements, gpus: machine, gpuDeviceClass: deviceClass };
}

/** The graph with each task's GPU count set by its placement. */
const withPlacements = (compiled: TaskGraph, placements: ReadonlyMap<string, Placement>): TaskGraph => ({
  ...compiled,
  tasks: compiled.tasks.map((t) => placedTask(t, placements.get(t.id))),
});

/**
 * The graph placed as `cfpipe run FILE --device D` (the default targets) places it: what
 * `plan`, `status` and `explain` show keys and states for; or why that run would be refused.
 */
export function placeDefaultRun(compiled: TaskGraph, request: DeviceRequest): PlaceGraphResult {
  const selected = selectTasks(compiled, {});
  return selected.ok ? placeGraph(compiled, request, selected.selection.tasks) : selected;
}

/**
 * The graph as a run would have placed it on another machine: on one without GPUs
 * (`deviceClass` 'cpu', `--device cpu`), or with `--device cuda` on one whose GPUs are of
 * `deviceClass` (e.g. `cuda:sm90`). Nothing is detected and nothing refused: this only
 * recomputes the keys such a run stored its results under.
 */
export function placeGraphOnClass(compiled: TaskGraph, deviceClass: string): TaskGraph {
  if (deviceClass === 'cpu') return placeUnrefused(compiled, { kind: 'cpu' }, []);
  // GPU 0 and every GPU a stage pins itself to, so each pinned stage finds its GPU.
  const pins = compiled.tasks.map((t) => (t.resources.device === undefined ? undefined : parseDevice(t.resources.device)));
  const highest = Math.max(0, ...pins.map((d) => (d?.kind === 'cuda' ? (d.index ?? 0) : 0)));
  return placeUnrefused(compiled, { kind: 'cuda' }, Array.from({ length: highest + 1 }, (_, i) => i));
}

/** Places every task; with none selected nothing refuses (a task that cannot be placed keeps its declared GPUs). */
function placeUnrefused(compiled: TaskGraph, request: DeviceRequest, machine: readonly number[]): TaskGraph {
  const placed = placeTasks(compiled.tasks, request, machine, new Set());
  return placed.ok ? withPlacements(compiled, placed.placements) : compiled;
}

/** Where a placed task runs, as a plan shows it: the GPU class when it takes a GPU, else 'cpu'. */
export const taskDevice = (task: Task, gpuClass: string): string => (task.resources.gpus > 0 ? gpuClass : 'cpu');
