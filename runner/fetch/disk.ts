// Free-space checks, so a 300 GB download fails before it starts rather than at 97 %.

import { statfs } from 'node:fs/promises';
import { FetchError } from './errors.js';

export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Throw a disk-full FetchError when `dir`'s file system has less than `needed` bytes free. */
export async function requireFree(dir: string, needed: number): Promise<void> {
  const free = await freeBytes(dir);
  if (free < needed) {
    throw new FetchError('disk-full', `not enough disk space in ${dir}: ${formatBytes(needed)} still to download, ${formatBytes(free)} free. Free some space (or point the work dir elsewhere) and run again`);
  }
}

/** The message for an ENOSPC during a write. */
export async function diskFullError(dir: string, path: string, remaining: number | undefined): Promise<FetchError> {
  let free = '';
  try {
    free = `, ${formatBytes(await freeBytes(dir))} free`;
  } catch {
    // the message is still useful without the figure
  }
  const rest = remaining === undefined ? '' : `, ${formatBytes(remaining)} still to download`;
  return new FetchError('disk-full', `disk full while writing ${path}${free}${rest}. The partial file is kept: free some space and run again to continue`);
}
