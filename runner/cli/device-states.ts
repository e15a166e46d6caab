// Task states for `--device`, shared by `status` and `explain`: the graph placed as `cfpipe run
// FILE --device D` places it (so the keys are the ones that run stores under), and, for a task
// not fresh on that device, whether the store holds its result from a run on another device
// class (a GPU run seen from the CPU, or the reverse), so the output can say "done on cuda:sm90"
// rather than "never run".

import type { DeviceRequest } from '../exec/device.js';
import { placeDefaultRun, placeGraphOnClass } from '../exec/place-graph.js';
import { detectGpus, gpuDeviceClass } from '../exec/resources.js';
import type { TaskGraph } from '../graph.js';
import type { Store } from '../store/store.js';
import { taskStates, type TaskStateInfo } from '../store/task-state.js';

/** A task fresh under another device class than the one asked for. */
export interface DoneElsewhere {
  /** The class its result is keyed by, e.g. `cuda:sm90` or `cpu`. */
  readonly deviceClass: string;
  /** The class asked for. */
  readonly asked: string;
  /** The `--device` value that shows it on this machine, or why none does (no GPU of that class here). */
  readonly flag: { readonly ok: true; readonly value: 'cpu' | 'cuda' } | { readonly ok: false; readonly why: string };
}

export interface DeviceStates {
  /** The graph placed for the device asked. */
  readonly graph: TaskGraph;
  /** The class of the GPUs tasks are placed on ('cpu' when none is). */
  readonly deviceClass: string;
  readonly states: ReadonlyMap<string, TaskStateInfo>;
  /** By task id: tasks not fresh here whose result exists under another device class. */
  readonly elsewhere: ReadonlyMap<string, DoneElsewhere>;
}

/** The device classes the store's last results and attempts of the graph's tasks were keyed by. */
function recordedClasses(graph: TaskGraph, store: Store): Set<string> {
  const classes = new Set<string>(['cpu']);
  for (const task of graph.tasks) {
    const pointer = store.latest.get(task.id);
    for (const key of [pointer?.lastSuccess, pointer?.lastAttempt]) {
      const device = key === undefined ? undefined : store.tasks.get(key)?.keyParts.device;
      if (typeof device === 'string') classes.add(device);
    }
  }
  return classes;
}

/**
 * The states of `compiled`'s tasks as `cfpipe run --device` would see them, with the results
 * kept under other device classes; or the message of a device this run would refuse.
 */
export async function statesOnDevice(compiled: TaskGraph, root: string, store: Store | undefined, request: DeviceRequest): Promise<DeviceStates | string> {
  const placed = placeDefaultRun(compiled, request);
  if (!placed.ok) return placed.message;
  const asked = placed.gpuDeviceClass;
  const states = await taskStates(placed.graph, { root, gpuDeviceClass: asked, ...(store ? { store } : {}) });
  const elsewhere = new Map<string, DoneElsewhere>();
  const notFresh = [...states.values()].filter((s) => s.state !== 'fresh');
  if (store === undefined || notFresh.length === 0) return { graph: placed.graph, deviceClass: asked, states, elsewhere };

  let machineClass: string | undefined;
  const flagFor = (deviceClass: string): DoneElsewhere['flag'] => {
    if (deviceClass === 'cpu') return { ok: true, value: 'cpu' };
    machineClass ??= gpuDeviceClass(placed.gpus.length > 0 ? placed.gpus : detectGpus());
    if (machineClass === deviceClass) return { ok: true, value: 'cuda' };
    return { ok: false, why: machineClass === 'cpu' ? 'this one has no GPU' : `this one's GPUs are ${machineClass}` };
  };
  for (const deviceClass of recordedClasses(compiled, store)) {
    if (deviceClass === asked) continue;
    const there = await taskStates(placeGraphOnClass(compiled, deviceClass), { root, store, gpuDeviceClass: deviceClass });
    for (const info of notFresh) {
      if (elsewhere.has(info.task.id) || there.get(info.task.id)?.state !== 'fresh') continue;
      elsewhere.set(info.task.id, { deviceClass, asked, flag: flagFor(deviceClass) });
    }
  }
  return { graph: placed.graph, deviceClass: asked, states, elsewhere };
}

/**
 * `done on cuda:sm90, not on cpu (add --device cuda to see it)`, or, when this machine has no
 * GPU of that class, `(--device cuda shows it on a cuda:sm90 machine; this one has no GPU)`.
 */
export function describeElsewhere(done: DoneElsewhere, qualifier = ''): string {
  const how = done.flag.ok ? `add --device ${done.flag.value} to see it` : `--device cuda shows it on a ${done.deviceClass} machine; ${done.flag.why}`;
  return `done on ${done.deviceClass}${qualifier}, not on ${done.asked} (${how})`;
}

/** A task's reason for its state, with where else it is done: alone when it never ran on this device. */
export function reasonWithElsewhere(info: TaskStateInfo, done: DoneElsewhere | undefined): string {
  if (done === undefined) return info.reason;
  if (info.state === 'run' && info.record === undefined) return describeElsewhere(done);
  return `${info.reason}; ${describeElsewhere(done)}`;
}
