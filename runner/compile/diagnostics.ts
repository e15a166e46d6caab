// Small helpers for the compiler's diagnostics: a collector, did-you-mean, and the final order.

import type { SourceRange } from '../../grammar/ast.js';
import type { Diagnostic } from '../../grammar/diagnostic.js';
import { suggest } from '../../grammar/suggest.js';

export const didYouMean = (name: string, candidates: Iterable<string>): { help?: string } => {
  const best = suggest(name, candidates);
  return best === undefined ? {} : { help: `did you mean \`${best}\`?` };
};

export class Diagnostics {
  readonly list: Diagnostic[] = [];

  add(d: Diagnostic): void {
    this.list.push(d);
  }

  error(code: string, message: string, range: SourceRange | undefined, extra: Partial<Diagnostic> = {}): void {
    this.list.push({ severity: 'error', code, message, ...(range ? { range } : {}), ...extra });
  }

  warning(code: string, message: string, range: SourceRange | undefined, extra: Partial<Diagnostic> = {}): void {
    this.list.push({ severity: 'warning', code, message, ...(range ? { range } : {}), ...extra });
  }

  addAll(ds: readonly Diagnostic[]): void {
    for (const d of ds) this.list.push(d);
  }

  /**
   * Each problem once (a config shared by many stages or fan-out members is checked once per
   * use), ordered by file and position, place-less ones (command-line problems) first.
   */
  finish(): Diagnostic[] {
    const seen = new Set<string>();
    const unique: Diagnostic[] = [];
    for (const d of this.list) {
      const id = `${d.severity}|${d.code}|${d.message}|${d.range?.file}|${d.range?.start.offset}`;
      if (seen.has(id)) continue;
      seen.add(id);
      unique.push(d);
    }
    const order = (d: Diagnostic): [string, number] => [d.range?.file ?? '', d.range?.start.offset ?? -1];
    return unique
      .map((d, i) => ({ d, i }))
      .sort((a, b) => {
        const [fa, oa] = order(a.d);
        const [fb, ob] = order(b.d);
        if (fa !== fb) return fa < fb ? -1 : 1;
        return oa - ob || a.i - b.i;
      })
      .map((x) => x.d);
  }
}
