// Offsets → 1-based line/column. The lexer only tracks offsets (cheaper); every position in the
// AST and in diagnostics is computed here from the source text, so all of them agree.

import type { Position, SourceRange } from './ast.js';

export class LineIndex {
  /** Offset of the first character of each line. */
  private readonly starts: number[] = [0];

  constructor(
    readonly file: string,
    readonly source: string,
  ) {
    for (let i = 0; i < source.length; i++) {
      if (source.charCodeAt(i) === 10) this.starts.push(i + 1);
    }
  }

  /** The position of an offset, clamped into [0, source.length]. */
  position(offset: number): Position {
    const at = Math.max(0, Math.min(Number.isFinite(offset) ? offset : this.source.length, this.source.length));
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.starts[mid] ?? 0) <= at) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: at - (this.starts[lo] ?? 0) + 1, offset: at };
  }

  /** The half-open range [start, end) between two offsets. */
  range(start: number, end: number): SourceRange {
    const s = this.position(start);
    const e = this.position(Math.max(start, end));
    return { file: this.file, start: s, end: e };
  }

  /** The line number (1-based) holding an offset. */
  lineOf(offset: number): number {
    return this.position(offset).line;
  }
}

/** The text of a 1-based line of a source, without its line break. */
export function lineText(source: string, line: number): string {
  let start = 0;
  for (let l = 1; l < line; l++) {
    const next = source.indexOf('\n', start);
    if (next < 0) return '';
    start = next + 1;
  }
  const end = source.indexOf('\n', start);
  return source.slice(start, end < 0 ? source.length : end).replace(/\r$/, '');
}
