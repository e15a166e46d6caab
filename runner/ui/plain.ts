// The line renderer for logs and CI (stdout not a TTY): one line per thing that happened, no
// cursor movement, progress only at each 10% and at most every 10 s per task, checkpoints at
// most every 10 s per task.

import { deviceLabel, type EventSink, type RunEvent } from '../events.js';
import { eta, fit, formatBytes, formatDuration, formatMetrics } from './format.js';

export interface PlainOptions {
  readonly width: number;
  /** Leave out durations (for stable snapshots). */
  readonly noTimes?: boolean;
}

interface TaskProgress {
  startedAt: number;
  firstStep: number | undefined;
  lastDecile: number;
  lastPrinted: number;
  lastCheckpointPrinted: number;
}

export function plainSink(out: NodeJS.WritableStream, options: PlainOptions): EventSink {
  const progress = new Map<string, TaskProgress>();
  let total = 0;
  let nameWidth = 8;
  const time = (ms: number): string => (options.noTimes ? '' : ` ${formatDuration(ms)}`);
  const line = (verb: string, id: string, rest = ''): void => {
    out.write(fit(`${verb.padEnd(9)} ${id.padEnd(nameWidth)}${rest ? ` ${rest}` : ''}`.trimEnd(), options.width) + '\n');
  };
  return (event: RunEvent) => {
    switch (event.type) {
      case 'run-started': {
        total = event.tasks.length;
        nameWidth = Math.min(24, Math.max(8, ...event.tasks.map((t) => t.id.length)));
        const toRun = event.tasks.filter((t) => t.willRun).length;
        out.write(fit(`cfpipe run ${event.pipeline}: ${total} task${total === 1 ? '' : 's'}, ${total - toRun} cached, ${toRun} to run`, options.width) + '\n');
        // A dry run lists every task with its state and reason; a real run names only resumptions.
        if (event.runId === 'dry-run') for (const t of event.tasks) line(t.state, t.id, t.reason);
        else for (const t of event.tasks) if (t.willRun && t.state === 'resumable') line('resume', t.id, t.reason);
        break;
      }
      case 'lock-wait':
        out.write(fit(`waiting for the store lock held by ${event.holder}`, options.width) + '\n');
        break;
      case 'task-cached':
        line('cached', event.id);
        break;
      case 'task-started':
        progress.set(event.id, { startedAt: event.time, firstStep: undefined, lastDecile: -1, lastPrinted: 0, lastCheckpointPrinted: 0 });
        line('start', event.id, `${event.attempt > 1 ? `attempt ${event.attempt} ` : ''}${event.resumeFrom !== undefined ? `from step ${event.resumeFrom} ` : ''}on ${deviceLabel(event)}`);
        break;
      case 'task-progress': {
        const p = progress.get(event.id);
        if (p === undefined || event.total <= 0) break;
        p.firstStep ??= event.step;
        const decile = Math.floor((event.step / event.total) * 10);
        if (decile <= p.lastDecile && event.time - p.lastPrinted < 10_000) break;
        p.lastDecile = decile;
        p.lastPrinted = event.time;
        const left = eta(p.startedAt, event.time, p.firstStep, event.step, event.total);
        const pct = `${Math.floor((event.step / event.total) * 100)}%`.padStart(4);
        line('progress', event.id, `${event.step}/${event.total} ${pct}${left !== undefined && !options.noTimes ? ` eta ${formatDuration(left)}` : ''} ${formatMetrics(event.metrics)}`.trimEnd());
        break;
      }
      case 'task-checkpoint': {
        // The first checkpoint, then at most one line per 10 s per task (frequent checkpoints would flood CI logs).
        const p = progress.get(event.id);
        if (p !== undefined && p.lastCheckpointPrinted !== 0 && event.time - p.lastCheckpointPrinted < 10_000) break;
        if (p !== undefined) p.lastCheckpointPrinted = event.time;
        line('ckpt', event.id, `step ${event.step}`);
        break;
      }
      case 'task-output':
        line('output', event.id, `${event.output} ${formatBytes(event.size)}${event.publish ? ` → ${event.publish}` : ''}`);
        break;
      case 'task-finished':
        line('done', event.id, time(event.durationMs).trim());
        break;
      case 'task-failed':
        line(event.willRetry ? 'retry' : 'FAILED', event.id, `${event.message}${event.log ? ` (log: ${event.log})` : ''}`);
        break;
      case 'task-interrupted':
        line('stopped', event.id, event.step !== undefined ? `resumable from step ${event.step}` : 'resumable');
        break;
      case 'task-skipped':
        line('skipped', event.id, event.reason);
        break;
      case 'interrupt':
        out.write(event.hard ? 'interrupt again: stopping every task now\n' : 'interrupt: asking every task to checkpoint and stop (again to stop now)\n');
        break;
      case 'run-finished': {
        const parts = Object.entries(event.counts).map(([k, v]) => `${v} ${k}`);
        out.write(fit(`${event.status === 'ok' ? 'finished' : event.status}: ${parts.join(', ') || 'nothing to do'}${time(event.durationMs)}`, options.width) + '\n');
        break;
      }
    }
  };
}
