// `cfpipe fmt FILE...`: rewrite pipelines in the canonical layout (comments kept, idempotent).
// Files are replaced atomically (write a temporary file beside, then rename), so an interrupted
// fmt never leaves half a pipeline. `--check` changes nothing and fails when a file would change.

import { readFileSync, renameSync, writeFileSync, unlinkSync, statSync } from 'node:fs';
import { formatSource } from '../../../grammar/format.js';
import type { Diagnostic } from '../../../grammar/diagnostic.js';
import { displayPath } from '../../compile/index.js';
import { oneOf, parseCommand } from '../args.js';
import { DIAGNOSTIC_FORMATS, printDiagnostics } from '../diagnostics-output.js';
import { EXIT, UsageError, type CliIO } from '../io.js';

export const help = `Usage: cfpipe fmt FILE... [options]

Rewrite pipeline files in the canonical layout: 2-space indent, one item per line, short lists and
maps inline, every comment kept. Formatting a formatted file changes nothing.

Options:
  --check               change nothing; list files that are not formatted and exit 1 if any
  --format text|json|github
                        how to print syntax errors (files with errors are left alone)

Exit codes: 0 done (or all formatted), 1 --check found unformatted files, 2 syntax errors or a bad flag.
`;

export async function run(args: readonly string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommand('fmt', args, { check: { type: 'boolean' }, format: { type: 'string' } });
  if (positionals.length === 0) throw new UsageError('fmt: which files? `cfpipe fmt FILE...`');
  const format = oneOf('fmt', 'format', values.format, DIAGNOSTIC_FORMATS, 'text');
  const diagnostics: Diagnostic[] = [];
  const sources = new Map<string, string>();
  const unformatted: string[] = [];
  for (const file of positionals) {
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch {
      diagnostics.push({ severity: 'error', code: 'missing-file', message: `pipeline file \`${file}\` does not exist` });
      continue;
    }
    const shown = displayPath(file);
    sources.set(shown, source);
    const result = formatSource(shown, source);
    if (result.text === undefined) {
      diagnostics.push(...result.diagnostics);
      continue;
    }
    if (result.text === source) continue;
    unformatted.push(file);
    if (!values.check) writeAtomically(file, result.text);
  }
  printDiagnostics(diagnostics, sources, format, io);
  if (values.check) for (const file of unformatted) io.stdout(`would reformat ${file}\n`);
  else for (const file of unformatted) io.stderr(`formatted ${file}\n`);
  if (diagnostics.some((d) => d.severity === 'error')) return EXIT.user;
  return values.check && unformatted.length > 0 ? EXIT.failure : EXIT.ok;
}

function writeAtomically(file: string, text: string): void {
  const temporary = `${file}.cfpipe-fmt-${process.pid}.tmp`;
  try {
    const mode = statSync(file).mode;
    writeFileSync(temporary, text, { mode });
    renameSync(temporary, file);
  } catch (error) {
    try {
      unlinkSync(temporary);
    } catch {
      // nothing was written
    }
    throw error;
  }
}
