// Read a YAML config into a located tree: every value with the file:line:col it came from, so
// a wrong type can point at the exact YAML text. YAML syntax errors become diagnostics.
// Parses are memoised by file text: a plan that reads one config for many stages (or a test that
// compiles thousands of pipelines) parses it once, and an edit is never missed (file timestamps
// are too coarse to tell two quick writes apart).

import { readFileSync } from 'node:fs';
import { parseDocument, LineCounter, isMap, isSeq, isScalar, isAlias, isPair, type Node } from 'yaml';
import type { Position, SourceRange } from '../../grammar/ast.js';
import type { Diagnostic } from '../../grammar/diagnostic.js';
import type { Value } from '../graph.js';
import type { Located } from './located.js';

export interface YamlConfig {
  /** The top-level map, absent when the file could not be read into one. */
  readonly root?: Located;
  readonly source: string;
  readonly diagnostics: readonly Diagnostic[];
}

const memo = new Map<string, YamlConfig>();

/** Load a YAML config file (absolute path); `displayPath` is what ranges and messages name. */
export function loadYamlFile(path: string, displayPath: string): YamlConfig | undefined {
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const id = `${displayPath}\0${path}`;
  const hit = memo.get(id);
  if (hit && hit.source === source) return hit;
  const result = parseYamlConfig(displayPath, source);
  memo.set(id, result);
  return result;
}

/** Parse YAML text into a located tree (the text need not come from disk). */
export function parseYamlConfig(file: string, source: string): YamlConfig {
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, prettyErrors: false });
  const position = (offset: number): Position => {
    const { line, col } = lines.linePos(offset);
    return { line, column: col, offset };
  };
  const span = (start: number, end: number): SourceRange => ({ file, start: position(start), end: position(end) });

  const diagnostics: Diagnostic[] = [];
  for (const error of doc.errors) {
    diagnostics.push({
      severity: 'error',
      code: 'config-syntax',
      message: `YAML syntax error: ${firstLine(error.message)}`,
      range: span(error.pos[0], Math.max(error.pos[1], error.pos[0])),
    });
  }
  if (diagnostics.length > 0) return { source, diagnostics };

  const contents = doc.contents;
  if (contents === null || (isScalar(contents) && contents.value === null)) {
    // An empty file is an empty config.
    return { source, diagnostics, root: { value: {}, range: span(0, 0), entries: new Map() } };
  }
  if (!isMap(contents)) {
    const [start, end] = contents.range ?? [0, 0];
    diagnostics.push({
      severity: 'error',
      code: 'config-not-a-map',
      message: 'a config file must be a mapping of keys to values',
      range: span(start, end),
    });
    return { source, diagnostics };
  }

  const toLocated = (node: Node | null, fallback: number): Located => {
    const [start, end] = node?.range ?? [fallback, fallback];
    const range = span(start, end);
    if (node === null) return { value: null, range };
    if (isAlias(node)) {
      const resolved = node.resolve(doc);
      return resolved ? { ...toLocated(resolved as Node, start), range } : { value: null, range };
    }
    if (isMap(node)) {
      const entries = new Map<string, Located>();
      const value: { [key: string]: Value } = {};
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const keyNode = pair.key as Node | null;
        const keyText = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
        const keyRange = keyNode?.range ? span(keyNode.range[0], keyNode.range[1]) : range;
        const child = toLocated(pair.value as Node | null, keyNode?.range?.[1] ?? start);
        entries.set(keyText, { ...child, keyRange });
        value[keyText] = child.value;
      }
      return { value, range, entries };
    }
    if (isSeq(node)) {
      const items = node.items.map((item) => toLocated(item as Node | null, start));
      return { value: items.map((i) => i.value), range, items };
    }
    if (isScalar(node)) return { value: scalarValue(node.value), range };
    return { value: null, range };
  };

  return { source, diagnostics, root: toLocated(contents as Node, 0) };
}

/** YAML scalars as config values: dates and bigints (rare) are kept as their text. */
function scalarValue(raw: unknown): Value {
  if (raw === null || raw === undefined) return null;
  if (typeof raw === 'string' || typeof raw === 'boolean') return raw;
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'bigint') return Number(raw);
  return String(raw);
}

const firstLine = (text: string): string => text.split('\n')[0]?.trim() ?? text;
