// Shared by the runner's commands (run, status, explain, logs, gc): reading the command line,
// compiling the pipeline named on it with its diagnostics rendered, and finding the project root.

import { hasErrors } from '../../../grammar/diagnostic.js';
import { renderText } from '../../../grammar/render.js';
import { compilePipeline, findRoot } from '../../compile/index.js';
import type { TaskGraph } from '../../graph.js';
import type { RecordedGraphOptions } from '../../store/records.js';
import type { CliIO } from '../io.js';
import { dirname, resolve } from 'node:path';
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

export interface GraphArgs {
  readonly file: string;
  readonly set: readonly string[];
  readonly use: readonly string[];
  /** `--params FILE`, in command-line order. */
  readonly params?: readonly string[];
}

const repeated = () => ({ type: 'string' as const, multiple: true as const, default: [] as string[] });

/** The options of the commands that compile FILE through loadGraph (run, status, explain). */
export const GRAPH_OPTIONS = { set: repeated(), params: repeated(), use: repeated() };

export const GRAPH_OPTIONS_HELP = `  --set NAME=VALUE     override a param (repeatable)
  --params FILE        params from a YAML preset, one \`name: value\` per line, typed as YAML
                       writes them (repeatable; a later file wins, --set wins over every file),
                       e.g. --params configs/presets/gpu.yaml
  --use STAGE.OUT=PATH provide an output instead of computing it (repeatable)`;

/**
 * The graph options of a `run` as its record keeps them. --params files are read relative to the
 * working directory, so they are kept absolute; --use paths are relative to the project root
 * (the compiler joins them), so they are kept as given.
 */
export function recordGraphOptions(values: { readonly set: readonly string[]; readonly params: readonly string[]; readonly use: readonly string[] }, device: string | undefined): RecordedGraphOptions {
  return {
    ...(values.set.length > 0 ? { set: [...values.set] } : {}),
    ...(values.params.length > 0 ? { params: values.params.map((f) => resolve(f)) } : {}),
    ...(values.use.length > 0 ? { use: [...values.use] } : {}),
    ...(device !== undefined ? { device } : {}),
  };
}

/** The recorded options as command-line flags, for telling the user what was reused. */
export function graphOptionsAsFlags(options: RecordedGraphOptions): string {
  const flags = [
    ...(options.set ?? []).map((v) => `--set ${v}`),
    ...(options.params ?? []).map((v) => `--params ${v}`),
    ...(options.use ?? []).map((v) => `--use ${v}`),
    ...(options.device !== undefined ? [`--device ${options.device}`] : []),
  ];
  return flags.join(' ');
}

function pairs(list: readonly string[], flag: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) return `${flag} ${item}: expected NAME=VALUE`;
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** Compiles FILE; on errors prints the diagnostics to stderr and returns undefined. */
export function loadGraph(args: GraphArgs, io: CliIO): { graph: TaskGraph; root: string } | undefined {
  const set = pairs(args.set, '--set');
  const use = pairs(args.use, '--use');
  if (typeof set === 'string' || typeof use === 'string') {
    io.stderr(`cfpipe: ${typeof set === 'string' ? set : use}\n`);
    return undefined;
  }
  const root = findRoot(dirname(resolve(args.file)));
  const result = compilePipeline(args.file, { set, use, root, paramFiles: args.params ?? [] });
  if (result.diagnostics.length > 0) {
    io.stderr(renderText(result.diagnostics, result.sources, { color: io.color }));
  }
  if (result.graph === undefined || hasErrors(result.diagnostics)) return undefined;
  return { graph: result.graph, root };
}

/** The project root for commands that take no pipeline file: nearest project above the cwd. */
export const projectRoot = (): string => findRoot(process.cwd());

export const errorLine = (io: { readonly stderr: (text: string) => void }, message: string): void => {
  io.stderr(`cfpipe: ${message}\n`);
};

/** parseArgs (strict, positionals allowed); a mistake is printed as one `cfpipe:` line and gives undefined. */
export function parseCommandLine<O extends ParseArgsOptionsConfig>(argv: readonly string[], options: O, io: CliIO) {
  try {
    return parseArgs({ args: [...argv], allowPositionals: true, options });
  } catch (error) {
    errorLine(io, (error as Error).message);
    return undefined;
  }
}
