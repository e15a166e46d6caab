// Expressions → resolved values, in a scope of params and (inside a fan-out stage) the fan-out
// variable. References to outputs are not values: stages resolve them as inputs before this.

import type { Expression, MapLiteral, SourceRange } from '../../grammar/ast.js';
import type { Value } from '../graph.js';
import type { Located } from '../config/located.js';
import { didYouMean, type Diagnostics } from './diagnostics.js';

export interface Scope {
  /** The value of a name; undefined when unknown or when its own definition failed (reported there). */
  lookup(name: string): Value | undefined;
  /** Whether the name is declared at all (a failed param is declared: no second diagnostic). */
  declared(name: string): boolean;
  names(): Iterable<string>;
}

/** Longest list a range literal may produce (a typo like 0..1e9 must not eat the memory). */
const MAX_RANGE = 1_000_000;

export function evaluate(expr: Expression, scope: Scope, diagnostics: Diagnostics): Value | undefined {
  switch (expr.kind) {
    case 'Number':
    case 'Boolean':
      return expr.value;
    case 'String': {
      let out = '';
      for (const part of expr.parts) {
        if (part.kind === 'Text') {
          out += part.text;
          continue;
        }
        if (part.expr.kind === 'OutputRef') {
          diagnostics.error('reference-in-string', 'an output reference cannot be put inside a string', part.expr.range, {
            help: 'make it an input of the stage instead (`name = stage.output`)',
          });
          return undefined;
        }
        const value = evaluate(part.expr, scope, diagnostics);
        if (value === undefined) return undefined;
        if (typeof value === 'object' && value !== null) {
          diagnostics.error('interpolate-non-scalar', `only strings, numbers and booleans can be put inside a string, not ${Array.isArray(value) ? 'a list' : 'a map'}`, part.expr.range);
          return undefined;
        }
        out += String(value);
      }
      return out;
    }
    case 'List': {
      const items: Value[] = [];
      let ok = true;
      for (const item of expr.items) {
        const value = evaluate(item, scope, diagnostics);
        if (value === undefined) ok = false;
        else items.push(value);
      }
      return ok ? items : undefined;
    }
    case 'Map': {
      const out: { [key: string]: Value } = {};
      let ok = true;
      for (const entry of expr.entries) {
        const key = mapKey(entry.key, scope, diagnostics);
        const value = evaluate(entry.value, scope, diagnostics);
        if (key === undefined || value === undefined) ok = false;
        else out[key] = value;
      }
      return ok ? out : undefined;
    }
    case 'Range':
      return evaluateRange(expr.low, expr.high, expr.range, scope, diagnostics);
    case 'Name': {
      const value = scope.lookup(expr.name.name);
      if (value === undefined && !scope.declared(expr.name.name)) {
        diagnostics.error('unknown-name', `unknown name \`${expr.name.name}\``, expr.name.range, didYouMean(expr.name.name, scope.names()));
      }
      return value;
    }
    case 'OutputRef':
      diagnostics.error('reference-not-allowed', 'an output reference can only be the value of a stage input', expr.range);
      return undefined;
  }
}

function mapKey(key: MapLiteral['entries'][number]['key'], scope: Scope, diagnostics: Diagnostics): string | undefined {
  if (key.kind === 'Identifier') return key.name;
  const value = evaluate(key, scope, diagnostics);
  return typeof value === 'string' ? value : undefined;
}

function evaluateRange(low: Expression, high: Expression, range: SourceRange, scope: Scope, diagnostics: Diagnostics): Value[] | undefined {
  const lo = evaluate(low, scope, diagnostics);
  const hi = evaluate(high, scope, diagnostics);
  if (lo === undefined || hi === undefined) return undefined;
  if (typeof lo !== 'number' || typeof hi !== 'number' || !Number.isInteger(lo) || !Number.isInteger(hi)) {
    diagnostics.error('range-type', 'both ends of a range must be integers', range);
    return undefined;
  }
  if (hi < lo) {
    diagnostics.error('range-empty', `the range ${lo}..${hi} runs backwards (the end is exclusive)`, range);
    return undefined;
  }
  if (hi - lo > MAX_RANGE) {
    diagnostics.error('range-too-large', `the range ${lo}..${hi} has ${hi - lo} elements; at most ${MAX_RANGE} are allowed`, range);
    return undefined;
  }
  const out: number[] = [];
  for (let i = lo; i < hi; i++) out.push(i);
  return out;
}

/** Evaluate a value keeping the range of every map entry and list item (for config overrides). */
export function evaluateLocated(expr: Expression, scope: Scope, diagnostics: Diagnostics): Located | undefined {
  if (expr.kind === 'Map') {
    const entries = new Map<string, Located>();
    const value: { [key: string]: Value } = {};
    for (const entry of expr.entries) {
      const key = mapKey(entry.key, scope, diagnostics);
      const child = evaluateLocated(entry.value, scope, diagnostics);
      if (key === undefined || child === undefined) return undefined;
      entries.set(key, { ...child, keyRange: entry.key.range });
      value[key] = child.value;
    }
    return { value, range: expr.range, entries };
  }
  if (expr.kind === 'List') {
    const items: Located[] = [];
    for (const item of expr.items) {
      const child = evaluateLocated(item, scope, diagnostics);
      if (child === undefined) return undefined;
      items.push(child);
    }
    return { value: items.map((i) => i.value), range: expr.range, items };
  }
  const value = evaluate(expr, scope, diagnostics);
  return value === undefined ? undefined : { value, range: expr.range };
}
