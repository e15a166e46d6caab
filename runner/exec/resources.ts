// What the machine offers: CPU cores and GPUs by id. GPUs are looked up only when a selected
// task asks for one, so runs that need none never start nvidia-smi.

import { availableParallelism } from 'node:os';
import { execFileSync } from 'node:child_process';

export const detectCpus = (): number => availableParallelism();

/** GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else the `GPU N:` lines of `nvidia-smi -L`. */
export function detectGpus(): number[] {
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) {
    return visible.split(',').map((s) => s.trim()).filter((s) => /^\d+$/.test(s)).map(Number);
  }
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    return [...out.matchAll(/^GPU (\d+):/gm)].map((m) => Number(m[1]));
  } catch {
    return [];
  }
}

/** 'cuda:sm90' for the first GPU, or 'cpu' when there is none (the class that changes numerics). */
export function gpuDeviceClass(gpus: readonly number[]): string {
  if (gpus.length === 0) return 'cpu';
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=compute_cap', '--format=csv,noheader', `--id=${gpus[0]}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const cap = out.trim().split('\n')[0]?.replace('.', '');
    return cap ? `cuda:sm${cap}` : 'cuda';
  } catch {
    return 'cuda';
  }
}
