// Canonical JSON: the one text a value hashes as. Object keys are sorted, -0 is 0, and numbers
// print in their shortest round-trip form (so `2e-6`, `0.000002` and `2.0e-06` in a YAML file
// are the same number). Undefined entries are dropped, as JSON does.

import type { Value } from '../graph.js';

export function canonicalJson(value: Value): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`canonicalJson: non-finite number ${value}`);
      return Object.is(value, -0) ? '0' : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${(value as readonly Value[]).map(canonicalJson).join(',')}]`;
  const record = value as { readonly [key: string]: Value | undefined };
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k] as Value)}`).join(',')}}`;
}
