// The records kept in the state store. All are plain objects (msgpack-encoded by lmdb).

import type { Value } from '../graph.js';

export type TaskStatus = 'running' | 'done' | 'failed' | 'interrupted';

export interface OutputRecord {
  /** `sha256:<hex>` of the file, or of the tree for a directory. */
  readonly digest: string;
  readonly size: number;
  /** Where the runner published it, if the stage publishes it. */
  readonly publish?: string;
}

export interface TaskRecord {
  /** The effective cache key (the record's own key in the `tasks` database). */
  readonly key: string;
  readonly taskId: string;
  readonly stage: string;
  readonly kind: string;
  readonly status: TaskStatus;
  readonly runId: string;
  readonly attempt: number;
  readonly startedAt: number;
  readonly finishedAt?: number;
  readonly durationMs?: number;
  readonly outputs?: { readonly [name: string]: OutputRecord };
  readonly lastCheckpoint?: { readonly step: number; readonly path: string; readonly at: number };
  /** Worker process while running, so a later runner can stop an orphan. */
  readonly worker?: { readonly pid: number; readonly started: string };
  readonly log?: string;
  readonly error?: string;
  /** The parts the key was computed from (compiler parts plus input digests and device), for `explain`. */
  readonly keyParts: { readonly [part: string]: Value };
}

/** taskId → the keys of its last success and last attempt (drives `explain`, `status`, `gc`). */
export interface TaskPointer {
  readonly lastSuccess?: string;
  readonly lastAttempt?: string;
  readonly pipeline?: string;
}

export interface RunRecord {
  readonly id: string;
  readonly pipeline: string;
  readonly file: string;
  readonly pid: number;
  readonly host: string;
  readonly startedAt: number;
  readonly finishedAt?: number;
  readonly status: 'running' | 'ok' | 'failed' | 'interrupted';
  readonly counts?: { readonly [state: string]: number };
  /** The run's --set/--params/--use/--device, so `explain STAGE` without a FILE reads the graph as this run did. */
  readonly graphOptions?: RecordedGraphOptions;
}

/** The command-line options that shape a run's graph and keys (--params paths made absolute). */
export interface RecordedGraphOptions {
  readonly set?: readonly string[];
  readonly params?: readonly string[];
  readonly use?: readonly string[];
  readonly device?: string;
}

export interface MemoRecord {
  readonly size: number;
  /** mtime in nanoseconds, as a decimal string (bigint does not survive msgpack cleanly). */
  readonly mtimeNs: string;
  readonly digest: string;
}

export interface LockRecord {
  readonly pid: number;
  readonly host: string;
  /** Process start time (from /proc), so a reused pid is not mistaken for the holder. */
  readonly procStart: string;
  readonly bootId: string;
  readonly since: number;
  readonly command: string;
}
