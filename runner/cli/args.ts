// Command-line options shared by the commands, parsed with node:util parseArgs; every mistake is
// a UsageError with a sentence, never a stack.

import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { UsageError } from './io.js';

type OptionSpec = { type: 'string' | 'boolean'; multiple?: boolean; short?: string };

export function parseCommand<T extends ParseArgsOptionsConfig>(command: string, args: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true as const, strict: true as const });
  } catch (error) {
    const message = error instanceof Error ? error.message.replace(/\. To specify a positional argument.*$/s, '') : String(error);
    throw new UsageError(`${command}: ${message.charAt(0).toLowerCase()}${message.slice(1)}; see \`cfpipe ${command} --help\``);
  }
}

/** `--set a=1 --set b=x` → { a: '1', b: 'x' }. */
export function keyValues(command: string, flag: string, values: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of values ?? []) {
    const at = item.indexOf('=');
    if (at <= 0) throw new UsageError(`${command}: \`--${flag} ${item}\` must look like \`--${flag} name=value\``);
    out[item.slice(0, at)] = item.slice(at + 1);
  }
  return out;
}

export function oneOf<T extends string>(command: string, flag: string, value: string | undefined, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${command}: \`--${flag} ${value}\` is not one of ${choices.join(', ')}`);
}

export function count(command: string, flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${command}: \`--${flag} ${value}\` must be a whole number`);
  return Number(value);
}

/** Options every pipeline-reading command takes. */
export const PIPELINE_OPTIONS = {
  set: { type: 'string', multiple: true },
  params: { type: 'string', multiple: true },
  use: { type: 'string', multiple: true },
  gpus: { type: 'string' },
  root: { type: 'string' },
} as const satisfies Record<string, OptionSpec>;

export const PIPELINE_OPTIONS_HELP = `  --set NAME=VALUE      set a param (parsed by its declared type); repeatable
  --params FILE         set params from a YAML file (a preset) of \`name: value\` lines, each value
                        of its param's type as YAML writes it: \`ar_steps: 12\`, \`tags: [a, b]\`;
                        repeatable: a later file wins over an earlier one, --set over every file;
                        e.g. --params configs/presets/gpu.yaml --set ar_steps=20
  --use STAGE.OUTPUT=PATH
                        use an existing artifact instead of computing that output; repeatable
  --gpus N              check GPU requests against N GPUs (default: what nvidia-smi -L lists, else 0)
  --root DIR            project root for configs and paths (default: the nearest folder above the
                        pipeline with configs/default_config.yaml or package.json)`;
