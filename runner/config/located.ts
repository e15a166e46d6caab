// A config value together with where it was written: a YAML file or a stage's `overrides` map
// in a .cf file. Type errors point at these ranges; merging keeps the plain values.

import type { SourceRange } from '../../grammar/ast.js';
import type { Value } from '../graph.js';

export interface Located {
  readonly value: Value;
  /** The value's text. */
  readonly range: SourceRange;
  /** The key's text, for entries of a map. */
  readonly keyRange?: SourceRange;
  /** Entries of a map, in written order. */
  readonly entries?: ReadonlyMap<string, Located>;
  /** Items of a list. */
  readonly items?: readonly Located[];
}
