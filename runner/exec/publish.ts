// Crash-safe publishing of a finished task's outputs (the wireit order, plus fsync):
//   1. every output was written under .cfpipe/tmp/<key>.<run>/ by the worker;
//   2. each is hashed and fsynced in one pass, then the tmp folder is renamed to
//      .cfpipe/artifacts/<key> and the parent fsynced;
//   3. `publish` copies are made under a temporary name (hard link when possible, copy
//      otherwise) and renamed into place;
//   4. only then does the caller write the success record.
// A crash anywhere before 4 leaves no success record, so the task simply runs again.

import { cpSync, existsSync, linkSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Task } from '../graph.js';
import { syncDir } from '../kinds/checkpoints.js';
import { digestPath } from '../store/digest.js';
import { resolveInputPath } from '../store/effective-key.js';
import { artifactDir } from '../store/layout.js';
import type { OutputRecord } from '../store/records.js';
import type { Store } from '../store/store.js';

export class PublishError extends Error {
  override readonly name = 'PublishError';
}

/** Moves the finished outputs into the content store; returns their records. */
export async function storeOutputs(store: Store, task: Task, key: string, tmpDir: string): Promise<Record<string, OutputRecord>> {
  const records: Record<string, OutputRecord> = {};
  for (const output of task.outputs) {
    const path = join(tmpDir, output.name);
    if (!existsSync(path)) throw new PublishError(`stage kind \`${task.kind}\` finished without writing output \`${output.name}\``);
    const { digest, size } = await digestPath(store, path, true);
    records[output.name] = output.publish !== undefined ? { digest, size, publish: output.publish } : { digest, size };
  }
  await syncDir(tmpDir);
  const final = artifactDir(store.layout, key);
  rmSync(final, { recursive: true, force: true });
  mkdirSync(dirname(final), { recursive: true });
  renameSync(tmpDir, final);
  await syncDir(dirname(final));
  // The rename kept inodes, so the memo entries made while hashing still hold.
  return records;
}

/** Copies (hard-links where possible) one stored output to its publish path, atomically. */
export async function publishOutput(store: Store, key: string, name: string, publishPath: string): Promise<void> {
  const source = join(artifactDir(store.layout, key), name);
  const target = resolveInputPath(store.layout.root, publishPath);
  mkdirSync(dirname(target), { recursive: true });
  const temp = `${target}.cfpipe-tmp-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  try {
    if (statSync(source).isDirectory()) cpSync(source, temp, { recursive: true });
    else {
      try {
        linkSync(source, temp);
      } catch {
        cpSync(source, temp);
      }
    }
    rmSync(target, { recursive: true, force: true });
    renameSync(temp, target);
    await syncDir(dirname(target));
  } catch (error) {
    rmSync(temp, { recursive: true, force: true });
    throw error;
  }
}
