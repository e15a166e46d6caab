// Canonical JSON: the one text a value hashes as. Object keys are sorted, -0 is 0, and numbers
// print in their shortest round-trip form (so `2e-6`, `0.000002` and `2.0e-06` in a YAML file
// are the same number). Undefined entries are dropped, as JSON does. Written as one pass into a
// string array: plans of 100 000 tasks hash every task.

import type { Value } from '../graph.js';

export function canonicalJson(value: Value): string {
  const out: string[] = [];
  write(value, out);
  return out.join('');
}

function write(value: Value | undefined, out: string[]): void {
  if (value === null) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'string':
      out.push(JSON.stringify(value));
      return;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`canonicalJson: non-finite number ${value}`);
      out.push(Object.is(value, -0) ? '0' : JSON.stringify(value));
      return;
  }
  if (Array.isArray(value)) {
    out.push('[');
    const list = value as readonly Value[];
    for (let i = 0; i < list.length; i++) {
      if (i > 0) out.push(',');
      write(list[i], out);
    }
    out.push(']');
    return;
  }
  const record = value as { readonly [key: string]: Value | undefined };
  const keys = Object.keys(record).sort();
  out.push('{');
  let first = true;
  for (const key of keys) {
    const item = record[key];
    if (item === undefined) continue;
    if (!first) out.push(',');
    first = false;
    out.push(JSON.stringify(key), ':');
    write(item, out);
  }
  out.push('}');
}
