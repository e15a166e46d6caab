// Content digests of files and directory trees, memoised by (device, inode, size, mtime) so an
// unchanged 100 GB file is never read twice. A directory's digest is a hash over its sorted
// entries (name, type, digest of each file or subtree); symlinks are hashed by their target text.
// An LMDB environment's lock file is left out: it holds the reader table, not data, and every
// reader (even read-only) rewrites it, so hashing it would make any dataset that a later task
// reads look modified.

import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readlinkSync, statSync, type BigIntStats } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { MemoRecord } from './records.js';
import type { Store } from './store.js';

const memoKey = (st: BigIntStats): string => `${st.dev}:${st.ino}`;

/** `lock.mdb` beside `data.mdb`, or `NAME-lock` beside an LMDB file `NAME` (no-subdir layout). */
export function isLmdbLockFile(dir: string, name: string): boolean {
  if (name === 'lock.mdb') return existsSync(join(dir, 'data.mdb'));
  return name.endsWith('-lock') && existsSync(join(dir, name.slice(0, -'-lock'.length)));
}

/** The memoised digest of a file if its (dev, ino, size, mtime) still match, else undefined. */
export function memoDigest(store: Store, st: BigIntStats): string | undefined {
  const memo = store.memo.get(memoKey(st));
  if (memo === undefined || memo.size !== Number(st.size) || memo.mtimeNs !== String(st.mtimeNs)) return undefined;
  return memo.digest;
}

export function rememberDigest(store: Store, st: BigIntStats, digest: string): void {
  const record: MemoRecord = { size: Number(st.size), mtimeNs: String(st.mtimeNs), digest };
  void store.memo.put(memoKey(st), record);
}

/** Hashes a file by reading it; with `sync`, fsyncs it in the same pass (used when publishing). */
export async function hashFile(path: string, sync = false): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
    if (sync) await handle.sync();
    return `sha256:${hash.digest('hex')}`;
  } finally {
    await handle.close();
  }
}

export interface DigestResult {
  readonly digest: string;
  readonly size: number;
}

/** The digest of a file or tree, using and refreshing the memo; `sync` fsyncs every file read. */
export async function digestPath(store: Store, path: string, sync = false): Promise<DigestResult> {
  const st = lstatSync(path, { bigint: true });
  if (st.isSymbolicLink()) {
    return { digest: `sha256:${createHash('sha256').update('link\0').update(readlinkSync(path)).digest('hex')}`, size: 0 };
  }
  if (st.isDirectory()) {
    const hash = createHash('sha256').update('tree\0');
    let size = 0;
    for (const name of readdirSync(path).sort()) {
      if (isLmdbLockFile(path, name)) continue;
      const child = await digestPath(store, join(path, name), sync);
      hash.update(`${name}\0${child.digest}\n`);
      size += child.size;
    }
    if (sync) {
      const handle = await open(path, 'r');
      await handle.sync().finally(() => handle.close());
    }
    return { digest: `sha256:${hash.digest('hex')}`, size };
  }
  const known = memoDigest(store, st);
  if (known !== undefined && !sync) return { digest: known, size: Number(st.size) };
  const digest = await hashFile(path, sync);
  // Re-stat: the memo must describe the file as it was hashed (a writer may still hold it).
  const after = statSync(path, { bigint: true });
  if (after.mtimeNs === st.mtimeNs && after.size === st.size) rememberDigest(store, after, digest);
  return { digest, size: Number(st.size) };
}

/**
 * Checks a path against a recorded digest without reading it when the memo vouches for it.
 * Returns 'ok', 'missing' or 'changed'.
 */
export async function verifyPath(store: Store, path: string, expected: string): Promise<'ok' | 'missing' | 'changed'> {
  let st: BigIntStats;
  try {
    st = lstatSync(path, { bigint: true });
  } catch {
    return 'missing';
  }
  if (st.isFile()) {
    const known = memoDigest(store, st);
    if (known !== undefined) return known === expected ? 'ok' : 'changed';
  }
  const { digest } = await digestPath(store, path);
  return digest === expected ? 'ok' : 'changed';
}
