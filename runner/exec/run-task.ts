// Runs one attempt of one task: prepares its folders, starts the worker (execa, own process
// group), turns the worker's side-channel messages into run events and record updates, and on
// success stores and publishes the outputs and writes the success record — last.

import { createInterface } from 'node:readline';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execaNode } from 'execa';
import type { Task } from '../graph.js';
import type { RunEventPayload } from '../events.js';
import type { EffectiveKey } from '../store/effective-key.js';
import { safeTaskName, workDirFor } from '../store/layout.js';
import { processStart } from '../store/process-identity.js';
import type { TaskRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import { describeError } from './errors.js';
import { EXIT_FAILED, EXIT_INTERRUPTED, type WorkerJob, type WorkerMessage } from './protocol.js';
import { publishOutput, storeOutputs } from './publish.js';

/** How long a worker that reported `finished` may take to exit before it is ended. */
const FINISHED_EXIT_GRACE_MS = 5000;

const workerPath = fileURLToPath(new URL('./worker.js', import.meta.url));

/** What the runner needs of a running worker: its pid (process group) and a way to signal it. */
export interface RunningWorker {
  readonly pid?: number | undefined;
  kill(signal?: NodeJS.Signals): boolean;
}

export type AttemptOutcome =
  | { readonly status: 'done' }
  | { readonly status: 'failed'; readonly message: string }
  | { readonly status: 'interrupted'; readonly step?: number };

export interface AttemptSpec {
  readonly store: Store;
  readonly runId: string;
  readonly task: Task;
  readonly key: EffectiveKey;
  readonly inputs: Readonly<Record<string, readonly string[]>>;
  readonly attempt: number;
  readonly gpuIds: readonly number[];
  readonly previous?: TaskRecord;
  readonly emit: (event: RunEventPayload) => void;
  /** Registers the running worker so the runner can signal it (interrupt, hard stop). */
  readonly onWorker: (worker: RunningWorker | undefined) => void;
  /** True once the run is being stopped: a killed worker then counts as interrupted, not failed. */
  readonly stopping: () => boolean;
}

function putRecord(store: Store, record: TaskRecord): Promise<boolean> {
  return store.tasks.put(record.key, record);
}

export async function runAttempt(spec: AttemptSpec): Promise<AttemptOutcome> {
  const { store, task, key, emit } = spec;
  const layout = store.layout;
  const tmpDir = join(layout.tmp, `${key.key}.${spec.runId}.${spec.attempt}`);
  const workDir = workDirFor(layout, key.key);
  const logDir = join(layout.logs, safeTaskName(task.id));
  const logPath = join(logDir, `${spec.runId}-${spec.attempt}.log`);
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir, { recursive: true });
  mkdirSync(workDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  const outputs = Object.fromEntries(task.outputs.map((o) => [o.name, join(tmpDir, o.name)]));
  // The worker sees only its own GPUs (CUDA_VISIBLE_DEVICES below), so to it a GPU task runs on cuda:0.
  const device = spec.gpuIds.length > 0 ? 'cuda:0' : 'cpu';
  const startedAt = Date.now();
  let record: TaskRecord = {
    key: key.key,
    taskId: task.id,
    stage: task.stage,
    kind: task.kind,
    status: 'running',
    runId: spec.runId,
    attempt: spec.attempt,
    startedAt,
    log: logPath,
    keyParts: key.parts,
    ...(spec.previous?.lastCheckpoint ? { lastCheckpoint: spec.previous.lastCheckpoint } : {}),
  };
  // The running record replaces any old success record of this key before anything is touched.
  const runningWritten = putRecord(store, record);
  void store.latest.put(task.id, { ...store.latest.get(task.id), lastAttempt: key.key });

  const job: WorkerJob = { task, inputs: spec.inputs, outputs, workDir, root: layout.root, device };
  // A task placed on the CPU gets no GPU and the native engine's CPU backend (native/index.ts
  // reads CFPIPE_BACKEND), so `--device cpu` holds even where a CUDA addon is built.
  const env: Record<string, string> = {
    CUDA_VISIBLE_DEVICES: spec.gpuIds.join(','),
    ...(spec.gpuIds.length === 0 ? { CFPIPE_BACKEND: 'cpu' } : {}),
    // Every task is a fresh Node process: V8's on-disk compile cache (the directory the CLI's
    // module.enableCompileCache() uses) spares each worker recompiling the kind and execa,
    // about a quarter of a small task's cost. NODE_DISABLE_COMPILE_CACHE=1 still turns it off.
    ...(process.env.NODE_COMPILE_CACHE === undefined ? { NODE_COMPILE_CACHE: join(tmpdir(), 'node-compile-cache') } : {}),
  };
  // The log file is the worker's own stdout/stderr (a raw fd, not piped through us), so its
  // log survives a runner that dies.
  const logFd = openSync(logPath, 'a');
  const worker = execaNode(workerPath, [], {
    input: JSON.stringify(job),
    // execa passes integer fds straight to spawn; its types only list streams and pipes.
    stdio: ['pipe', logFd, logFd, 'pipe'] as unknown as ['pipe', 'pipe', 'pipe', 'pipe'],
    detached: true,
    reject: false,
    env,
    cleanup: true,
    forceKillAfterDelay: false,
  });
  closeSync(logFd);
  spec.onWorker(worker);
  emit({ type: 'task-started', id: task.id, attempt: spec.attempt, ...(spec.previous?.lastCheckpoint ? { resumeFrom: spec.previous.lastCheckpoint.step } : {}), device: spec.gpuIds.length > 0 ? 'cuda' : 'cpu', ...(spec.gpuIds.length > 0 ? { gpus: spec.gpuIds } : {}), log: logPath });

  let failure: string | undefined;
  let reportedFinished = false;
  let killedAfterFinish = false;
  let exitGrace: NodeJS.Timeout | undefined;
  const channel = worker.stdio[3];
  const lines = channel ? createInterface({ input: channel as NodeJS.ReadableStream, crlfDelay: Infinity }) : undefined;
  const reading = (async () => {
    if (!lines) return;
    for await (const line of lines) {
      let message: WorkerMessage;
      try {
        message = JSON.parse(line) as WorkerMessage;
      } catch {
        continue;
      }
      switch (message.t) {
        case 'started':
          record = { ...record, worker: { pid: message.pid, started: processStart(message.pid) ?? 'unknown' } };
          void putRecord(store, record);
          break;
        case 'progress':
          emit({ type: 'task-progress', id: task.id, step: message.step, total: message.total, ...(message.metrics ? { metrics: message.metrics } : {}) });
          break;
        case 'checkpoint':
          record = { ...record, lastCheckpoint: { step: message.step, path: message.path, at: Date.now() } };
          void putRecord(store, record);
          emit({ type: 'task-checkpoint', id: task.id, step: message.step, path: message.path });
          break;
        case 'failed':
          failure = message.message;
          break;
        case 'finished':
          // The kind's outputs are complete. A worker that then hangs in Node's own shutdown
          // (a known deadlock with V8's background compile threads, seen after native GPU work)
          // is ended after a grace period, and its task still counts as done.
          reportedFinished = true;
          exitGrace = setTimeout(() => {
            killedAfterFinish = true;
            try {
              if (worker.pid !== undefined) process.kill(-worker.pid, 'SIGKILL');
            } catch {
              // It exited meanwhile.
            }
          }, FINISHED_EXIT_GRACE_MS);
          break;
        case 'interrupted':
          break;
      }
    }
  })();
  const result = await worker;
  await reading;
  clearTimeout(exitGrace);
  spec.onWorker(undefined);
  // Whatever the worker left in its group (commands it started) ends with it.
  try {
    if (worker.pid !== undefined) process.kill(-worker.pid, 'SIGKILL');
  } catch {
    // The group is already empty.
  }
  await runningWritten;
  const finishedAt = Date.now();
  const { worker: _worker, ...settled } = record;

  let outcome: AttemptOutcome;
  if ((result.exitCode === 0 && !result.signal) || (reportedFinished && killedAfterFinish)) {
    try {
      const outputRecords = await storeOutputs(store, task, key.key, tmpDir);
      for (const output of task.outputs) {
        const out = outputRecords[output.name]!;
        if (output.publish !== undefined) await publishOutput(store, key.key, output.name, output.publish);
        emit({ type: 'task-output', id: task.id, output: output.name, digest: out.digest, size: out.size, ...(output.publish !== undefined ? { publish: output.publish } : {}) });
      }
      const { lastCheckpoint: _c, ...rest } = settled;
      await putRecord(store, { ...rest, status: 'done', finishedAt, durationMs: finishedAt - startedAt, outputs: outputRecords });
      await store.latest.put(task.id, { ...store.latest.get(task.id), lastSuccess: key.key, lastAttempt: key.key });
      await store.env.flushed;
      rmSync(workDir, { recursive: true, force: true });
      emit({ type: 'task-finished', id: task.id, durationMs: finishedAt - startedAt });
      return { status: 'done' };
    } catch (error) {
      outcome = { status: 'failed', message: `publishing outputs failed: ${describeError(error)}` };
    }
  } else if (result.exitCode === EXIT_INTERRUPTED || (result.signal && spec.stopping())) {
    outcome = record.lastCheckpoint ? { status: 'interrupted', step: record.lastCheckpoint.step } : { status: 'interrupted' };
  } else if (result.exitCode === EXIT_FAILED) {
    outcome = { status: 'failed', message: failure ?? 'the stage failed (see its log)' };
  } else if (result.signal) {
    outcome = { status: 'failed', message: `the worker was killed by ${result.signal}` };
  } else {
    outcome = { status: 'failed', message: `the worker crashed (exit code ${result.exitCode ?? '?'})${failure ? `: ${failure}` : ''}` };
  }
  rmSync(tmpDir, { recursive: true, force: true });
  await putRecord(store, {
    ...settled,
    status: outcome.status === 'interrupted' ? 'interrupted' : 'failed',
    finishedAt,
    durationMs: finishedAt - startedAt,
    ...(outcome.status === 'failed' ? { error: outcome.message } : {}),
  });
  return outcome;
}
