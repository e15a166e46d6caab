// Every key of a format-1 LMDB (LMDB 0.9, Python lmdb), in key order: a walk of the main B+tree
// down to its leaves. LmdbV1Reader (runner/domain/lmdb_v1.ts) answers point lookups; a merge also
// needs to list a shard's `<name>_shape` keys, as upstream's merge scripts do. The page layout is
// the one documented at the top of runner/domain/lmdb_v1.ts.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const PAGE_HEADER = 16;
const NODE_HEADER = 8;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_META = 0x08;
const MAGIC = 0xbeefc0de;
const INVALID_PAGE = 0xffffffffffffffffn;

function readAt(fd: number, position: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, out, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? out : out.subarray(0, got);
}

/** The keys of the main database of a format-1 environment (a folder with data.mdb, or the file). */
export function listV1Keys(path: string): Buffer[] {
  const file = existsSync(join(path, 'data.mdb')) ? join(path, 'data.mdb') : path;
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = readAt(fd, 0, PAGE_HEADER + 160);
    if (head.length < PAGE_HEADER + 160 || head.readUInt32LE(PAGE_HEADER) !== MAGIC || head.readUInt32LE(PAGE_HEADER + 4) !== 1) {
      throw new Error(`${file} is not an LMDB data format 1 file`);
    }
    const pageSize = head.readUInt32LE(PAGE_HEADER + 24);
    let root = INVALID_PAGE;
    let best = -1n;
    for (const pg of [0, 1]) {
      const meta = readAt(fd, pg * pageSize, PAGE_HEADER + 160);
      if (meta.length < PAGE_HEADER + 160 || (meta.readUInt16LE(10) & P_META) === 0 || meta.readUInt32LE(PAGE_HEADER) !== MAGIC) continue;
      const txnid = meta.readBigUInt64LE(PAGE_HEADER + 128);
      if (txnid > best) {
        best = txnid;
        root = meta.readBigUInt64LE(PAGE_HEADER + 72 + 40);
      }
    }
    if (best < 0n) throw new Error(`${file}: no valid meta page`);
    const keys: Buffer[] = [];
    const visit = (pgno: bigint, depth: number): void => {
      if (depth > 64) throw new Error(`${file}: tree deeper than 64 levels (corrupt)`);
      const at = Number(pgno) * pageSize;
      if (at + pageSize > size) throw new Error(`${file}: page ${pgno} is outside the file (corrupt)`);
      const page = readAt(fd, at, pageSize);
      const flags = page.readUInt16LE(10);
      const slots = (page.readUInt16LE(12) - PAGE_HEADER) >> 1;
      for (let i = 0; i < slots; i++) {
        const node = page.readUInt16LE(PAGE_HEADER + 2 * i);
        if (flags & P_BRANCH) {
          const child = BigInt(page.readUInt16LE(node)) | (BigInt(page.readUInt16LE(node + 2)) << 16n) | (BigInt(page.readUInt16LE(node + 4)) << 32n);
          visit(child, depth + 1);
        } else if (flags & P_LEAF) {
          const ksize = page.readUInt16LE(node + 6);
          keys.push(Buffer.from(page.subarray(node + NODE_HEADER, node + NODE_HEADER + ksize)));
        } else {
          throw new Error(`${file}: unexpected page flags 0x${flags.toString(16)} in the tree (corrupt)`);
        }
      }
    };
    if (root !== INVALID_PAGE) visit(root, 0);
    return keys;
  } finally {
    closeSync(fd);
  }
}
