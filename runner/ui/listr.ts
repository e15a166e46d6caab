// The terminal interface (stdout is a TTY): one listr2 row per task, with a bar, step/total,
// ETA and the latest metrics while it runs; cached tasks shown as skipped ("cached"). listr2 is
// imported only here, and this module only when a TTY interface is wanted (it costs startup).

import { Listr, type ListrTaskWrapper } from 'listr2';
import { deviceLabel, type EventSink, type PlannedTask, type RunEvent } from '../events.js';
import { bar, eta, formatDuration, formatMetrics } from './format.js';

interface Row {
  readonly planned: PlannedTask;
  wrapper?: ListrTaskWrapper<unknown, never, never>;
  startedAt?: number;
  firstStep?: number;
  settle?: (error?: Error) => void;
  pending: RunEvent[];
}

export interface ListrInterface {
  readonly sink: EventSink;
  /** Resolves once listr2 has drawn the final state. */
  readonly done: () => Promise<void>;
}

export function listrInterface(out: NodeJS.WriteStream): ListrInterface {
  const rows = new Map<string, Row>();
  let running: Promise<unknown> | undefined;
  const barWidth = Math.max(10, Math.min(30, (out.columns ?? 80) - 60));

  const apply = (row: Row, event: RunEvent): void => {
    const t = row.wrapper;
    if (t === undefined) {
      row.pending.push(event);
      return;
    }
    switch (event.type) {
      case 'task-cached':
        t.skip(`${row.planned.id} (cached)`);
        row.settle?.();
        break;
      case 'task-started':
        row.startedAt = event.time;
        t.title = `${row.planned.id}${event.resumeFrom !== undefined ? ` (resumed at step ${event.resumeFrom})` : ''}${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}`;
        t.output = `starting on ${deviceLabel(event)}`;
        break;
      case 'task-progress': {
        row.firstStep ??= event.step;
        const left = eta(row.startedAt ?? event.time, event.time, row.firstStep, event.step, event.total);
        const fraction = event.total > 0 ? event.step / event.total : 0;
        t.output = `${bar(fraction, barWidth)} ${event.step}/${event.total}${left !== undefined ? ` eta ${formatDuration(left)}` : ''} ${formatMetrics(event.metrics)}`.trimEnd();
        break;
      }
      case 'task-checkpoint':
        t.title = `${row.planned.id} (checkpoint at step ${event.step})`;
        break;
      case 'task-finished':
        t.title = `${row.planned.id} ${formatDuration(event.durationMs)}`;
        row.settle?.();
        break;
      case 'task-failed':
        if (!event.willRetry) row.settle?.(new Error(`${row.planned.id}: ${event.message}${event.log ? ` (log: ${event.log})` : ''}`));
        else t.output = `failed, retrying: ${event.message}`;
        break;
      case 'task-interrupted':
        t.skip(`${row.planned.id} stopped${event.step !== undefined ? `, resumable from step ${event.step}` : ''}`);
        row.settle?.();
        break;
      case 'task-skipped':
        t.skip(`${row.planned.id} skipped: ${event.reason}`);
        row.settle?.();
        break;
      default:
        break;
    }
  };

  const sink: EventSink = (event) => {
    if (event.type === 'run-started') {
      const list = new Listr(
        event.tasks.map((planned) => {
          const row: Row = { planned, pending: [] };
          rows.set(planned.id, row);
          return {
            title: planned.willRun ? `${planned.id} (waiting)` : planned.id,
            task: (_ctx: unknown, wrapper: ListrTaskWrapper<unknown, never, never>) =>
              new Promise<void>((resolve, reject) => {
                row.wrapper = wrapper;
                row.settle = (error) => (error ? reject(error) : resolve());
                for (const e of row.pending.splice(0)) apply(row, e);
              }),
          };
        }),
        {
          concurrent: true,
          exitOnError: false,
          registerSignalListeners: false,
          fallbackRendererCondition: false,
          rendererOptions: { collapseErrors: false, outputBar: 1, persistentOutput: false },
        } as never,
      );
      running = list.run().catch(() => undefined);
      return;
    }
    if (event.type === 'run-finished') {
      for (const row of rows.values()) if (row.wrapper === undefined || row.settle) apply(row, { type: 'task-skipped', time: event.time, id: row.planned.id, reason: event.status });
      return;
    }
    if (event.type === 'interrupt') {
      for (const row of rows.values()) if (row.wrapper && row.startedAt !== undefined) row.wrapper.output = event.hard ? 'stopping now' : 'checkpointing, then stopping';
      return;
    }
    if ('id' in event) {
      const row = rows.get(event.id);
      if (row) apply(row, event);
    }
  };
  return {
    sink,
    done: async () => {
      await running;
    },
  };
}
