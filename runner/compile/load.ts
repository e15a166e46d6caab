// Read a pipeline file and everything it includes. Includes resolve relative to the including
// file; a file included twice (a diamond) is read once; an include cycle is a diagnostic that
// names the chain.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { PipelineFile, StringLiteral } from '../../grammar/ast.js';
import { parsePipeline } from '../../grammar/index.js';
import type { Diagnostics } from './diagnostics.js';

export interface LoadedFile {
  readonly absolute: string;
  readonly display: string;
  readonly file: PipelineFile;
  /** Depth 0 is the file named on the command line. */
  readonly depth: number;
}

export interface Loaded {
  /** In include order: each file after the files it includes, the main file last. */
  readonly files: readonly LoadedFile[];
  readonly main?: LoadedFile;
  readonly sources: Map<string, string>;
}

/** The text of a string literal that has no `${}` holes (include paths must be plain). */
export function plainText(literal: StringLiteral): string | undefined {
  let out = '';
  for (const part of literal.parts) {
    if (part.kind !== 'Text') return undefined;
    out += part.text;
  }
  return out;
}

export function loadPipeline(
  path: string,
  display: (absolute: string) => string,
  diagnostics: Diagnostics,
  overlay?: ReadonlyMap<string, string>,
): Loaded {
  const files: LoadedFile[] = [];
  const sources = new Map<string, string>();
  const done = new Set<string>();
  const active: string[] = [];

  const read = (absolute: string): string | undefined => {
    const over = overlay?.get(absolute);
    if (over !== undefined) return over;
    try {
      return readFileSync(absolute, 'utf8');
    } catch {
      return undefined;
    }
  };

  const visit = (absolute: string, depth: number): LoadedFile | undefined => {
    const shown = display(absolute);
    const source = read(absolute);
    if (source === undefined) return undefined;
    sources.set(shown, source);
    const parsed = parsePipeline(shown, source);
    diagnostics.addAll(parsed.diagnostics);
    active.push(absolute);
    for (const statement of parsed.file.statements) {
      if (statement.kind !== 'Include') continue;
      const written = plainText(statement.path);
      if (written === undefined) {
        diagnostics.error('include-interpolated', 'an include path cannot use `${...}`', statement.path.range);
        continue;
      }
      const target = resolve(dirname(absolute), written);
      if (active.includes(target)) {
        const chain = [...active.slice(active.indexOf(target)), target].map(display);
        diagnostics.error('include-cycle', `include cycle: ${chain.join(' → ')}`, statement.path.range);
        continue;
      }
      if (done.has(target)) continue;
      const included = visit(target, depth + 1);
      if (!included) {
        diagnostics.error('missing-include', `included file \`${written}\` does not exist`, statement.path.range, {
          help: `it is looked up relative to ${display(dirname(absolute)) || '.'}`,
        });
      }
    }
    active.pop();
    done.add(absolute);
    const loaded: LoadedFile = { absolute, display: shown, file: parsed.file, depth };
    files.push(loaded);
    return loaded;
  };

  const main = visit(resolve(path), 0);
  if (!main) diagnostics.error('missing-file', `pipeline file \`${path}\` does not exist`, undefined);
  return main ? { files, main, sources } : { files, sources };
}
