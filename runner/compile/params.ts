// Pipeline params: declarations from every file, defaults (which may use other params), and
// `--set name=value` parsed by the declared type.

import { parse as parseYaml } from 'yaml';
import type { ParamDecl } from '../../grammar/ast.js';
import type { Value } from '../graph.js';
import type { ValueType } from '../registry/types.js';
import { typeMismatch } from '../config/types.js';
import { didYouMean, type Diagnostics } from './diagnostics.js';
import { evaluate, type Scope } from './evaluate.js';

const PARAM_TYPES: Readonly<Record<string, ValueType>> = {
  string: { kind: 'string' },
  path: { kind: 'string' },
  int: { kind: 'int' },
  float: { kind: 'number' },
  bool: { kind: 'bool' },
  list: { kind: 'list' },
  map: { kind: 'map' },
};

export const paramValueType = (name: string): ValueType | undefined =>
  Object.hasOwn(PARAM_TYPES, name) ? PARAM_TYPES[name] : undefined;

/** A command-line value as the param's type, or a sentence saying why it is not one. */
export function parseSetValue(text: string, typeName: string): { value: Value } | { problem: string } {
  switch (typeName) {
    case 'int':
      return /^[+-]?\d+$/.test(text.trim()) ? { value: Number(text) } : { problem: 'an integer' };
    case 'float': {
      const n = Number(text);
      return text.trim() !== '' && Number.isFinite(n) ? { value: n } : { problem: 'a number' };
    }
    case 'bool':
      return text === 'true' ? { value: true } : text === 'false' ? { value: false } : { problem: '`true` or `false`' };
    case 'list':
    case 'map': {
      let value: unknown;
      try {
        value = parseYaml(text);
      } catch {
        return { problem: typeName === 'list' ? 'a list like [1, 2]' : 'a map like {a: 1}' };
      }
      const isList = Array.isArray(value);
      const isMap = typeof value === 'object' && value !== null && !isList;
      if (typeName === 'list' ? isList : isMap) return { value: value as Value };
      return { problem: typeName === 'list' ? 'a list like [1, 2]' : 'a map like {a: 1}' };
    }
    default:
      return { value: text };
  }
}

export interface ParamTable {
  readonly values: Map<string, Value>;
  readonly decls: Map<string, ParamDecl>;
}

export function resolveParams(
  decls: readonly ParamDecl[],
  set: Readonly<Record<string, string>>,
  diagnostics: Diagnostics,
): ParamTable {
  const table = new Map<string, ParamDecl>();
  for (const decl of decls) {
    const earlier = table.get(decl.name.name);
    if (earlier) {
      diagnostics.error('duplicate-param', `param \`${decl.name.name}\` is declared twice`, decl.name.range, {
        related: [{ message: 'first declared here', range: earlier.name.range }],
      });
      continue;
    }
    table.set(decl.name.name, decl);
  }

  for (const name of Object.keys(set)) {
    if (!table.has(name)) {
      diagnostics.error('unknown-param', `\`--set ${name}=...\`: the pipeline has no param \`${name}\``, undefined, didYouMean(name, table.keys()));
    }
  }

  const values = new Map<string, Value>();
  const state = new Map<string, 'busy' | 'failed'>();
  const scope: Scope = {
    lookup: (name) => (table.has(name) ? valueOf(name) : undefined),
    declared: (name) => table.has(name),
    names: () => table.keys(),
  };

  function valueOf(name: string): Value | undefined {
    const known = values.get(name);
    if (known !== undefined) return known;
    if (state.get(name) === 'failed') return undefined;
    const decl = table.get(name);
    if (!decl) return undefined;
    if (state.get(name) === 'busy') {
      diagnostics.error('param-cycle', `the default of param \`${name}\` depends on itself`, decl.name.range);
      state.set(name, 'failed');
      return undefined;
    }
    state.set(name, 'busy');
    const value = computeValue(decl);
    if (value === undefined) state.set(name, 'failed');
    else {
      values.set(name, value);
      state.delete(name);
    }
    return value;
  }

  function computeValue(decl: ParamDecl): Value | undefined {
    const name = decl.name.name;
    const type = paramValueType(decl.type.name);
    if (!type) return undefined; // the parser reports unknown types
    const given = set[name];
    if (given !== undefined) {
      const parsed = parseSetValue(given, decl.type.name);
      if ('problem' in parsed) {
        diagnostics.error('bad-set-value', `\`--set ${name}=${given}\`: \`${name}\` is ${/^[aeiou]/.test(decl.type.name) ? 'an' : 'a'} ${decl.type.name} param, so the value must be ${parsed.problem}`, undefined, {
          related: [{ message: `\`${name}\` is declared here`, range: decl.range }],
        });
        return undefined;
      }
      return parsed.value;
    }
    if (!decl.default) {
      diagnostics.error('missing-param-value', `param \`${name}\` has no default and no value`, decl.name.range, {
        help: `pass \`--set ${name}=...\``,
      });
      return undefined;
    }
    const value = evaluate(decl.default, scope, diagnostics);
    if (value === undefined) return undefined;
    const wrong = typeMismatch(value, type);
    if (wrong) {
      diagnostics.error('param-type', `param \`${name}\` is ${/^[aeiou]/.test(decl.type.name) ? 'an' : 'a'} ${decl.type.name}, but its default is ${wrong.actual}`, decl.default.range);
      return undefined;
    }
    return value;
  }

  for (const name of table.keys()) valueOf(name);
  return { values, decls: table };
}
