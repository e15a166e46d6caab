// LMDB data format 1 — the on-disk format of LMDB 0.9.x, which Python's `lmdb` package and so
// upstream's dataset tools read and write — implemented directly, because the `lmdb` npm package
// (3.x) writes data format 2 and crashes on format-1 files. Two pieces:
//
//   LmdbV1Reader  read-only point lookups in an existing data.mdb (B+tree walk, overflow pages)
//                 and the list of all its keys in key order;
//   LmdbV1Writer  bulk-builds a new data.mdb: values stream to overflow pages as they arrive,
//                 and the sorted leaf and branch pages plus the meta pages are written at the end.
//
// Layout facts (LMDB 0.9, 64-bit, little-endian; 4096-byte pages):
//   page header (16 B): pgno u64 | pad u16 | flags u16 | lower u16, upper u16 (or overflow page count u32)
//   flags: BRANCH 0x01, LEAF 0x02, OVERFLOW 0x04, META 0x08
//   meta (pages 0 and 1, after the header): magic 0xBEEFC0DE u32 | version 1 u32 | address u64 |
//     mapsize u64 | db[FREE] (48 B) | db[MAIN] (48 B) | last_pg u64 | txnid u64; the valid meta with
//     the larger txnid is current. The FREE db's first word holds the page size.
//   db record: pad u32 | flags u16 | depth u16 | branch_pages u64 | leaf_pages u64 |
//     overflow_pages u64 | entries u64 | root u64 (~0 = empty)
//   node (8 B + key + data, 2-byte aligned): lo u16 | hi u16 | flags u16 | ksize u16; in a leaf
//     lo|hi is the data size and flag 0x01 (BIGDATA) means the data is a u64 page number of an
//     overflow run; in a branch lo|hi|flags is the child page number and slot 0's key is empty.
//   page slots: u16 offsets (from the page start) after the header, in key order; nodes grow down
//     from the page end. Keys compare as bytes (memcmp, then shorter first).

import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const PAGE_HEADER = 16;
const NODE_HEADER = 8;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_OVERFLOW = 0x04;
const P_META = 0x08;
const F_BIGDATA = 0x01;
const MAGIC = 0xbeefc0de;
const DATA_VERSION = 1;
const INVALID_PAGE = 0xffffffffffffffffn;
const DEFAULT_PAGE_SIZE = 4096;

export class LmdbV1Error extends Error {
  override readonly name = 'LmdbV1Error';
}

const dataFile = (path: string) => (existsSync(join(path, 'data.mdb')) ? join(path, 'data.mdb') : path);

function compareKeys(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

interface DbRecord {
  readonly depth: number;
  readonly entries: number;
  readonly root: bigint;
}

function readDb(buf: Buffer, at: number): DbRecord {
  return { depth: buf.readUInt16LE(at + 6), entries: Number(buf.readBigUInt64LE(at + 32)), root: buf.readBigUInt64LE(at + 40) };
}

/** Read-only access to a format-1 LMDB environment (a directory with data.mdb, or the file). */
export class LmdbV1Reader {
  readonly pageSize: number;
  readonly entries: number;
  private readonly fd: number;
  private readonly main: DbRecord;
  private readonly fileSize: number;

  constructor(readonly path: string) {
    const file = dataFile(path);
    try {
      this.fd = openSync(file, 'r');
    } catch (error) {
      throw new LmdbV1Error(`cannot open ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    try {
      this.fileSize = fstatSync(this.fd).size;
      const first = this.readAt(0, Math.min(this.fileSize, 256));
      if (first.length < PAGE_HEADER + 160 || first.readUInt32LE(PAGE_HEADER) !== MAGIC) throw new LmdbV1Error(`${file} is not an LMDB file`);
      if (first.readUInt32LE(PAGE_HEADER + 4) !== DATA_VERSION) throw new LmdbV1Error(`${file} is LMDB data format ${first.readUInt32LE(PAGE_HEADER + 4)}, not 1`);
      this.pageSize = first.readUInt32LE(PAGE_HEADER + 24); // db[FREE].pad holds the page size
      if (this.pageSize < 512 || (this.pageSize & (this.pageSize - 1)) !== 0) throw new LmdbV1Error(`${file}: implausible page size ${this.pageSize}`);
      let best: { txnid: bigint; main: DbRecord } | undefined;
      for (const page of [0, 1]) {
        const meta = this.readAt(page * this.pageSize, PAGE_HEADER + 160);
        if (meta.length < PAGE_HEADER + 160) continue;
        if ((meta.readUInt16LE(10) & P_META) === 0 || meta.readUInt32LE(PAGE_HEADER) !== MAGIC || meta.readUInt32LE(PAGE_HEADER + 4) !== DATA_VERSION) continue;
        const txnid = meta.readBigUInt64LE(PAGE_HEADER + 128);
        if (best === undefined || txnid > best.txnid) best = { txnid, main: readDb(meta, PAGE_HEADER + 72) };
      }
      if (best === undefined) throw new LmdbV1Error(`${file}: no valid meta page`);
      this.main = best.main;
      this.entries = best.main.entries;
    } catch (error) {
      closeSync(this.fd);
      throw error;
    }
  }

  private readAt(position: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, out, got, length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    return got === length ? out : out.subarray(0, got);
  }

  private page(pgno: bigint): Buffer {
    const at = Number(pgno) * this.pageSize;
    if (pgno === INVALID_PAGE || at + this.pageSize > this.fileSize) throw new LmdbV1Error(`${this.path}: page ${pgno} is outside the file (corrupt)`);
    const page = this.readAt(at, this.pageSize);
    if (page.readBigUInt64LE(0) !== pgno) throw new LmdbV1Error(`${this.path}: page ${pgno} carries number ${page.readBigUInt64LE(0)} (corrupt)`);
    return page;
  }

  private static slots(page: Buffer): number {
    return (page.readUInt16LE(12) - PAGE_HEADER) >> 1;
  }

  private static nodeKey(page: Buffer, slot: number): { node: number; key: Buffer } {
    const node = page.readUInt16LE(PAGE_HEADER + 2 * slot);
    const ksize = page.readUInt16LE(node + 6);
    return { node, key: page.subarray(node + NODE_HEADER, node + NODE_HEADER + ksize) };
  }

  /** The child page number a branch page's slot points at (48 bits in lo|hi|flags). */
  private static branchChild(page: Buffer, slot: number): bigint {
    const node = page.readUInt16LE(PAGE_HEADER + 2 * slot);
    return BigInt(page.readUInt16LE(node)) | (BigInt(page.readUInt16LE(node + 2)) << 16n) | (BigInt(page.readUInt16LE(node + 4)) << 32n);
  }

  private unexpectedFlags(flags: number): LmdbV1Error {
    return new LmdbV1Error(`${this.path}: unexpected page flags 0x${flags.toString(16)} in the tree (corrupt)`);
  }

  /** Every key of the main database (copies), in key order: a walk of the tree down to its leaves. */
  keys(): Buffer[] {
    const keys: Buffer[] = [];
    const visit = (pgno: bigint, depth: number): void => {
      if (depth >= 64) throw new LmdbV1Error(`${this.path}: tree deeper than 64 levels (corrupt)`);
      const page = this.page(pgno);
      const flags = page.readUInt16LE(10);
      const n = LmdbV1Reader.slots(page);
      if (flags & P_BRANCH) for (let i = 0; i < n; i++) visit(LmdbV1Reader.branchChild(page, i), depth + 1);
      else if (flags & P_LEAF) for (let i = 0; i < n; i++) keys.push(Buffer.from(LmdbV1Reader.nodeKey(page, i).key));
      else throw this.unexpectedFlags(flags);
    };
    if (this.main.root !== INVALID_PAGE) visit(this.main.root, 0);
    return keys;
  }

  /** The value stored under `key` (a copy), or undefined. */
  get(key: string | Uint8Array): Buffer | undefined {
    const k = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    if (this.main.root === INVALID_PAGE) return undefined;
    let page = this.page(this.main.root);
    for (let level = 0; level < 64; level++) {
      const flags = page.readUInt16LE(10);
      const n = LmdbV1Reader.slots(page);
      if (flags & P_BRANCH) {
        // The last slot whose key ≤ k (slot 0's key stands for minus infinity).
        let lo = 1;
        let hi = n - 1;
        let child = 0;
        while (lo <= hi) {
          const mid = (lo + hi) >> 1;
          if (compareKeys(LmdbV1Reader.nodeKey(page, mid).key, k) <= 0) {
            child = mid;
            lo = mid + 1;
          } else hi = mid - 1;
        }
        page = this.page(LmdbV1Reader.branchChild(page, child));
        continue;
      }
      if ((flags & P_LEAF) === 0) throw this.unexpectedFlags(flags);
      let lo = 0;
      let hi = n - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const { node, key: nk } = LmdbV1Reader.nodeKey(page, mid);
        const c = compareKeys(nk, k);
        if (c < 0) lo = mid + 1;
        else if (c > 0) hi = mid - 1;
        else {
          const size = page.readUInt16LE(node) | (page.readUInt16LE(node + 2) << 16);
          const nodeFlags = page.readUInt16LE(node + 4);
          const dataAt = node + NODE_HEADER + nk.length;
          if (nodeFlags & F_BIGDATA) {
            const pgno = page.readBigUInt64LE(dataAt);
            const head = this.page(pgno);
            if ((head.readUInt16LE(10) & P_OVERFLOW) === 0) throw new LmdbV1Error(`${this.path}: value of key ${JSON.stringify(k.toString())} does not point at an overflow page (corrupt)`);
            const at = Number(pgno) * this.pageSize + PAGE_HEADER;
            if (at + size > this.fileSize) throw new LmdbV1Error(`${this.path}: overflow value runs past the end of the file (corrupt)`);
            return this.readAt(at, size);
          }
          if (nodeFlags !== 0) throw new LmdbV1Error(`${this.path}: sub-databases and duplicate keys are not supported (node flags 0x${nodeFlags.toString(16)})`);
          return Buffer.from(page.subarray(dataAt, dataAt + size));
        }
      }
      return undefined;
    }
    throw new LmdbV1Error(`${this.path}: tree deeper than 64 levels (corrupt)`);
  }

  close(): void {
    closeSync(this.fd);
  }
}

interface PendingEntry {
  readonly key: Buffer;
  /** Inline value, or the first page of its overflow run. */
  readonly value?: Buffer;
  readonly overflow?: { readonly pgno: number; readonly size: number };
}

/**
 * Bulk-builds a new format-1 environment in `dir` (absent or empty). Values larger than a node
 * may hold go to overflow pages immediately; keys and small values wait in memory until
 * `finish`, which sorts them, writes leaf and branch pages and then the two meta pages.
 */
export class LmdbV1Writer {
  private readonly fd: number;
  private readonly tempFile: string;
  private readonly finalFile: string;
  private readonly pageSize: number;
  private readonly nodeMax: number;
  private nextPage = 2; // 0 and 1 are the meta pages
  private overflowPages = 0;
  private readonly pending = new Map<string, PendingEntry>();
  private done = false;

  constructor(readonly dir: string, options: { readonly pageSize?: number } = {}) {
    if (existsSync(dir) && readdirSync(dir).length > 0) throw new LmdbV1Error(`${dir} already exists and is not empty`);
    mkdirSync(dir, { recursive: true });
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    // LMDB's own limit (me_nodemax): two nodes must fit a page.
    this.nodeMax = (((this.pageSize - PAGE_HEADER) / 2) & -2) - 2;
    this.finalFile = join(dir, 'data.mdb');
    this.tempFile = join(dir, `data.mdb.tmp-${process.pid}`);
    this.fd = openSync(this.tempFile, 'w');
  }

  private writePages(pgno: number, bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off, pgno * this.pageSize + off);
  }

  /** Stores `value` under `key`; a key given twice keeps the last value. */
  put(key: string | Uint8Array, value: Uint8Array): void {
    if (this.done) throw new LmdbV1Error('put after finish');
    const k = Buffer.from(typeof key === 'string' ? Buffer.from(key, 'utf8') : key);
    if (k.length === 0 || k.length > 511) throw new LmdbV1Error(`key length ${k.length} is outside 1..511`);
    const inlineSize = NODE_HEADER + k.length + value.length;
    if (inlineSize <= this.nodeMax) {
      this.pending.set(k.toString('latin1'), { key: k, value: Buffer.from(value) });
      return;
    }
    const pages = Math.floor((PAGE_HEADER - 1 + value.length) / this.pageSize) + 1;
    const run = Buffer.alloc(pages * this.pageSize);
    run.writeBigUInt64LE(BigInt(this.nextPage), 0);
    run.writeUInt16LE(P_OVERFLOW, 10);
    run.writeUInt32LE(pages, 12);
    run.set(value, PAGE_HEADER);
    this.writePages(this.nextPage, run);
    this.pending.set(k.toString('latin1'), { key: k, overflow: { pgno: this.nextPage, size: value.length } });
    this.nextPage += pages;
    this.overflowPages += pages;
  }

  /** Writes the tree and the meta pages, fsyncs and renames data.mdb into place. */
  finish(): { entries: number; pages: number } {
    if (this.done) throw new LmdbV1Error('finish called twice');
    this.done = true;
    try {
      const sorted = [...this.pending.values()].sort((a, b) => compareKeys(a.key, b.key));
      let leafPages = 0;
      let branchPages = 0;
      let depth = 0;
      let root = INVALID_PAGE;
      if (sorted.length > 0) {
        // Leaves, filled in key order; each level above indexes the first key of each page below.
        let level: { pgno: number; firstKey: Buffer }[] = [];
        let page = this.newPage(P_LEAF);
        for (const e of sorted) {
          const size = NODE_HEADER + e.key.length + (e.overflow ? 8 : e.value!.length);
          if (!this.fits(page, size)) {
            level.push(this.flush(page));
            leafPages++;
            page = this.newPage(P_LEAF);
          }
          const node = this.addNode(page, size);
          page.buf.writeUInt16LE((e.overflow ? e.overflow.size : e.value!.length) & 0xffff, node);
          page.buf.writeUInt16LE((e.overflow ? e.overflow.size : e.value!.length) >>> 16, node + 2);
          page.buf.writeUInt16LE(e.overflow ? F_BIGDATA : 0, node + 4);
          page.buf.writeUInt16LE(e.key.length, node + 6);
          e.key.copy(page.buf, node + NODE_HEADER);
          if (e.overflow) page.buf.writeBigUInt64LE(BigInt(e.overflow.pgno), node + NODE_HEADER + e.key.length);
          else e.value!.copy(page.buf, node + NODE_HEADER + e.key.length);
        }
        level.push(this.flush(page));
        leafPages++;
        depth = 1;
        while (level.length > 1) {
          const above: { pgno: number; firstKey: Buffer }[] = [];
          let branch = this.newPage(P_BRANCH);
          let firstKey: Buffer | undefined;
          for (const child of level) {
            const size = NODE_HEADER + (branch.slots === 0 ? 0 : child.firstKey.length);
            if (!this.fits(branch, size)) {
              above.push({ ...this.flush(branch), firstKey: firstKey! });
              branchPages++;
              branch = this.newPage(P_BRANCH);
            }
            const k = branch.slots === 0 ? Buffer.alloc(0) : child.firstKey;
            if (branch.slots === 0) firstKey = child.firstKey;
            const node = this.addNode(branch, NODE_HEADER + k.length);
            branch.buf.writeUInt16LE(child.pgno & 0xffff, node);
            branch.buf.writeUInt16LE(Math.floor(child.pgno / 0x10000) & 0xffff, node + 2);
            branch.buf.writeUInt16LE(Math.floor(child.pgno / 0x100000000) & 0xffff, node + 4);
            branch.buf.writeUInt16LE(k.length, node + 6);
            k.copy(branch.buf, node + NODE_HEADER);
          }
          above.push({ ...this.flush(branch), firstKey: firstKey! });
          branchPages++;
          level = above;
          depth++;
        }
        root = BigInt(level[0]!.pgno);
      }
      const lastPage = this.nextPage - 1;
      for (const metaPage of [0, 1]) {
        const buf = Buffer.alloc(this.pageSize);
        buf.writeBigUInt64LE(BigInt(metaPage), 0);
        buf.writeUInt16LE(P_META, 10);
        const m = PAGE_HEADER;
        buf.writeUInt32LE(MAGIC, m);
        buf.writeUInt32LE(DATA_VERSION, m + 4);
        // mapsize: the file rounded up to 1 MiB (LMDB grows it on open if needed)
        buf.writeBigUInt64LE(BigInt(Math.ceil(((lastPage + 1) * this.pageSize) / 1048576) * 1048576), m + 16);
        // db[FREE]: page size in pad, INTEGERKEY flag, empty
        buf.writeUInt32LE(this.pageSize, m + 24);
        buf.writeUInt16LE(0x08, m + 28);
        buf.writeBigUInt64LE(INVALID_PAGE, m + 24 + 40);
        // db[MAIN]
        const d = m + 72;
        buf.writeUInt16LE(depth, d + 6);
        buf.writeBigUInt64LE(BigInt(branchPages), d + 8);
        buf.writeBigUInt64LE(BigInt(leafPages), d + 16);
        buf.writeBigUInt64LE(BigInt(this.overflowPages), d + 24);
        buf.writeBigUInt64LE(BigInt(sorted.length), d + 32);
        buf.writeBigUInt64LE(root, d + 40);
        buf.writeBigUInt64LE(BigInt(lastPage), m + 120);
        buf.writeBigUInt64LE(BigInt(metaPage), m + 128); // txnid: page 1 (txn 1) is current
        if (metaPage === 0) buf.writeBigUInt64LE(INVALID_PAGE, d + 40); // txn 0: the empty database
        if (metaPage === 0) buf.fill(0, d + 6, d + 40);
        this.writePages(metaPage, buf);
      }
      fsyncSync(this.fd);
      closeSync(this.fd);
      renameSync(this.tempFile, this.finalFile);
      return { entries: sorted.length, pages: lastPage + 1 };
    } catch (error) {
      this.abort();
      throw error;
    }
  }

  /** Drops the half-built file. */
  abort(): void {
    this.done = true;
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    rmSync(this.tempFile, { force: true });
  }

  private newPage(flags: number): { buf: Buffer; lower: number; upper: number; slots: number } {
    const buf = Buffer.alloc(this.pageSize);
    buf.writeUInt16LE(flags, 10);
    return { buf, lower: PAGE_HEADER, upper: this.pageSize, slots: 0 };
  }

  private fits(page: { lower: number; upper: number }, nodeSize: number): boolean {
    return page.upper - page.lower >= ((nodeSize + 1) & ~1) + 2;
  }

  private addNode(page: { buf: Buffer; lower: number; upper: number; slots: number }, nodeSize: number): number {
    const even = (nodeSize + 1) & ~1;
    page.upper -= even;
    page.buf.writeUInt16LE(page.upper, page.lower);
    page.lower += 2;
    page.slots++;
    return page.upper;
  }

  private flush(page: { buf: Buffer; lower: number; upper: number }): { pgno: number; firstKey: Buffer } {
    const pgno = this.nextPage++;
    page.buf.writeBigUInt64LE(BigInt(pgno), 0);
    page.buf.writeUInt16LE(page.lower, 12);
    page.buf.writeUInt16LE(page.upper, 14);
    const first = page.buf.readUInt16LE(PAGE_HEADER);
    const ksize = page.buf.readUInt16LE(first + 6);
    const firstKey = Buffer.from(page.buf.subarray(first + NODE_HEADER, first + NODE_HEADER + ksize));
    this.writePages(pgno, page.buf);
    return { pgno, firstKey };
  }
}
