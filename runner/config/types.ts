// Checking a value against a registry type, with messages that name both sides.

import type { Value } from '../graph.js';
import type { ValueType } from '../registry/types.js';

const isMap = (v: Value): v is { readonly [key: string]: Value } => typeof v === 'object' && v !== null && !Array.isArray(v);

export function describeType(type: ValueType): string {
  switch (type.kind) {
    case 'string':
      return type.oneOf ? `one of ${type.oneOf.map((s) => `"${s}"`).join(', ')}` : 'a string';
    case 'int':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'bool':
      return 'true or false';
    case 'list': {
      const items = type.items ? ` of ${plural(describeType(type.items))}` : '';
      return type.length !== undefined ? `a list of ${type.length}${items.replace(/^ of/, '')}` : `a list${items}`;
    }
    case 'map':
      return 'a mapping';
    case 'any':
      return 'any value';
  }
}

const plural = (text: string): string =>
  text
    .replace(/^an integer$/, 'integers')
    .replace(/^a number$/, 'numbers')
    .replace(/^a string$/, 'strings')
    .replace(/^true or false$/, 'booleans')
    .replace(/^a mapping$/, 'mappings');

export function describeValue(value: Value): string {
  if (value === null) return 'empty (null)';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  if (typeof value === 'boolean') return `the boolean ${value}`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  return 'a mapping';
}

/** Undefined when `value` has `type`; else the path inside the value that is wrong ('' = the value itself). */
export function typeMismatch(value: Value, type: ValueType): { path: string; expected: string; actual: string } | undefined {
  const fail = (path = '', t: ValueType = type, v: Value = value) => ({ path, expected: describeType(t), actual: describeValue(v) });
  switch (type.kind) {
    case 'any':
      return undefined;
    case 'string':
      if (typeof value !== 'string') return fail();
      return type.oneOf && !type.oneOf.includes(value) ? fail() : undefined;
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) ? undefined : fail();
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) ? undefined : fail();
    case 'bool':
      return typeof value === 'boolean' ? undefined : fail();
    case 'map':
      return isMap(value) ? undefined : fail();
    case 'list': {
      if (!Array.isArray(value)) return fail();
      const list = value as readonly Value[];
      if (type.length !== undefined && list.length !== type.length) return fail();
      if (type.items) {
        for (let i = 0; i < list.length; i++) {
          const inner = typeMismatch(list[i] ?? null, type.items);
          if (inner) return { ...inner, path: `[${i}]${inner.path}` };
        }
      }
      return undefined;
    }
  }
}
