// `cfpipe plan FILE`: the dry run. Compile, place the tasks as `cfpipe run --device` would, then
// print every task with the cache key a run would use, its state and reason, and its device when
// that is not the CPU. States come from the project's store (fresh / resumable / run); the store
// is only read, never created, so a plan in CI leaves nothing behind.

import { dirname, resolve } from 'node:path';
import { compilePipeline, findRoot } from '../../compile/index.js';
import type { DeviceRequest } from '../../exec/device.js';
import { placeDefaultRun, taskDevice } from '../../exec/place-graph.js';
import type { TaskGraph } from '../../graph.js';
import { buildPlan, planToJson, renderPlanDot, renderPlanMermaid, renderPlanText, type Plan, type StateOracle } from '../../plan/index.js';
import { toJsonDiagnostic } from '../../../grammar/render.js';
import { count, keyValues, oneOf, parseCommand, PIPELINE_OPTIONS, PIPELINE_OPTIONS_HELP } from '../args.js';
import { DEVICE_OPTION, readDeviceFlag } from '../device-option.js';
import { DIAGNOSTIC_FORMATS, printDiagnostics } from '../diagnostics-output.js';
import { EXIT, UsageError, type CliIO } from '../io.js';

export const help = `Usage: cfpipe plan FILE [options]

Show what \`cfpipe run FILE\` would do, without running anything: every task in dependency order
with its state (fresh, cached, resumable, run), short cache key, the tasks it reads from, and why.
Keys and states are those of \`cfpipe run FILE\` with the same --device.

Options:
  --format text|json|dot|mermaid
                        text (default): one line per task; json: { pipeline, tasks: [{ id, stage,
                        kind, inputs, outputs, deps, key, device, state, reason, ... }] }; dot:
                        Graphviz; mermaid: a flowchart
  --device D            cpu, cuda, cuda:N or auto (default), as for \`cfpipe run\`: the device the
                        keys and states are for; shown per task when not the CPU; cuda needs a
                        GPU that nvidia-smi -L lists
  --diagnostics text|json|github
                        how to print problems (default json with --format json, else text)
${PIPELINE_OPTIONS_HELP}

Exit codes: 0 planned, 2 the pipeline has errors (or a bad flag, or a --device this machine lacks).
`;

const FORMATS = ['text', 'json', 'dot', 'mermaid'] as const;

/** Where task states come from: the store under the project root (read-only), for a placed graph. */
export type OracleSource = (graph: TaskGraph, root: string, gpuDeviceClass: string) => Promise<StateOracle>;

const storeStates: OracleSource = async (graph, root, gpuDeviceClass) => {
  const { storeStateOracle } = await import('../../store/plan-oracle.js');
  return storeStateOracle(graph, { root, gpuDeviceClass });
};

export async function run(args: readonly string[], io: CliIO): Promise<number> {
  return runPlan(args, io, storeStates);
}

/** The plan command with a given source of task states. */
export async function runPlan(args: readonly string[], io: CliIO, states: OracleSource): Promise<number> {
  const { values, positionals } = parseCommand('plan', args, {
    ...PIPELINE_OPTIONS,
    format: { type: 'string' },
    diagnostics: { type: 'string' },
    device: DEVICE_OPTION,
  });
  if (positionals.length !== 1) throw new UsageError('plan: give one pipeline: `cfpipe plan FILE`');
  const format = oneOf('plan', 'format', values.format, FORMATS, 'text');
  const diagnosticFormat = oneOf('plan', 'diagnostics', values.diagnostics, DIAGNOSTIC_FORMATS, format === 'json' ? 'json' : 'text');
  const device = readDeviceFlag(values.device);
  if (!device.ok) throw new UsageError(device.message);
  const file = positionals[0]!;
  const root = values.root ?? findRoot(dirname(resolve(file)));
  const result = compilePipeline(file, {
    set: keyValues('plan', 'set', values.set),
    paramFiles: values.params ?? [],
    use: keyValues('plan', 'use', values.use),
    ...(values.gpus !== undefined ? { gpusAvailable: count('plan', 'gpus', values.gpus)! } : {}),
    root,
  });
  if (!result.graph) {
    printDiagnostics(result.diagnostics, result.sources, diagnosticFormat, io);
    return EXIT.user;
  }
  // Warnings go to stderr so the plan on stdout stays machine-readable.
  if (result.diagnostics.length > 0 && diagnosticFormat !== 'json') printDiagnostics(result.diagnostics, result.sources, diagnosticFormat, io);
  const plan = await planOn(result.graph, root, device.device, states);
  if (typeof plan === 'string') throw new UsageError(plan);
  // JSON carries its warnings inside, so one document says everything.
  const json = (p: Plan): string => JSON.stringify({ ...planToJson(p), diagnostics: result.diagnostics.map(toJsonDiagnostic) }, null, 2) + '\n';
  const render = { text: renderPlanText, json, dot: renderPlanDot, mermaid: renderPlanMermaid }[format];
  io.stdout(render(plan));
  return EXIT.ok;
}

/**
 * The plan of `cfpipe run FILE --device D`: the graph placed as that run (of the default
 * targets) places it, with its keys, states and devices; or why that run would be refused.
 */
async function planOn(graph: TaskGraph, root: string, device: DeviceRequest, states: OracleSource): Promise<Plan | string> {
  const placed = placeDefaultRun(graph, device);
  if (!placed.ok) return placed.message;
  const stored = await states(placed.graph, root, placed.gpuDeviceClass);
  return buildPlan(placed.graph, (task, g) => {
    const where = taskDevice(task, placed.gpuDeviceClass);
    return { ...stored(task, g), ...(where === 'cpu' ? {} : { device: where }) };
  });
}
