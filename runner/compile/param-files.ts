// `--params FILE`: YAML files of param values (presets), read with the config loader so every
// key and value keeps the line and column it was written at. The values keep their YAML types;
// params.ts checks them against the declarations, as it checks `--set`.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Diagnostic } from '../../grammar/diagnostic.js';
import { nearbyYaml } from '../config/resolve.js';
import type { Located } from '../config/located.js';
import { loadYamlFile } from '../config/yaml.js';
import type { Diagnostics } from './diagnostics.js';

/** One `name: value` entry of a params file. */
export interface ParamFileEntry {
  readonly name: string;
  /** The value with its range; `keyRange` is the name's. */
  readonly located: Located & { readonly keyRange: NonNullable<Located['keyRange']> };
  /** The value as written (`3.0` and `3` are both the number 3, but only one is a YAML integer). */
  readonly text: string;
}

/**
 * Every entry of the files, in command-line order (so a later file's entry comes later), each
 * file's text added to `sources`; a file that is missing, not YAML or not a mapping is a diagnostic.
 */
export function loadParamFiles(
  paths: readonly string[],
  display: (absolute: string) => string,
  diagnostics: Diagnostics,
  sources: Map<string, string>,
): ParamFileEntry[] {
  const entries: ParamFileEntry[] = [];
  for (const path of paths) {
    const absolute = resolve(path);
    const shown = display(absolute);
    const loaded = loadYamlFile(absolute, shown);
    if (!loaded) {
      const help = nearbyYaml(absolute, path);
      diagnostics.error(
        'missing-params-file',
        existsSync(absolute) ? `params file \`${path}\` cannot be read` : `params file \`${path}\` does not exist`,
        undefined,
        help ? { help } : { help: 'a --params path is relative to the working directory' },
      );
      continue;
    }
    sources.set(shown, loaded.source);
    diagnostics.addAll(loaded.diagnostics.map(asParamsProblem));
    for (const [name, located] of loaded.root?.entries ?? []) {
      const keyRange = located.keyRange ?? located.range;
      entries.push({ name, located: { ...located, keyRange }, text: loaded.source.slice(located.range.start.offset, located.range.end.offset) });
    }
  }
  return entries;
}

/** The loader speaks of config files; a params file's top level is a mapping of param names. */
const asParamsProblem = (d: Diagnostic): Diagnostic =>
  d.code === 'config-not-a-map'
    ? { ...d, code: 'params-not-a-map', message: 'a params file must be a mapping of param names to values', help: 'write one `name: value` per line, e.g. `steps: 200`' }
    : d;
