// Where each task runs: `--device cpu|cuda|cuda:N|auto` for the run, and a stage's own
// `device = "..."`, which wins for that stage. The decision is made once, before keys are
// computed, because the device class (cpu vs a CUDA architecture) is part of the cache key of
// kinds whose numerics depend on it.
//
//   cpu      no GPU at all: the task gets none, the native engine its CPU backend.
//   cuda     GPUs required (an error when nvidia-smi lists none); a native-engine kind takes at
//            least one, other kinds the number they declare (`gpus = N`).
//   cuda:N   like cuda, on GPU N only (an error when the machine has no GPU N).
//   auto     cuda when the machine has a GPU, cpu otherwise (the default).

import type { Task } from '../graph.js';
import { DEVICE_SENSITIVE_KINDS } from '../store/effective-key.js';

export type DeviceRequest = { readonly kind: 'cpu' } | { readonly kind: 'auto' } | { readonly kind: 'cuda'; readonly index?: number };

export const DEVICE_SYNTAX = 'cpu, cuda, cuda:N or auto';

/** Parses `cpu`, `cuda`, `cuda:N`, `auto`; undefined for anything else. */
export function parseDevice(text: string): DeviceRequest | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'cpu' || t === 'auto' || t === 'cuda') return { kind: t };
  const m = /^cuda:(\d{1,4})$/.exec(t);
  return m ? { kind: 'cuda', index: Number(m[1]) } : undefined;
}

export const deviceText = (d: DeviceRequest): string => (d.kind === 'cuda' && d.index !== undefined ? `cuda:${d.index}` : d.kind);

/** Where one task runs: the GPU ids it may take (empty: CPU) and how many it takes. */
export interface Placement {
  /** GPUs the task takes (0: it runs on the CPU). */
  readonly gpus: number;
  /** The ids it may choose from. */
  readonly allowed: readonly number[];
}

export type PlacementResult = { readonly ok: true; readonly placements: ReadonlyMap<string, Placement> } | { readonly ok: false; readonly message: string };

const gpuCount = (gpus: readonly number[]): string =>
  gpus.length === 0 ? 'no GPU (nvidia-smi -L lists none)' : `${gpus.length} GPU${gpus.length === 1 ? '' : 's'} (${gpus.join(', ')})`;

/** Where one task runs under `run` on a machine offering `detected`, or why it cannot. */
export function placeTask(task: Task, run: DeviceRequest, detected: readonly number[]): Placement | string {
  const own = task.resources.device === undefined ? undefined : parseDevice(task.resources.device);
  if (task.resources.device !== undefined && own === undefined) return `stage ${task.stage}: device "${task.resources.device}" is not one of ${DEVICE_SYNTAX}`;
  const request = own ?? run;
  const where = own ? `stage ${task.stage} (device = "${deviceText(own)}")` : `--device ${deviceText(run)}`;
  const declared = task.resources.gpus;
  if (request.kind === 'cpu') return { gpus: 0, allowed: [] };
  // Nothing to choose from: a task that declares GPUs is then reported by the scheduler.
  if (request.kind === 'auto' && detected.length === 0) return { gpus: declared, allowed: [] };
  if (detected.length === 0) return `${where}: this machine has ${gpuCount(detected)}`;
  let allowed: readonly number[] = detected;
  if (request.kind === 'cuda' && request.index !== undefined) {
    if (!detected.includes(request.index)) return `${where}: there is no GPU ${request.index}; this machine has ${gpuCount(detected)}`;
    allowed = [request.index];
  }
  // A stage asking for more GPUs than it may use is the scheduler's to report: it fails that
  // task alone (and --keep-going runs the rest), as without --device.
  return { gpus: Math.max(declared, DEVICE_SENSITIVE_KINDS.has(task.kind) ? 1 : 0), allowed };
}

/**
 * Places every task of the graph. A task that cannot be placed refuses the run when it is
 * among `selected` (the message names the flag or the stage); one outside the selection only
 * contributes its key and keeps its declared GPUs.
 */
export function placeTasks(tasks: readonly Task[], run: DeviceRequest, detected: readonly number[], selected: ReadonlySet<string>): PlacementResult {
  const placements = new Map<string, Placement>();
  for (const task of tasks) {
    const placement = placeTask(task, run, detected);
    if (typeof placement === 'string') {
      if (selected.has(task.id)) return { ok: false, message: placement };
      placements.set(task.id, { gpus: task.resources.gpus, allowed: [] });
    } else placements.set(task.id, placement);
  }
  return { ok: true, placements };
}

/** Whether placing `tasks` under `run` needs to know the machine's GPUs (so nvidia-smi runs only then). */
export function needsGpuDetection(tasks: readonly Task[], run: DeviceRequest): boolean {
  return tasks.some((task) => {
    const request = (task.resources.device === undefined ? undefined : parseDevice(task.resources.device)) ?? run;
    if (request.kind === 'cpu') return false;
    if (request.kind === 'cuda') return true;
    return task.resources.gpus > 0 || DEVICE_SENSITIVE_KINDS.has(task.kind);
  });
}

/** The task with its GPU count set by its placement (what the scheduler and the keys read). */
export function placedTask(task: Task, placement: Placement | undefined): Task {
  if (placement === undefined || placement.gpus === task.resources.gpus) return task;
  return { ...task, resources: { ...task.resources, gpus: placement.gpus } };
}
