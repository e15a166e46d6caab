// The one typed event stream of a run. The scheduler and task runner emit these; the interfaces
// (listr2, plain lines, --json) and the run history only consume them.

import type { TaskState } from './store/task-state.js';

export interface PlannedTask {
  readonly id: string;
  readonly stage: string;
  readonly kind: string;
  readonly key: string;
  readonly state: TaskState;
  readonly reason: string;
  /** Whether this run will execute it (selected and not fresh). */
  readonly willRun: boolean;
}

export type RunEvent =
  | { readonly type: 'run-started'; readonly time: number; readonly runId: string; readonly pipeline: string; readonly tasks: readonly PlannedTask[] }
  | { readonly type: 'lock-wait'; readonly time: number; readonly holder: string }
  | { readonly type: 'task-cached'; readonly time: number; readonly id: string }
  | { readonly type: 'task-started'; readonly time: number; readonly id: string; readonly attempt: number; readonly resumeFrom?: number; readonly device: 'cpu' | 'cuda'; readonly gpus?: readonly number[]; readonly log: string }
  | { readonly type: 'task-progress'; readonly time: number; readonly id: string; readonly step: number; readonly total: number; readonly metrics?: Readonly<Record<string, number>> }
  | { readonly type: 'task-checkpoint'; readonly time: number; readonly id: string; readonly step: number; readonly path: string }
  | { readonly type: 'task-output'; readonly time: number; readonly id: string; readonly output: string; readonly digest: string; readonly size: number; readonly publish?: string }
  | { readonly type: 'task-finished'; readonly time: number; readonly id: string; readonly durationMs: number }
  | { readonly type: 'task-failed'; readonly time: number; readonly id: string; readonly message: string; readonly willRetry: boolean; readonly log?: string }
  | { readonly type: 'task-interrupted'; readonly time: number; readonly id: string; readonly step?: number }
  | { readonly type: 'task-skipped'; readonly time: number; readonly id: string; readonly reason: string }
  | { readonly type: 'interrupt'; readonly time: number; readonly hard: boolean }
  | { readonly type: 'run-finished'; readonly time: number; readonly runId: string; readonly status: 'ok' | 'failed' | 'interrupted'; readonly counts: Readonly<Record<string, number>>; readonly durationMs: number };

export type RunEventType = RunEvent['type'];

/** Distributes `Omit<RunEvent, 'time'>`-like payloads to sinks; the time is added here. */
export type EventSink = (event: RunEvent) => void;

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
export type RunEventPayload = DistributiveOmit<RunEvent, 'time'>;

export function eventEmitter(sinks: readonly EventSink[]): (payload: RunEventPayload) => void {
  return (payload) => {
    const event = { ...payload, time: Date.now() } as RunEvent;
    for (const sink of sinks) sink(event);
  };
}

/** Where a started task runs, as the UIs print it: `cpu`, `cuda (GPU 1)`, `cuda (GPUs 0,1)`. */
export function deviceLabel(event: Extract<RunEvent, { type: 'task-started' }>): string {
  const gpus = event.gpus ?? [];
  if (event.device === 'cpu' || gpus.length === 0) return event.device;
  return `cuda (GPU${gpus.length > 1 ? 's' : ''} ${gpus.join(',')})`;
}
