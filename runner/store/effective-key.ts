// The effective cache key of each task: the compiler's static key (kind, engine version,
// semantic config, params, chained over upstream static keys) extended with what only the
// runner can know before running — the content digests of provided files (`path` inputs,
// through the digest memo) and, for kinds whose numerics depend on it, the device class —
// chained again over the upstream effective keys, so a changed provided file re-keys every
// task downstream of it.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Task, TaskGraph, Value } from '../graph.js';
import { canonicalJson, sha256Hex } from './canonical.js';
import { digestPath, hashFile } from './digest.js';
import type { Store } from './store.js';

/** Kinds whose results differ between CPU and a CUDA architecture (floating-point order). */
export const DEVICE_SENSITIVE_KINDS: ReadonlySet<string> = new Set(['train', 'ode_pairs', 'infer', 'synth', 'eval']);

/** Bumped when the way keys are extended changes, so old records are not mistaken for fresh. */
export const RUNNER_KEY_VERSION = 1;

export interface EffectiveKey {
  readonly key: string;
  /** Everything the key covers, flattened later by `explain`. */
  readonly parts: { readonly [part: string]: Value };
}

export interface KeyOptions {
  readonly root: string;
  /** The device class a task with gpus > 0 would run on ('cpu' when no GPU). */
  readonly gpuDeviceClass: string;
  readonly store?: Store;
}

export const resolveInputPath = (root: string, path: string): string => (isAbsolute(path) ? path : resolve(root, path));

async function digestProvided(options: KeyOptions, path: string): Promise<string> {
  const full = resolveInputPath(options.root, path);
  if (!existsSync(full)) return 'missing';
  if (options.store) return (await digestPath(options.store, full)).digest;
  return hashFileOrTree(full);
}

async function hashFileOrTree(path: string): Promise<string> {
  // Without a store (plan on a fresh project) there is no memo; hash directly.
  if (!statSync(path).isDirectory()) return hashFile(path);
  const parts: string[] = [];
  for (const name of readdirSync(path).sort()) parts.push(`${name}\0${await hashFileOrTree(resolve(path, name))}\n`);
  return `sha256:${sha256Hex('tree\0' + parts.join(''))}`;
}

export function deviceClassOf(task: Task, options: KeyOptions): string | undefined {
  if (!DEVICE_SENSITIVE_KINDS.has(task.kind)) return undefined;
  return task.resources.gpus > 0 ? options.gpuDeviceClass : 'cpu';
}

/** Effective keys for every task of the graph (tasks are in topological order). */
export async function effectiveKeys(graph: TaskGraph, options: KeyOptions): Promise<Map<string, EffectiveKey>> {
  const keys = new Map<string, EffectiveKey>();
  for (const task of graph.tasks) {
    const provided: Record<string, Value> = {};
    const upstream: Record<string, Value> = {};
    for (const input of task.inputs) {
      for (const source of input.sources) {
        if (source.kind === 'path') {
          const list = (provided[input.name] ??= []) as Value[];
          list.push(await digestProvided(options, source.path));
        } else {
          const dep = keys.get(source.task);
          if (dep === undefined) throw new Error(`task graph is not in topological order: ${task.id} before ${source.task}`);
          upstream[`${input.name}${input.fanIn ? `[${source.task}]` : ''}`] = dep.key;
        }
      }
    }
    const device = deviceClassOf(task, options);
    const parts: Record<string, Value> = { ...task.keyParts, runner: RUNNER_KEY_VERSION, upstream };
    if (Object.keys(provided).length > 0) parts.provided = provided;
    if (device !== undefined) parts.device = device;
    keys.set(task.id, { key: sha256Hex(`${task.key}\n${canonicalJson({ provided, upstream, device: device ?? null, runner: RUNNER_KEY_VERSION })}`), parts });
  }
  return keys;
}
