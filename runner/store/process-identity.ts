// Who a process is, in a way that survives pid reuse and reboots: pid + start time (field 22
// of /proc/PID/stat) + the kernel boot id. Used by the store lock and to find orphan workers.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

let bootIdCache: string | undefined;

export function bootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = 'unknown';
    }
  }
  return bootIdCache;
}

/** The start time of `pid` in clock ticks since boot, or undefined when no such process exists. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parens: split after its closing paren.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

export const thisHost = (): string => hostname();

/** Whether the process identified by (pid, start, boot, host) is still running here. */
export function isAlive(id: { pid: number; procStart: string; bootId: string; host: string }): boolean {
  // Another host cannot be checked from here: assume it runs (the store is on local disk, so
  // this only happens when the host name changed). Another boot means it is gone.
  if (id.host !== thisHost()) return true;
  if (id.bootId !== bootId()) return false;
  const start = processStart(id.pid);
  if (start === undefined) return false;
  // Without /proc we cannot compare start times; fall back to "a process with this pid exists".
  return id.procStart === 'unknown' || start === id.procStart;
}
