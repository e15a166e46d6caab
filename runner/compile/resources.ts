// Resource values of a stage (cpus, gpus, memory, retries) and the machine's GPU count.

import { spawnSync } from 'node:child_process';
import type { Value } from '../graph.js';

const UNITS: Readonly<Record<string, number>> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30, ti: 2 ** 40, tib: 2 ** 40,
};

/** Bytes from `8GiB`, `512 MB`, `2g` or a plain number; undefined when it is none of those. */
export function parseMemory(value: Value): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  if (!match) return undefined;
  const unit = UNITS[(match[2] ?? '').toLowerCase()];
  return unit === undefined ? undefined : Math.round(Number(match[1]) * unit);
}

let detected: number | undefined;

/** GPUs on this machine: the lines of `nvidia-smi -L` (0 when it is absent or fails). Run once. */
export function detectGpus(): number {
  if (detected !== undefined) return detected;
  try {
    const result = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10_000 });
    detected = result.status === 0 ? result.stdout.split('\n').filter((l) => /^GPU \d+/.test(l)).length : 0;
  } catch {
    detected = 0;
  }
  return detected;
}
