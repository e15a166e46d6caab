// Diagnostics as people and machines read them: text in the style of rustc/just (source line,
// carets under the whole range, help and notes), a JSON array, and GitHub workflow annotations.

import type { SourceRange } from './ast.js';
import type { Diagnostic, Severity } from './diagnostic.js';
import { lineText } from './lines.js';

export interface RenderOptions {
  /** ANSI colors (for a terminal). */
  readonly color?: boolean;
}

const tabWidth = 4;
const ansi = (code: string) => (on: boolean, s: string): string => (on ? `\u001b[${code}m${s}\u001b[0m` : s);
const bold = ansi('1');
const gutterStyle = ansi('1;34');
const severityStyle: Readonly<Record<Severity, (on: boolean, s: string) => string>> = {
  error: ansi('1;31'),
  warning: ansi('1;33'),
  note: ansi('1;36'),
};
const helpStyle = ansi('1;36');

/** Expand tabs so carets line up under the text as shown. */
const expandTabs = (s: string): string => s.replace(/\t/g, ' '.repeat(tabWidth));

/** Render diagnostics as text; `sources` maps a range's file to its text (for the source lines). */
export function renderText(diagnostics: readonly Diagnostic[], sources: ReadonlyMap<string, string>, options: RenderOptions = {}): string {
  return diagnostics.map((d) => renderOne(d, sources, options.color === true)).join('\n');
}

function renderOne(d: Diagnostic, sources: ReadonlyMap<string, string>, color: boolean): string {
  const places = [d.range, ...(d.related ?? []).map((r) => r.range)].filter((r): r is SourceRange => r !== undefined);
  const width = Math.max(1, ...places.map((r) => String(r.start.line).length));
  const pad = ' '.repeat(width);
  const gutter = (s: string): string => gutterStyle(color, s);
  const caretStyle = severityStyle[d.severity];
  const lines: string[] = [`${severityStyle[d.severity](color, d.severity)}${bold(color, `: ${d.message}`)}`];

  const snippet = (range: SourceRange, style: (on: boolean, s: string) => string, label?: string): void => {
    lines.push(`${pad}${gutter('-->')} ${range.file}:${range.start.line}:${range.start.column}`);
    const source = sources.get(range.file);
    if (source === undefined) return;
    const text = lineText(source, range.start.line);
    const before = expandTabs(text.slice(0, range.start.column - 1));
    const sameLine = range.end.line === range.start.line;
    const endColumn = sameLine ? range.end.column : text.length + 1;
    const covered = expandTabs(text.slice(range.start.column - 1, Math.max(range.start.column - 1, endColumn - 1)));
    const carets = '^'.repeat(Math.max(1, covered.length));
    lines.push(`${pad} ${gutter('|')}`);
    lines.push(`${gutter(String(range.start.line).padStart(width))} ${gutter('|')} ${expandTabs(text)}`.trimEnd());
    lines.push(`${pad} ${gutter('|')} ${' '.repeat(before.length)}${style(color, carets)}${label ? ` ${style(color, label)}` : ''}`);
  };

  if (d.range) snippet(d.range, caretStyle);
  if (d.help !== undefined) {
    if (d.range) lines.push(`${pad} ${gutter('=')} ${helpStyle(color, 'help')}: ${d.help}`);
    else lines.push(`${helpStyle(color, 'help')}: ${d.help}`);
  }
  for (const r of d.related ?? []) {
    lines.push(`${severityStyle.note(color, 'note')}: ${r.message}`);
    snippet(r.range, severityStyle.note);
  }
  return `${lines.join('\n')}\n`;
}

/** One diagnostic as a plain object (the element type of renderJson's array). */
export interface JsonDiagnostic {
  readonly file: string | null;
  /** 1-based start line and column. */
  readonly line: number | null;
  readonly column: number | null;
  /** 1-based line and column of the last character covered (inclusive, as in GitHub annotations). */
  readonly endLine: number | null;
  readonly endColumn: number | null;
  readonly severity: Severity;
  readonly code: string;
  readonly message: string;
  readonly help: string | null;
  readonly related: readonly { readonly message: string; readonly file: string; readonly line: number; readonly column: number }[];
}

/** The inclusive end of a half-open range: the last character covered (the start when empty). */
function lastCovered(r: SourceRange): { line: number; column: number } {
  if (r.end.offset <= r.start.offset || r.end.column <= 1) return { line: r.start.line, column: r.start.column };
  return { line: r.end.line, column: r.end.column - 1 };
}

export function toJsonDiagnostic(d: Diagnostic): JsonDiagnostic {
  const r = d.range;
  const last = r ? lastCovered(r) : undefined;
  return {
    file: r?.file ?? null,
    line: r?.start.line ?? null,
    column: r?.start.column ?? null,
    endLine: last?.line ?? null,
    endColumn: last?.column ?? null,
    severity: d.severity,
    code: d.code,
    message: d.message,
    help: d.help ?? null,
    related: (d.related ?? []).map((x) => ({ message: x.message, file: x.range.file, line: x.range.start.line, column: x.range.start.column })),
  };
}

/** All diagnostics as one JSON array (pretty-printed, newline-terminated). */
export function renderJson(diagnostics: readonly Diagnostic[]): string {
  return `${JSON.stringify(diagnostics.map(toJsonDiagnostic), null, 2)}\n`;
}

// GitHub workflow commands: data escapes %, CR and LF; property values also `:` and `,`.
const escapeData = (s: string): string => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
const escapeProperty = (s: string): string => escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
const githubCommand: Readonly<Record<Severity, string>> = { error: 'error', warning: 'warning', note: 'notice' };

/** `::error file=…,line=…::message` lines, one per diagnostic, for GitHub Actions logs. */
export function renderGithub(diagnostics: readonly Diagnostic[]): string {
  return diagnostics
    .map((d) => {
      const j = toJsonDiagnostic(d);
      const props: string[] = [];
      if (j.file !== null) props.push(`file=${escapeProperty(j.file)}`);
      if (j.line !== null) props.push(`line=${j.line}`);
      if (j.column !== null) props.push(`col=${j.column}`);
      if (j.endLine !== null) props.push(`endLine=${j.endLine}`);
      if (j.endColumn !== null) props.push(`endColumn=${j.endColumn}`);
      props.push(`title=${escapeProperty(`cfpipe ${d.code}`)}`);
      const body = d.help !== undefined ? `${d.message}\nhelp: ${d.help}` : d.message;
      return `::${githubCommand[d.severity]} ${props.join(',')}::${escapeData(body)}\n`;
    })
    .join('');
}
