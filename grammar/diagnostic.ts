// The one shape every user-facing problem takes, whatever found it (lexer, parser, compiler,
// config checker, runner). Renderers (text, json, github) only ever see these objects.

import type { SourceRange } from './ast.js';

export type Severity = 'error' | 'warning' | 'note';

export interface Diagnostic {
  readonly severity: Severity;
  /** Stable machine-readable code, e.g. `unknown-stage`, `cycle`, `config-type`. */
  readonly code: string;
  /** One sentence: what is wrong. */
  readonly message: string;
  /** Where; absent only for problems with no place (e.g. a missing file named on the CLI). */
  readonly range?: SourceRange;
  /** What to do, e.g. `did you mean \`ar_diffusion\`?` */
  readonly help?: string;
  /** Further places that explain the problem (the other end of a cycle, the earlier definition). */
  readonly related?: readonly { readonly message: string; readonly range: SourceRange }[];
}

/** Results that can fail with user errors carry their diagnostics instead of throwing. */
export interface WithDiagnostics<T> {
  readonly value: T;
  readonly diagnostics: readonly Diagnostic[];
}

export const hasErrors = (diagnostics: readonly Diagnostic[]): boolean =>
  diagnostics.some((d) => d.severity === 'error');
