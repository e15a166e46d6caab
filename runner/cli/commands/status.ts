// `cfpipe status [FILE]`: with a pipeline, each task's state (fresh / resumable / run, and
// why) for the device `--device` names, keyed as `cfpipe run FILE --device D` keys it, and
// where a task not done on that device is done on another; without one, the last attempt of
// every task the store knows. Also names a run in progress (the lock holder) and the last run.

import { describeHolder, lockHolder } from '../../store/lock.js';
import { openStore } from '../../store/store.js';
import { formatDuration } from '../../ui/format.js';
import { DEVICE_OPTION, readDeviceFlag } from '../device-option.js';
import { reasonWithElsewhere, statesOnDevice } from '../device-states.js';
import type { CliIO } from '../io.js';
import { errorLine, GRAPH_OPTIONS, GRAPH_OPTIONS_HELP, loadGraph, parseCommandLine, projectRoot } from './runner-common.js';

export const summary = 'show the state of every task (fresh, resumable, run) and any run in progress';
export const help = `usage: cfpipe status [FILE] [options]

With FILE: each task's state (fresh, resumable, run) and why, with the keys \`cfpipe run FILE\`
would use on the same --device; a task not done on that device but done on another says so
("done on cuda:sm90, not on cpu"). Without FILE: the last attempt of every task in the store.

${GRAPH_OPTIONS_HELP}
  --device D           cpu, cuda, cuda:N or auto (default), as for \`cfpipe run\`: the device
                       the keys and states are for; cuda needs a GPU that nvidia-smi -L lists
  --json               { tasks: [{ id, state, detail, key, doneOn? }], running, lastRun }
`;

export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  const parsed = parseCommandLine(
    argv,
    {
      ...GRAPH_OPTIONS,
      device: DEVICE_OPTION,
      json: { type: 'boolean', default: false },
    },
    io,
  );
  if (parsed === undefined) return 2;
  const { values, positionals } = parsed;
  const file = positionals[0];
  const device = readDeviceFlag(values.device);
  if (!device.ok || (file === undefined && values.device !== undefined)) {
    errorLine(io, device.ok ? 'status --device: name the pipeline its keys are for: cfpipe status FILE --device D' : device.message);
    return 2;
  }
  const loaded = file !== undefined ? loadGraph({ file, set: values.set, params: values.params, use: values.use }, io) : undefined;
  if (file !== undefined && loaded === undefined) return 2;
  const root = loaded?.root ?? projectRoot();
  const store = openStore(root, { existingOnly: true });
  const rows: { id: string; state: string; detail: string; key: string; doneOn?: string }[] = [];
  if (loaded !== undefined) {
    const placed = await statesOnDevice(loaded.graph, root, store, device.device);
    if (typeof placed === 'string') {
      errorLine(io, placed);
      return 2;
    }
    for (const info of placed.states.values()) {
      const done = placed.elsewhere.get(info.task.id);
      rows.push({ id: info.task.id, state: info.state, detail: reasonWithElsewhere(info, done), key: info.key.key, ...(done ? { doneOn: done.deviceClass } : {}) });
    }
  } else if (store !== undefined) {
    for (const { key: id, value: pointer } of store.latest.getRange()) {
      const record = pointer.lastAttempt !== undefined ? store.tasks.get(pointer.lastAttempt) : undefined;
      if (record === undefined) continue;
      const when = new Date(record.finishedAt ?? record.startedAt).toISOString().replace('T', ' ').slice(0, 19);
      const onDevice = record.keyParts.device;
      const detail = [
        when,
        record.durationMs !== undefined ? formatDuration(record.durationMs) : '',
        typeof onDevice === 'string' && onDevice !== 'cpu' ? `on ${onDevice}` : '',
        record.status !== 'done' && record.lastCheckpoint ? `checkpoint at step ${record.lastCheckpoint.step}` : '',
        record.error ?? '',
      ].filter(Boolean);
      rows.push({ id, state: record.status, detail: detail.join('  '), key: record.key });
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
