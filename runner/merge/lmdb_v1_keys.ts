// Every key of a format-1 LMDB (LMDB 0.9, Python lmdb), in key order: a merge needs to list a
// shard's `<name>_shape` keys, as upstream's merge scripts do. The page walk itself is
// LmdbV1Reader.keys (runner/domain/lmdb_v1.ts), the one reader of the format.

import { LmdbV1Reader } from '../domain/lmdb_v1.js';

/** The keys of the main database of a format-1 environment (a folder with data.mdb, or the file). */
export function listV1Keys(path: string): Buffer[] {
  const reader = new LmdbV1Reader(path);
  try {
    return reader.keys();
  } finally {
    reader.close();
  }
}
