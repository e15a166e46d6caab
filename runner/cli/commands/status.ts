// `cfpipe status [FILE]`: with a pipeline, each task's state (fresh / resumable / run, and
// why); without one, the last attempt of every task the store knows. Also names a run in
// progress (the lock holder) and the last run.

import { describeHolder, lockHolder } from '../../store/lock.js';
import { openStore } from '../../store/store.js';
import { taskStates } from '../../store/task-state.js';
import { formatDuration } from '../../ui/format.js';
import type { CliIO } from '../io.js';
import { loadGraph, parseCommandLine, projectRoot } from './runner-common.js';

export const summary = 'show the state of every task (fresh, resumable, run) and any run in progress';
export const help = 'usage: cfpipe status [FILE] [--set NAME=VALUE] [--json]\n';

export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  const parsed = parseCommandLine(
    argv,
    { set: { type: 'string', multiple: true, default: [] }, use: { type: 'string', multiple: true, default: [] }, json: { type: 'boolean', default: false } },
    io,
  );
  if (parsed === undefined) return 2;
  const { values, positionals } = parsed;
  const file = positionals[0];
  const loaded = file !== undefined ? loadGraph({ file, set: values.set, use: values.use }, io) : undefined;
  if (file !== undefined && loaded === undefined) return 2;
  const root = loaded?.root ?? projectRoot();
  const store = openStore(root, { existingOnly: true });
  const rows: { id: string; state: string; detail: string }[] = [];
  if (loaded !== undefined) {
    const states = await taskStates(loaded.graph, { root, ...(store ? { store } : {}) });
    for (const info of states.values()) rows.push({ id: info.task.id, state: info.state, detail: info.reason });
  } else if (store !== undefined) {
    for (const { key: id, value: pointer } of store.latest.getRange()) {
      const record = pointer.lastAttempt !== undefined ? store.tasks.get(pointer.lastAttempt) : undefined;
      if (record === undefined) continue;
      const when = new Date(record.finishedAt ?? record.startedAt).toISOString().replace('T', ' ').slice(0, 19);
      const detail = [
        when,
        record.durationMs !== undefined ? formatDuration(record.durationMs) : '',
        record.status !== 'done' && record.lastCheckpoint ? `checkpoint at step ${record.lastCheckpoint.step}` : '',
        record.error ?? '',
      ].filter(Boolean);
      rows.push({ id, state: record.status, detail: detail.join('  ') });
    }
  }
  const holder = store !== undefined ? lockHolder(store) : undefined;
  let lastRun;
  if (store !== undefined) for (const { value } of store.runs.getRange({ reverse: true, limit: 1 })) lastRun = value;
  if (values.json) {
    io.stdout(JSON.stringify({ tasks: rows, running: holder ?? null, lastRun: lastRun ?? null }) + '\n');
    return 0;
  }
  if (store === undefined && loaded === undefined) {
    io.stdout('no cfpipe state here yet (nothing has run in this project)\n');
    return 0;
  }
  const width = Math.max(4, ...rows.map((r) => r.id.length));
  for (const row of rows) io.stdout(`${row.id.padEnd(width)}  ${row.state.padEnd(11)} ${row.detail}\n`.replace(/ +\n$/, '\n'));
  if (holder) io.stdout(`running now: ${describeHolder(holder)}\n`);
  if (lastRun) {
    const counts = Object.entries(lastRun.counts ?? {}).map(([k, v]) => `${v} ${k}`).join(', ');
    io.stdout(`last run: ${lastRun.id} ${lastRun.status}${counts ? ` (${counts})` : ''}\n`);
  }
  return 0;
}
