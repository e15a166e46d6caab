// `cfpipe logs STAGE [--all]`: the log of the last attempt of each task of STAGE (a task id
// like `ode[2]` picks one fan-out member); --all lists every attempt's log file.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { safeTaskName } from '../../store/layout.js';
import { openStore } from '../../store/store.js';
import type { CliIO } from '../io.js';
import { errorLine, projectRoot } from './runner-common.js';

export const summary = "show a stage's task logs (the last attempt, or --all)";
export const help = 'usage: cfpipe logs STAGE [--all]\n';

export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], allowPositionals: true, options: { all: { type: 'boolean', default: false } } });
  } catch (error) {
    errorLine(io, (error as Error).message);
    return 2;
  }
  const name = parsed.positionals[0];
  if (name === undefined) {
    io.stderr(help);
    return 2;
  }
  const store = openStore(projectRoot(), { existingOnly: true });
  if (store === undefined) {
    errorLine(io, 'no cfpipe state here yet: nothing has run in this project');
    return 1;
  }
  const ids: string[] = [];
  for (const id of store.latest.getKeys()) if (id === name || id.startsWith(`${name}[`)) ids.push(id);
  if (ids.length === 0) {
    errorLine(io, `no logs for \`${name}\`: no task of that name has run here`);
    return 1;
  }
  for (const id of ids) {
    if (parsed.values.all) {
      const dir = join(store.layout.logs, safeTaskName(id));
      const files = existsSync(dir) ? readdirSync(dir).sort() : [];
      for (const f of files) io.stdout(`${join(dir, f)}\n`);
      continue;
    }
    const pointer = store.latest.get(id);
    const record = pointer?.lastAttempt !== undefined ? store.tasks.get(pointer.lastAttempt) : undefined;
    if (ids.length > 1) io.stdout(`==> ${id} (${record?.status ?? 'unknown'}) <==\n`);
    if (record?.log === undefined || !existsSync(record.log)) {
      io.stdout('(no log kept)\n');
      continue;
    }
    io.stdout(readFileSync(record.log, 'utf8'));
  }
  return 0;
}
