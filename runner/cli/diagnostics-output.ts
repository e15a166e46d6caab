// Printing diagnostics in the format asked for: text (rustc-style, to stderr), json (stdout),
// github (workflow annotations, stdout, plus text on stderr for the log).

import type { Diagnostic } from '../../grammar/diagnostic.js';
import { renderGithub, renderJson, renderText } from '../../grammar/render.js';
import type { CliIO } from './io.js';

export type DiagnosticFormat = 'text' | 'json' | 'github';
export const DIAGNOSTIC_FORMATS: readonly DiagnosticFormat[] = ['text', 'json', 'github'];

export function printDiagnostics(diagnostics: readonly Diagnostic[], sources: ReadonlyMap<string, string>, format: DiagnosticFormat, io: CliIO): void {
  if (format === 'json') {
    io.stdout(renderJson(diagnostics));
    return;
  }
  if (diagnostics.length === 0) return;
  if (format === 'github') io.stdout(renderGithub(diagnostics));
  io.stderr(renderText(diagnostics, sources, { color: io.color }) + '\n');
}

export function summary(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.filter((d) => d.severity === 'warning').length;
  const part = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return [errors ? part(errors, 'error') : '', warnings ? part(warnings, 'warning') : ''].filter(Boolean).join(', ');
}
