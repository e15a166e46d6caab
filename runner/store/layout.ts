// Where cfpipe keeps its state under a project root. Everything lives in `.cfpipe/`:
//   state/          the LMDB environment (task records, run history, digest memo, lock)
//   artifacts/KEY/  finished outputs of the task with cache key KEY (the content store)
//   work/KEY/       checkpoints of a resumable task, kept across failures until it succeeds
//   tmp/            outputs being written; renamed into artifacts/ only after success
//   logs/TASK/      one log file per attempt

import { join } from 'node:path';

export interface StoreLayout {
  readonly root: string;
  readonly dir: string;
  readonly state: string;
  readonly artifacts: string;
  readonly work: string;
  readonly tmp: string;
  readonly logs: string;
}

export function storeLayout(root: string): StoreLayout {
  const dir = join(root, '.cfpipe');
  return {
    root,
    dir,
    state: join(dir, 'state'),
    artifacts: join(dir, 'artifacts'),
    work: join(dir, 'work'),
    tmp: join(dir, 'tmp'),
    logs: join(dir, 'logs'),
  };
}

/** A task id made safe as one path component (`ode[2]` → `ode_2_`). */
export const safeTaskName = (taskId: string): string => taskId.replace(/[^A-Za-z0-9_.-]/g, '_');

export const artifactDir = (layout: StoreLayout, key: string): string => join(layout.artifacts, key);
export const workDirFor = (layout: StoreLayout, key: string): string => join(layout.work, key);
