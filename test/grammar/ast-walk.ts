// Helpers for grammar tests: visit every object that carries a range; compare trees without ranges.
import type { PipelineFile, SourceRange } from '../../grammar/ast.js';

/** Every object in the tree that has a `range` (nodes, string parts, fan-outs, `*` indexes). */
export function rangedNodes(file: PipelineFile): { node: Record<string, unknown>; range: SourceRange }[] {
  const out: { node: Record<string, unknown>; range: SourceRange }[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if ('range' in o) out.push({ node: o, range: o['range'] as SourceRange });
    for (const [k, x] of Object.entries(o)) if (k !== 'range') visit(x);
  };
  visit(file.statements);
  return out;
}

/** The tree with every `range` removed (for "same AST modulo ranges"). */
export function withoutRanges(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutRanges);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v as Record<string, unknown>)
      .filter(([k]) => k !== 'range')
      .map(([k, x]) => [k, withoutRanges(x)]),
  );
}

/** The 1-based line and column of an offset, computed the slow obvious way. */
export function naivePosition(source: string, offset: number): { line: number; column: number } {
  const before = source.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - (before.lastIndexOf('\n') + 1) + 1 };
}
