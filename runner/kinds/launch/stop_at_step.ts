// Stopping a trainer that never stops. Upstream's trainers loop forever (`while True`) and save
// `<logdir>/checkpoint_model_{step:06d}/model.pt` every `log_iters` steps (spec §1.5, §6.2), so
// cfpipe watches the log dir for the checkpoint of the configured step, waits until that file is
// complete, then ends the job: SIGTERM to the launched process and every descendant (torchrun and
// its ranks), SIGKILL to whatever is left after a grace period.
//
// "Complete" means: the size has not changed for `settleMs`, and no process of the job still has
// the file open (read from /proc/<pid>/fd on Linux). torch.save writes model.pt in place, so a
// file that merely exists may be half written.

import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface StopWhen {
  /** The trainer's log dir (upstream `--logdir`), where checkpoint_model_NNNNNN/ folders appear. */
  readonly checkpointDir: string;
  /** Stop at the first checkpoint whose step is at least this (upstream saves every log_iters). */
  readonly step: number;
  /** How long the file's size must stay unchanged (default 2000 ms). */
  readonly settleMs: number;
  /** Seconds between SIGTERM and SIGKILL (default 30). */
  readonly graceS: number;
  /** Milliseconds between looks at the log dir (default 500). */
  readonly pollMs: number;
}

export const checkpointName = (step: number): string => `checkpoint_model_${String(step).padStart(6, '0')}`;

/** The checkpoints present in a log dir, by step, ascending. */
export function listCheckpoints(dir: string): { step: number; path: string }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: { step: number; path: string }[] = [];
  for (const name of names) {
    const m = /^checkpoint_model_(\d+)$/.exec(name);
    if (m) found.push({ step: Number(m[1]), path: join(dir, name, 'model.pt') });
  }
  return found.sort((a, b) => a.step - b.step);
}

/** The first checkpoint at or past `step` whose model.pt exists, if any. */
export function reachedCheckpoint(dir: string, step: number): { step: number; path: string } | undefined {
  return listCheckpoints(dir).find((c) => c.step >= step && fileSize(c.path) !== undefined);
}

function fileSize(path: string): number | undefined {
  try {
    const s = statSync(path);
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}

/** Parent pid of every process, from /proc/<pid>/stat (empty where /proc is not there). */
function parentTable(): Map<number, number> {
  const table = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return table;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // The command name (field 2) is in parentheses and may hold spaces: read after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const state = rest[0];
      if (state === 'Z' || state === 'X') continue; // exited, waiting to be reaped
      table.set(Number(entry), Number(rest[1]));
    } catch {
      // the process ended while we looked
    }
  }
  return table;
}

/** Every process id in /proc (empty where there is none). */
export function allPids(): number[] {
  try {
    return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
  } catch {
    return [];
  }
}

/** `pid` and all its living descendants (only `pid` itself where /proc is not available). */
export function processTree(pid: number): number[] {
  const parents = parentTable();
  if (parents.size === 0) return [pid];
  const tree = new Set<number>(parents.has(pid) ? [pid] : []);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [child, parent] of parents) {
      if (!tree.has(child) && tree.has(parent)) {
        tree.add(child);
        grew = true;
      }
    }
  }
  return [...tree];
}

/** Whether any of `pids` has `file` open (Linux /proc; false where it cannot be known). */
export function openByAny(pids: readonly number[], file: string): boolean {
  const target = resolve(file);
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return true;
      } catch {
        // closed meanwhile
      }
    }
  }
  return false;
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((done) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      done();
    }, { once: true });
  });

/**
 * Ends the job rooted at `pid`: SIGTERM to the whole tree (children first seen, so torchrun's
 * agent and its ranks all get it), then SIGKILL to what is still alive after `graceS`.
 * Resolves once nothing of the tree is left (or after the SIGKILL round).
 */
export async function endProcessTree(pid: number, graceS: number, exited: () => boolean): Promise<{ killed: boolean }> {
  const tree = processTree(pid);
  signalAll(tree, 'SIGTERM');
  const deadline = Date.now() + graceS * 1000;
  while (Date.now() < deadline) {
    const alive = tree.filter((p) => processTree(p).includes(p));
    if (alive.length === 0 && exited()) return { killed: false };
    await sleep(100);
  }
  // Anything started meanwhile under the root is included too.
  signalAll([...new Set([...tree, ...processTree(pid)])], 'SIGKILL');
  return { killed: true };
}

/**
 * Waits until the checkpoint of `stop.step` (or a later one) is complete in `stop.checkpointDir`,
 * while the job rooted at `pid` runs. Resolves with it, or with undefined if the job ended first
 * (`exited()` true) or `signal` was aborted.
 */
export async function waitForCheckpoint(
  stop: StopWhen,
  pid: number | undefined,
  exited: () => boolean,
  signal?: AbortSignal,
  onSeen?: (step: number, path: string) => void,
): Promise<{ step: number; path: string; bytes: number } | undefined> {
  let seen: { step: number; path: string; size: number; since: number } | undefined;
  for (;;) {
    if (signal?.aborted) return undefined;
    const hit = reachedCheckpoint(stop.checkpointDir, stop.step);
    if (hit !== undefined) {
      const size = fileSize(hit.path) ?? -1;
      const now = Date.now();
      if (seen === undefined || seen.path !== hit.path || seen.size !== size) {
        if (seen?.path !== hit.path) onSeen?.(hit.step, hit.path);
        seen = { ...hit, size, since: now };
      } else if (now - seen.since >= stop.settleMs && size > 0) {
        // Any process, not only the job's tree: launch wrappers (pyenv shims, srun) may re-parent
        // the writer away from the process cfpipe started.
        const open = openByAny(allPids(), hit.path);
        // Re-read the size after the open check: the writer may have added its last bytes and
        // closed the file between the two, and the size seen before would then be stale.
        if (!open && fileSize(hit.path) === size) return { step: hit.step, path: hit.path, bytes: size };
      }
    } else if (exited()) {
      return undefined;
    }
    if (hit === undefined && exited()) return undefined;
    await sleep(stop.pollMs, signal);
  }
}
