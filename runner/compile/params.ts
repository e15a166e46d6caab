// Pipeline params: declarations from every file, defaults (which may use other params),
// `--params FILE` values (typed by YAML) and `--set name=value` (parsed by the declared type),
// both checked against the declared type; `--set` wins over the files, a later file over an earlier.

import { parse as parseYaml } from 'yaml';
import type { ParamDecl } from '../../grammar/ast.js';
import type { Value } from '../graph.js';
import type { ValueType } from '../registry/types.js';
import { describeValue, typeMismatch } from '../config/types.js';
import { didYouMean, type Diagnostics } from './diagnostics.js';
import { evaluate, type Scope } from './evaluate.js';
import type { ParamFileEntry } from './param-files.js';

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

/** What a value of each param type must be, as the end of a sentence. */
const EXPECTED: Readonly<Record<string, string>> = {
  int: 'an integer',
  float: 'a number',
  bool: '`true` or `false`',
  list: 'a list like [1, 2]',
  map: 'a map like {a: 1}',
};

/** "an int param", "a string param". */
const aParam = (typeName: string): string => `${/^[aeiou]/.test(typeName) ? 'an' : 'a'} ${typeName} param`;

/** Whether a typed value is one of each param type (string and path: a string). */
const FITS: Readonly<Record<string, (v: Value) => boolean>> = {
  int: (v) => typeof v === 'number' && Number.isInteger(v),
  float: (v) => typeof v === 'number' && Number.isFinite(v),
  bool: (v) => typeof v === 'boolean',
  list: Array.isArray,
  map: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
};

/** A typed value (from YAML) as the param's type, or what it must be instead. */
export function checkParamValue(value: Value, typeName: string): { value: Value } | { problem: string } {
  const fit = Object.hasOwn(FITS, typeName) ? FITS[typeName]! : (v: Value) => typeof v === 'string';
  return fit(value) ? { value } : { problem: EXPECTED[typeName] ?? 'a string' };
}

/** A command-line value as the param's type, or a sentence saying why it is not one. */
export function parseSetValue(text: string, typeName: string): { value: Value } | { problem: string } {
  switch (typeName) {
    case 'int':
      return /^[+-]?\d+$/.test(text.trim()) ? { value: Number(text) } : { problem: EXPECTED.int! };
    case 'float': {
      const n = Number(text);
      return text.trim() !== '' && Number.isFinite(n) ? { value: n } : { problem: EXPECTED.float! };
    }
    case 'bool':
      return text === 'true' ? { value: true } : text === 'false' ? { value: false } : { problem: EXPECTED.bool! };
    case 'list':
    case 'map': {
      try {
        return checkParamValue(parseYaml(text) as Value, typeName);
      } catch {
        return { problem: EXPECTED[typeName]! };
      }
    }
    default:
      return { value: text };
  }
}

/** YAML float syntax: `3.0` and `1e3` are numbers that happen to be whole, not YAML integers. */
const YAML_FLOAT = /^[-+]?(\.\d+|\d+\.\d*|\d+(\.\d*)?[eE][-+]?\d+)$/;

/** An example line of a params file for a param of this type (a number or boolean given to a string param, quoted). */
function exampleLine(name: string, typeName: string, value: Value, written: string): string {
  const examples: Readonly<Record<string, string>> = { int: '3', float: '0.5', bool: 'true', list: '[1, 2]', map: '{a: 1}' };
  const scalar = typeof value === 'number' || typeof value === 'boolean';
  return `${name}: ${examples[typeName] ?? JSON.stringify(scalar ? written : 'text')}`;
}

/** The values of the params files, checked against the declarations; later entries win. */
function fileValues(entries: readonly ParamFileEntry[], table: ReadonlyMap<string, ParamDecl>, diagnostics: Diagnostics): Map<string, Value | undefined> {
  const out = new Map<string, Value | undefined>();
  for (const { name, located, text } of entries) {
    const decl = table.get(name);
    if (!decl) {
      const names = [...table.keys()];
      const hint = didYouMean(name, names);
      diagnostics.error('unknown-param', `the pipeline has no param \`${name}\``, located.keyRange, hint.help ? hint : {
        help: names.length > 0 ? `its params are ${names.map((n) => `\`${n}\``).join(', ')}` : 'the pipeline declares no params',
      });
      continue;
    }
    const typeName = decl.type.name;
    if (!paramValueType(typeName)) continue; // the parser reports unknown types
    const float = typeof located.value === 'number' && YAML_FLOAT.test(text);
    const checked = float && typeName === 'int' ? { problem: EXPECTED.int! } : checkParamValue(located.value, typeName);
    if ('problem' in checked) {
      const actual = float ? `\`${text}\` (a YAML float)` : describeValue(located.value);
      diagnostics.error('bad-param-value', `\`${name}\` is ${aParam(typeName)}, so its value must be ${checked.problem}, not ${actual}`, located.range, {
        help: `for example \`${exampleLine(name, typeName, located.value, text)}\``,
        related: [{ message: `\`${name}\` is declared here`, range: decl.range }],
      });
      out.set(name, undefined);
      continue;
    }
    out.set(name, checked.value);
  }
  return out;
}

export interface ParamTable {
  readonly values: Map<string, Value>;
  readonly decls: Map<string, ParamDecl>;
}

export function resolveParams(
  decls: readonly ParamDecl[],
  set: Readonly<Record<string, string>>,
  diagnostics: Diagnostics,
  files: readonly ParamFileEntry[] = [],
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

  const fromFiles = fileValues(files, table, diagnostics);
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
        diagnostics.error('bad-set-value', `\`--set ${name}=${given}\`: \`${name}\` is ${aParam(decl.type.name)}, so the value must be ${parsed.problem}`, undefined, {
          related: [{ message: `\`${name}\` is declared here`, range: decl.range }],
        });
        return undefined;
      }
      return parsed.value;
    }
    // A file value that was wrong is reported already; the default does not stand in for it.
    if (fromFiles.has(name)) return fromFiles.get(name);
    if (!decl.default) {
      diagnostics.error('missing-param-value', `param \`${name}\` has no default and no value`, decl.name.range, {
        help: `pass \`--set ${name}=...\` or put \`${name}: ...\` in a \`--params\` file`,
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
