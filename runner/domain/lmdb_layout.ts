// Upstream's latent LMDB layout (spec §1.4), so datasets made here open with upstream's
// LatentLMDBDataset / ODERegressionLMDBDataset and theirs open here:
//
//   latents_<i>_data   raw little-endian float16 bytes of row i, C-contiguous, no header
//   prompts_<i>_data   UTF-8 prompt of row i
//   latents_shape      ASCII "N S F C H W" (e.g. "6000 6 21 16 60 104"; clean sets use S = 1)
//   prompts_shape      ASCII "N"
//
// One environment is a directory (data.mdb, lock.mdb). Values are opened with `encoding:
// 'binary'` (raw bytes in, Buffers out); keys are plain strings, which lmdb-js's default key
// encoding stores as their UTF-8 bytes — exactly the keys Python's lmdb writes.
//
// Two on-disk formats: lmdb-js 3.x (the `lmdb` package) reads and writes LMDB data format 2;
// LMDB 0.9 — Python's `lmdb`, so upstream's tools — only format 1, and lmdb-js crashes on
// format-1 files. The reader therefore checks the format first and reads format-1 sets with
// lmdb_v1.ts; the writer writes format 2 by default (what the rest of cfpipe reads) and format
// 1 on request (`format: 1`), for datasets that upstream's Python code must open.

import { open, type RootDatabase } from 'lmdb';
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bytesLEToF16, f16ToBytesLE, f16ToF32, f32ToF16 } from './float16.js';
import { LmdbV1Reader, LmdbV1Writer } from './lmdb_v1.js';

/** A dataset that does not follow the layout (or a writer misuse); the message says what is wrong. */
export class LmdbLayoutError extends Error {
  override readonly name = 'LmdbLayoutError';
}

const latentKey = (i: number) => `latents_${i}_data`;
const promptKey = (i: number) => `prompts_${i}_data`;
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export interface LatentLmdbWriterOptions {
  /** Shape of one row: [S, F, C, H, W] (S = 1 for clean latents, 6 for ODE trajectories). */
  readonly rowShape: readonly number[];
  /** Rows per write transaction (upstream copies in transactions of 512). */
  readonly batchRows?: number;
  /** Also commit once this many bytes are pending, so memory stays bounded for big rows. */
  readonly batchBytes?: number;
  /** LMDB data format: 2 (lmdb-js, default) or 1 (LMDB 0.9 / Python lmdb, what upstream reads). */
  readonly format?: 1 | 2;
}

/** Where committed batches go: an lmdb-js environment (format 2) or a bulk format-1 build. */
interface WriteBackend {
  commit(puts: readonly (readonly [string, Buffer])[]): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

function lmdbJsBackend(path: string): WriteBackend {
  const db = open<Buffer, string>(path, { encoding: 'binary' });
  return {
    async commit(puts) {
      await db.transaction(() => {
        for (const [k, v] of puts) void db.put(k, v);
      });
    },
    async finish() {
      await db.flushed;
      await db.close();
    },
    async abort() {
      await db.close();
    },
  };
}

function v1Backend(path: string): WriteBackend {
  const writer = new LmdbV1Writer(path);
  return {
    async commit(puts) {
      for (const [k, v] of puts) writer.put(k, v);
    },
    async finish() {
      writer.finish();
    },
    async abort() {
      writer.abort();
    },
  };
}

/**
 * Streams rows into a new LMDB. Rows are buffered up to one batch and committed in one write
 * transaction; `append` resolves after any commit it triggered, so a caller that awaits it
 * never holds more than one batch in memory. The shape keys are written last, by `finish`, so a
 * reader of a half-written set finds no `latents_shape` rather than a wrong count.
 */
export class LatentLmdbWriter {
  readonly rowShape: readonly number[];
  private readonly rowValues: number;
  private readonly backend: WriteBackend;
  private readonly batchRows: number;
  private readonly batchBytes: number;
  private pending: { index: number; bytes: Uint8Array; prompt: string }[] = [];
  private pendingBytes = 0;
  private count = 0;
  private closed = false;

  private constructor(path: string, options: LatentLmdbWriterOptions) {
    if (options.rowShape.length !== 5 || !options.rowShape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new LmdbLayoutError(`row shape must be 5 positive integers [S, F, C, H, W], got [${options.rowShape.join(', ')}]`);
    }
    this.rowShape = [...options.rowShape];
    this.rowValues = numel(options.rowShape);
    this.batchRows = options.batchRows ?? 512;
    this.batchBytes = options.batchBytes ?? 64 * 1024 * 1024;
    this.backend = options.format === 1 ? v1Backend(path) : lmdbJsBackend(path);
  }

  /** Creates the dataset at `path`, which must be absent or an empty directory (as upstream requires). */
  static create(path: string, options: LatentLmdbWriterOptions): LatentLmdbWriter {
    if (existsSync(path) && readdirSync(path).length > 0) throw new LmdbLayoutError(`${path} already exists and is not empty`);
    return new LatentLmdbWriter(path, options);
  }

  get rows(): number {
    return this.count + this.pending.length;
  }

  /** Adds one row: float32 values, or float16 bits (Uint16Array) stored as they are. */
  async append(row: Float32Array | Uint16Array, prompt: string): Promise<void> {
    if (this.closed) throw new LmdbLayoutError('append after finish');
    if (row.length !== this.rowValues) {
      throw new LmdbLayoutError(`row ${this.rows} has ${row.length} values; shape [${this.rowShape.join(', ')}] needs ${this.rowValues}`);
    }
    const half = row instanceof Uint16Array ? row : f32ToF16(row);
    const bytes = f16ToBytesLE(half);
    // A row handed in as float16 may be the caller's buffer: keep our own copy until commit.
    const owned = row instanceof Uint16Array ? bytes.slice() : bytes;
    this.pending.push({ index: this.rows, bytes: owned, prompt });
    this.pendingBytes += owned.byteLength;
    if (this.pending.length >= this.batchRows || this.pendingBytes >= this.batchBytes) await this.commit();
  }

  private async commit(): Promise<void> {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.pendingBytes = 0;
    await this.backend.commit(
      batch.flatMap(({ index, bytes, prompt }) => [
        [latentKey(index), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)] as const,
        [promptKey(index), Buffer.from(prompt, 'utf8')] as const,
      ]),
    );
    this.count += batch.length;
  }

  /** Commits the rest, writes the shape keys, flushes to disk and closes. Returns N. */
  async finish(): Promise<number> {
    if (this.closed) throw new LmdbLayoutError('finish called twice');
    await this.commit();
    const n = this.count;
    await this.backend.commit([
      ['latents_shape', Buffer.from([n, ...this.rowShape].join(' '), 'ascii')],
      ['prompts_shape', Buffer.from(String(n), 'ascii')],
    ]);
    this.closed = true;
    await this.backend.finish();
    return n;
  }

  /** Closes without writing the shape keys (the set stays unreadable, as intended for a failed build). */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    await this.backend.abort();
  }
}

const LMDB_MAGIC = 0xbeefc0de;

/**
 * The data format version of an LMDB environment (1: LMDB 0.9 / Python lmdb; 2: lmdb-js 3.x),
 * read from the first meta page: the magic sits after the page header, which is 16 bytes in
 * format 1 and 24 in format 2. Undefined when there is no data file or no magic.
 */
export function lmdbDataFormat(path: string): number | undefined {
  const file = statSync(path).isDirectory() ? join(path, 'data.mdb') : path;
  if (!existsSync(file)) return undefined;
  const head = Buffer.alloc(64);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  for (const offset of [16, 24]) {
    if (head.readUInt32LE(offset) === LMDB_MAGIC) return head.readUInt32LE(offset + 4);
  }
  return undefined;
}

/** Parses an ASCII shape value: decimal integers separated by whitespace. */
export function parseShape(text: string, key: string): number[] {
  const parts = text.trim().split(/\s+/);
  const dims = parts.map(Number);
  if (parts[0] === '' || !dims.every((d) => Number.isInteger(d) && d >= 0)) throw new LmdbLayoutError(`\`${key}\` is not a list of integers: ${JSON.stringify(text)}`);
  return dims;
}

/**
 * Reads an upstream-layout LMDB. Like upstream's readers, a row is reshaped to
 * `latents_shape[1:]`, and a 4-D row [F, C, H, W] gets a leading trajectory axis of 1.
 */
export class LatentLmdbReader {
  readonly count: number;
  /** The stored row shape (`latents_shape` without N). */
  readonly rowShape: readonly number[];
  /** The row as a trajectory: [S, F, C, H, W]. */
  readonly trajectoryShape: readonly [number, number, number, number, number];
  /** The LMDB data format of the file (1: LMDB 0.9 / Python; 2: lmdb-js). */
  readonly format: 1 | 2;
  private readonly get: (key: string) => Buffer | undefined;
  private readonly release: () => Promise<void>;
  private readonly rowValues: number;

  constructor(readonly path: string) {
    if (!existsSync(path)) throw new LmdbLayoutError(`no dataset at ${path}`);
    const format = lmdbDataFormat(path);
    if (format === 1) {
      // lmdb-js 3.x crashes on format-1 files (LMDB 0.9: Python lmdb, upstream's tools).
      const v1 = new LmdbV1Reader(path);
      this.format = 1;
      this.get = (key) => v1.get(key);
      this.release = async () => v1.close();
    } else if (format === 2 || format === undefined) {
      const db: RootDatabase<Buffer, string> = open<Buffer, string>(path, { encoding: 'binary', readOnly: true });
      this.format = 2;
      this.get = (key) => db.getBinary(key);
      this.release = () => db.close();
    } else {
      throw new LmdbLayoutError(`${path} is in LMDB data format ${format}; formats 1 and 2 are supported`);
    }
    try {
      const latentsShape = this.get('latents_shape');
      if (latentsShape === undefined) throw new LmdbLayoutError(`${path} has no \`latents_shape\` key (not a latent LMDB, or its build did not finish)`);
      const dims = parseShape(latentsShape.toString('ascii'), 'latents_shape');
      if (dims.length !== 5 && dims.length !== 6) throw new LmdbLayoutError(`\`latents_shape\` of ${path} has ${dims.length} dims; expected "N F C H W" or "N S F C H W"`);
      const [n = 0, ...row] = dims;
      const promptsShape = this.get('prompts_shape');
      if (promptsShape !== undefined) {
        const [np] = parseShape(promptsShape.toString('ascii'), 'prompts_shape');
        if (np !== n) throw new LmdbLayoutError(`${path}: \`prompts_shape\` says ${np} rows but \`latents_shape\` says ${n}`);
      }
      this.count = n;
      this.rowShape = row;
      const full = row.length === 4 ? [1, ...row] : row;
      this.trajectoryShape = [full[0] ?? 1, full[1] ?? 1, full[2] ?? 1, full[3] ?? 1, full[4] ?? 1];
      this.rowValues = numel(row);
    } catch (error) {
      void this.release();
      throw error;
    }
  }

  private checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new RangeError(`row ${i} is out of range 0..${this.count - 1}`);
  }

  prompt(i: number): string {
    this.checkIndex(i);
    const value = this.get(promptKey(i));
    if (value === undefined) throw new LmdbLayoutError(`${this.path}: missing \`${promptKey(i)}\``);
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  }

  /** Row i as float16 bits (a fresh array). */
  rowF16(i: number): Uint16Array {
    this.checkIndex(i);
    const value = this.get(latentKey(i));
    if (value === undefined) throw new LmdbLayoutError(`${this.path}: missing \`${latentKey(i)}\``);
    if (value.byteLength !== this.rowValues * 2) {
      throw new LmdbLayoutError(`${this.path}: \`${latentKey(i)}\` has ${value.byteLength} bytes; shape [${this.rowShape.join(', ')}] in float16 needs ${this.rowValues * 2}`);
    }
    return bytesLEToF16(value);
  }

  /** The whole trajectory of row i, float32 [S, F, C, H, W] (ODERegressionLMDBDataset). */
  trajectory(i: number): Float32Array {
    return f16ToF32(this.rowF16(i));
  }

  /** The last trajectory entry of row i — the clean latent — float32 [F, C, H, W] (LatentLMDBDataset). */
  clean(i: number): Float32Array {
    const [s, f, c, h, w] = this.trajectoryShape;
    const per = f * c * h * w;
    return f16ToF32(this.rowF16(i).subarray((s - 1) * per, s * per));
  }

  async close(): Promise<void> {
    await this.release();
  }
}

export const openLatentLmdb = (path: string): LatentLmdbReader => new LatentLmdbReader(path);
