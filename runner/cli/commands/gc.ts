// `cfpipe gc [--dry-run]`: drop what no task points at any more — artifacts that are not the
// last success of their task, work dirs (checkpoints) of keys that are not the last attempt
// of their task, leftover temporary outputs, and logs of older attempts — and report the
// bytes freed. Holds the run lock, so it never races a run.

import { existsSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { acquireLock, describeHolder, releaseLock } from '../../store/lock.js';
import { openStore, StoreError } from '../../store/store.js';
import { formatBytes } from '../../ui/format.js';
import type { CliIO } from '../io.js';
import { errorLine, projectRoot } from './runner-common.js';

export const summary = 'delete unreferenced artifacts, work dirs and logs; report bytes freed';
export const help = 'usage: cfpipe gc [--dry-run]\n';

function sizeOf(path: string): number {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of readdirSync(path)) total += sizeOf(join(path, name));
  return total;
}

export interface GcReport {
  readonly removed: readonly string[];
  readonly bytes: number;
}

export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { 'dry-run': { type: 'boolean', default: false } } });
  } catch (error) {
    errorLine(io, (error as Error).message);
    return 2;
  }
  const dryRun = parsed.values['dry-run'];
  let store;
  try {
    store = openStore(projectRoot(), { existingOnly: true });
  } catch (error) {
    if (error instanceof StoreError) {
      errorLine(io, error.message);
      return 2;
    }
    throw error;
  }
  if (store === undefined) {
    io.stdout('nothing to collect: no cfpipe state here\n');
    return 0;
  }
  const lock = await acquireLock(store, 'cfpipe gc', 0);
  if (!lock.ok) {
    errorLine(io, `a run is in progress: ${describeHolder(lock.holder)}; try again after it`);
    return 3;
  }
  try {
    const successes = new Set<string>();
    const attempts = new Set<string>();
    const logs = new Set<string>();
    for (const { value } of store.latest.getRange()) {
      if (value.lastSuccess) successes.add(value.lastSuccess);
      if (value.lastAttempt) {
        attempts.add(value.lastAttempt);
        const log = store.tasks.get(value.lastAttempt)?.log;
        if (log) logs.add(log);
      }
      if (value.lastSuccess) {
        const log = store.tasks.get(value.lastSuccess)?.log;
        if (log) logs.add(log);
      }
    }
    const victims: string[] = [];
    const dropRecords: string[] = [];
    const { layout } = store;
    const list = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);
    for (const key of list(layout.artifacts)) {
      if (!successes.has(key)) {
        victims.push(join(layout.artifacts, key));
        dropRecords.push(key);
      }
    }
    for (const key of list(layout.work)) {
      const record = store.tasks.get(key);
      if (!attempts.has(key) || record?.status === 'done') victims.push(join(layout.work, key));
    }
    for (const name of list(layout.tmp)) victims.push(join(layout.tmp, name));
    for (const task of list(layout.logs)) for (const f of list(join(layout.logs, task))) if (!logs.has(join(layout.logs, task, f))) victims.push(join(layout.logs, task, f));
    let bytes = 0;
    for (const path of victims) {
      bytes += sizeOf(path);
      if (!dryRun) rmSync(path, { recursive: true, force: true });
    }
    if (!dryRun) {
      for (const key of dropRecords) if (store.tasks.get(key)?.status === 'done') await store.tasks.remove(key);
      await store.env.flushed;
    }
    io.stdout(`${dryRun ? 'would free' : 'freed'} ${formatBytes(bytes)} (${victims.length} item${victims.length === 1 ? '' : 's'})\n`);
    return 0;
  } finally {
    releaseLock(store);
  }
}
