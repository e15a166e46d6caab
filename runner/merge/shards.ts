// Opening upstream-layout shards for reading without touching them, and reading their shape keys.
// The layout's rules (key names, shape text, the data-format check) come from
// runner/domain/lmdb_layout.ts; this file only adds what a merge needs on top: every `<name>_shape`
// key of a shard, read-only environments, and a fingerprint to notice a shard changed.

import { open } from 'lmdb';
import type { RootDatabase } from 'lmdb';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lmdbDataFormat, parseShape } from '../domain/lmdb_layout.js';

export type ShardDb = RootDatabase<Buffer, string>;

export const dataKey = (name: string, i: number): string => `${name}_${i}_data`;
export const shapeKey = (name: string): string => `${name}_shape`;

/** Open a shard read-only (data.mdb is never written; no file is created or removed). */
export function openShardReadOnly(path: string): ShardDb {
  // noSubdir:false always: lmdb-js treats a path with a dot in its last segment as a file.
  return open<Buffer, string>(path, { encoding: 'binary', readOnly: true, noSubdir: false });
}

/** Open (or create) the environment a merge writes. */
export function openOutput(path: string, mapSize?: number): ShardDb {
  return open<Buffer, string>(path, { encoding: 'binary', noSubdir: false, ...(mapSize !== undefined ? { mapSize } : {}) });
}

/** Every `<name>_shape` key of a shard, parsed: name → shape (first dim is the row count). */
export function readShapes(db: ShardDb): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const key of db.getKeys({ snapshot: false })) {
    if (typeof key !== 'string' || !key.endsWith('_shape')) continue;
    const value = db.getBinary(key);
    if (value === undefined) continue;
    shapes.set(key.slice(0, -'_shape'.length), parseShape(Buffer.from(value).toString('ascii'), key));
  }
  return shapes;
}

/** Why a path cannot be read as a shard here, or undefined when it can. */
export function shardProblem(path: string): string | undefined {
  if (!existsSync(path)) return `shard ${path} does not exist`;
  if (!statSync(path).isDirectory() || !existsSync(join(path, 'data.mdb'))) return `shard ${path} is not an LMDB directory (no data.mdb in it)`;
  const format = lmdbDataFormat(path);
  if (format !== undefined && format !== 2) {
    return `shard ${path} is in LMDB data format ${format} (written by LMDB 0.9, e.g. Python lmdb); the lmdb package here reads format 2 only`;
  }
  return undefined;
}

/** Size and mtime of a shard's data file: a merge resumes only if no shard changed since. */
export function shardFingerprint(path: string): string {
  const s = statSync(join(path, 'data.mdb'));
  return `${path}:${s.size}:${s.mtimeMs}`;
}
