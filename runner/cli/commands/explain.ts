// `cfpipe explain [FILE] STAGE`: why a stage will run — a key-level diff between what its
// cache key covers now and what it covered at its last success, e.g.
//   config.lr: 2e-06 → 4e-06
//   input data changed (upstream clean now has key 1a2b3c4d5e6f, was 9f8e7d6c5b4a)
// Without FILE, the pipeline of the last run is used. Keys are those of `cfpipe run FILE
// --device D`; a stage whose result exists under another device class is said to be done there.

import type { Value } from '../../graph.js';
import { openStore } from '../../store/store.js';
import { DEVICE_OPTION, readDeviceFlag } from '../device-option.js';
import { describeElsewhere, statesOnDevice } from '../device-states.js';
import type { CliIO } from '../io.js';
import { errorLine, GRAPH_OPTIONS, GRAPH_OPTIONS_HELP, graphOptionsAsFlags, loadGraph, parseCommandLine, projectRoot } from './runner-common.js';
import type { RecordedGraphOptions } from '../../store/records.js';

export const summary = 'explain why a stage will run: what changed since its last success';
export const help = `usage: cfpipe explain [FILE] STAGE [options]

Why STAGE will run in \`cfpipe run FILE\` on the same --device: what its cache key covers now
against its last success. Without FILE, the pipeline of the last run, and (unless --set, --params, --use or
--device is given) that run's values of them. A stage done on another
device class with these inputs and settings says so ("done on cuda:sm90, not on cpu").

${GRAPH_OPTIONS_HELP}
  --device D           cpu, cuda, cuda:N or auto (default), as for \`cfpipe run\`: the device
                       the keys are for; cuda needs a GPU that nvidia-smi -L lists
`;

/** Numbers the way configs write them (2e-06, 0.5, 1200). */
export function formatValue(value: Value | undefined): string {
  if (value === undefined) return '(absent)';
  if (typeof value === 'number') {
    if (value !== 0 && (Math.abs(value) < 1e-4 || Math.abs(value) >= 1e16)) return value.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
    return String(value);
  }
  if (typeof value === 'string') return /^[0-9a-f]{64}$/.test(value) ? value.slice(0, 12) : JSON.stringify(value);
  return JSON.stringify(value);
}

/** Dotted paths to leaf values (lists are leaves: they change as a whole). */
export function flatten(value: Value | undefined, prefix = '', out = new Map<string, Value>()): Map<string, Value> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, Value>);
    if (entries.length === 0 && prefix) out.set(prefix, {});
    for (const [k, v] of entries) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (value !== undefined) out.set(prefix, value);
  return out;
}

/** The compiler lists inputs as [{ name, sources }]: key them by name so they diff per input. */
function byInputName(parts: { readonly [k: string]: Value }): { readonly [k: string]: Value } {
  const inputs = parts.inputs;
  if (!Array.isArray(inputs) || !inputs.every((i) => i !== null && typeof i === 'object' && !Array.isArray(i) && typeof (i as { name?: unknown }).name === 'string')) return parts;
  const named: Record<string, Value> = {};
  for (const input of inputs as { name: string; sources?: Value }[]) named[input.name] = input.sources ?? null;
  return { ...parts, inputs: named };
}

/** Upstream sources as short keys or paths: `key 1a2b3c4d5e6f`, several joined by commas. */
function formatSources(value: Value | undefined): string {
  if (!Array.isArray(value)) return formatValue(value);
  return value
    .map((s) => {
      const src = s as { task?: string; path?: string; digest?: string };
      if (typeof src.task === 'string') return `key ${src.task.slice(0, 12)}`;
      if (typeof src.path === 'string') return src.path;
      return JSON.stringify(s);
    })
    .join(', ');
}

/** One line per difference, upstream and provided inputs phrased as inputs. */
export function keyDiff(before: { readonly [k: string]: Value }, now: { readonly [k: string]: Value }): string[] {
  const a = flatten(byInputName(before));
  const b = flatten(byInputName(now));
  const lines: string[] = [];
  for (const path of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(path);
    const y = b.get(path);
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    const upstream = /^upstream\.(.+)$/.exec(path);
    const provided = /^provided\.(.+)$/.exec(path);
    const input = /^inputs\.(.+)$/.exec(path);
    if (input) lines.push(`input ${input[1]} changed (upstream ${formatSources(x)} → ${formatSources(y)})`);
    else if (upstream) {
      // The compiler's `inputs` part already names this change; say it once.
      const name = upstream[1]!.replace(/\[.*$/, '');
      if (!a.has(`inputs.${name}`) && !b.has(`inputs.${name}`)) lines.push(`input ${upstream[1]} changed (upstream key ${formatValue(x)} → ${formatValue(y)})`);
    }
    else if (provided) lines.push(`input ${provided[1]} changed (file contents differ)`);
    else lines.push(`${path}: ${formatValue(x)} → ${formatValue(y)}`);
  }
  return lines;
}

export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  const parsed = parseCommandLine(
    argv,
    { ...GRAPH_OPTIONS, device: DEVICE_OPTION },
    io,
  );
  if (parsed === undefined) return 2;
  const { values, positionals } = parsed;
  let file: string | undefined;
  let stage: string | undefined;
  // Without FILE, the last run names the pipeline; without any graph flag either, its --set,
  // --params, --use and --device too, so the keys are the ones that run used.
  let lastRun: RecordedGraphOptions | undefined;
  if (positionals.length >= 2) [file, stage] = positionals;
  else {
    stage = positionals[0];
    const store = openStore(projectRoot(), { existingOnly: true });
    if (store) {
      for (const { value } of store.runs.getRange({ reverse: true, limit: 1 })) {
        file = value.file;
        lastRun = value.graphOptions;
      }
    }
    if (file === undefined && stage !== undefined) {
      errorLine(io, 'explain: name the pipeline file (no earlier run to take it from): cfpipe explain FILE STAGE');
      return 2;
    }
  }
  if (stage === undefined || file === undefined) {
    io.stderr(help);
    return 2;
  }
  const flagsGiven = values.set.length > 0 || values.params.length > 0 || values.use.length > 0 || values.device !== undefined;
  const graphOptions: RecordedGraphOptions = lastRun !== undefined && !flagsGiven ? lastRun : { set: values.set, params: values.params, use: values.use, ...(values.device !== undefined ? { device: values.device } : {}) };
  if (lastRun !== undefined && !flagsGiven && graphOptionsAsFlags(lastRun) !== '') io.stderr(`explain: with the last run's options: ${graphOptionsAsFlags(lastRun)}\n`);
  const device = readDeviceFlag(graphOptions.device);
  if (!device.ok) {
    errorLine(io, device.message);
    return 2;
  }
  const loaded = loadGraph({ file, set: graphOptions.set ?? [], params: graphOptions.params ?? [], use: graphOptions.use ?? [] }, io);
  if (loaded === undefined) return 2;
  const tasks = loaded.graph.tasks.filter((t) => t.id === stage || t.stage === stage);
  if (tasks.length === 0) {
    errorLine(io, `explain: no stage or task \`${stage}\` in ${loaded.graph.pipeline}`);
    return 2;
  }
  const store = openStore(loaded.root, { existingOnly: true });
  const placed = await statesOnDevice(loaded.graph, loaded.root, store, device.device);
  if (typeof placed === 'string') {
    errorLine(io, placed);
    return 2;
  }
  for (const task of tasks) {
    const info = placed.states.get(task.id)!;
    const head = `${task.id}: ${info.state}`;
    if (info.state === 'fresh') {
      io.stdout(`${head} — nothing changed since its last success\n`);
      continue;
    }
    const done = placed.elsewhere.get(task.id);
    if (done !== undefined) {
      io.stdout(`${head} — ${describeElsewhere(done, ' with these inputs and settings')}\n`);
      continue;
    }
    const pointer = store?.latest.get(task.id);
    const last = pointer?.lastSuccess !== undefined ? store?.tasks.get(pointer.lastSuccess) : undefined;
    if (last === undefined) {
      io.stdout(`${head} — it has never succeeded${info.reason !== 'never run' ? ` (${info.reason})` : ''}\n`);
      continue;
    }
    if (last.key === info.key.key) {
      io.stdout(`${head} — same key as its last success, but ${info.reason}\n`);
      continue;
    }
    const lines = keyDiff(last.keyParts, info.key.parts);
    io.stdout(`${head} — changed since its last success (${new Date(last.finishedAt ?? last.startedAt).toISOString()}):\n`);
    for (const line of lines.length > 0 ? lines : ['(the key changed in a part not recorded: cfpipe or engine version)']) io.stdout(`  ${line}\n`);
  }
  return 0;
}
