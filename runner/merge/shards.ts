// Opening upstream-layout shards for reading without touching them, and reading their shape keys.
// The layout's rules (key names, shape text, the data-format check) come from
// runner/domain/lmdb_layout.ts; this file only adds what a merge needs on top: every `<name>_shape`
// key of a shard, read-only access in either LMDB data format, and a fingerprint to notice a shard
// changed.
//
// Upstream's shards are written by Python lmdb (LMDB 0.9, data format 1), which the lmdb npm
// package cannot open (it writes and reads format 2 and crashes on format 1); those shards are read
// through LmdbV1Reader instead. Shards cfpipe wrote itself (synth, lmdb_build) are format 2 unless
// asked otherwise.

import { open } from 'lmdb';
import type { RootDatabase } from 'lmdb';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lmdbDataFormat, parseShape } from '../domain/lmdb_layout.js';
import { LmdbV1Reader } from '../domain/lmdb_v1.js';
import { listV1Keys } from './lmdb_v1_keys.js';

/** Read access to one shard, whatever its data format. */
export interface ShardDb {
  readonly format: 1 | 2;
  /**
   * The value under `key`. It may be a view of a buffer the next read reuses (lmdb-js's
   * getBinaryFast): copy what must be kept.
   */
  get(key: string): Buffer | undefined;
  /** Every key, as text. */
  keys(): Iterable<string>;
  close(): Promise<void>;
}

export type OutputDb = RootDatabase<Buffer, string>;

export const dataKey = (name: string, i: number): string => `${name}_${i}_data`;
export const shapeKey = (name: string): string => `${name}_shape`;

/** The data format of a shard: 1 (LMDB 0.9 / Python lmdb) or 2 (lmdb-js). */
export function shardFormat(path: string): 1 | 2 {
  return lmdbDataFormat(path) === 1 ? 1 : 2;
}

/** Open a shard read-only (data.mdb is never written; no file is created or removed). */
export function openShardReadOnly(path: string): ShardDb {
  if (shardFormat(path) === 1) {
    const reader = new LmdbV1Reader(path);
    return {
      format: 1,
      get: (key) => reader.get(key),
      keys: () => listV1Keys(path).map((k) => k.toString('utf8')),
      close: async () => reader.close(),
    };
  }
  // noSubdir:false always: lmdb-js treats a path with a dot in its last segment as a file.
  const db = open<Buffer, string>(path, { encoding: 'binary', readOnly: true, noSubdir: false });
  return {
    format: 2,
    get: (key) => db.getBinaryFast(key),
    keys: () => [...db.getKeys({ snapshot: false })].filter((k): k is string => typeof k === 'string'),
    close: () => db.close(),
  };
}

/** Open (or create) the format-2 environment a merge writes. */
export function openOutput(path: string, mapSize?: number): OutputDb {
  return open<Buffer, string>(path, { encoding: 'binary', noSubdir: false, ...(mapSize !== undefined ? { mapSize } : {}) });
}

/**
 * Copy [start, end) of a value. lmdb-js's getBinaryFast result is a view of its shared read
 * buffer (its byteLength is the whole shared buffer), so Buffer.from() on it throws; copy with
 * explicit bounds instead.
 */
export function copyBytes(value: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  value.copy(out, 0, start, end);
  return out;
}

/** Every `<name>_shape` key of a shard, parsed: name → shape (first dim is the row count). */
export function readShapes(db: ShardDb): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const key of db.keys()) {
    if (!key.endsWith('_shape')) continue;
    const value = db.get(key);
    if (value === undefined) continue;
    shapes.set(key.slice(0, -'_shape'.length), parseShape(copyBytes(value, 0, value.length).toString('ascii'), key));
  }
  return shapes;
}

/** Why a path cannot be read as a shard here, or undefined when it can. */
export function shardProblem(path: string): string | undefined {
  if (!existsSync(path)) return `shard ${path} does not exist`;
  if (!statSync(path).isDirectory() || !existsSync(join(path, 'data.mdb'))) return `shard ${path} is not an LMDB directory (no data.mdb in it)`;
  const format = lmdbDataFormat(path);
  if (format !== undefined && format !== 1 && format !== 2) {
    return `shard ${path} is in LMDB data format ${format}; formats 1 (LMDB 0.9, Python lmdb) and 2 (lmdb-js) are read`;
  }
  return undefined;
}

/** Size and mtime of a shard's data file: a merge resumes only if no shard changed since. */
export function shardFingerprint(path: string): string {
  const s = statSync(join(path, 'data.mdb'));
  return `${path}:${s.size}:${s.mtimeMs}`;
}
