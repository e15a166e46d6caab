// safetensors for the domain's own artifacts (trajectory shards, decoded video sets), the same
// container the engine uses for weights: an 8-byte little-endian header length N, N bytes of JSON
// (padded with spaces to a multiple of 8), then the tensors' bytes back to back.
//   {"__metadata__": {"k": "v"}, "name": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]}}
// Writing streams: the header is fixed up front from the shapes, then the tensors' bytes are
// appended in order, to a temporary name that is renamed into place once complete. Reading
// validates the header and reads byte ranges on demand, so files larger than memory work.

import { closeSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync, fstatSync } from 'node:fs';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8';
const DTYPE_SIZE: Readonly<Record<DType, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1 };

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
}

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface TensorEntry extends TensorSpec {
  /** Byte offsets into the data section. */
  readonly begin: number;
  readonly end: number;
}

const byteSize = (spec: TensorSpec) => spec.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[spec.dtype];

function headerBytes(tensors: readonly TensorSpec[], metadata: Readonly<Record<string, string>>): { bytes: Buffer; entries: TensorEntry[] } {
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  const entries: TensorEntry[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || json[t.name] !== undefined) throw new SafetensorsError(`tensor name \`${t.name}\` is reserved or repeated`);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(`tensor \`${t.name}\` has an invalid shape [${t.shape.join(', ')}]`);
    const end = offset + byteSize(t);
    json[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] };
    entries.push({ ...t, begin: offset, end });
    offset = end;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const body = Buffer.from(text, 'utf8');
  const bytes = Buffer.alloc(8 + body.length);
  bytes.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(bytes, 8);
  return { bytes, entries };
}

/**
 * Writes tensors whose shapes are known up front, their bytes streamed in order. `commit`
 * checks that every byte arrived, fsyncs and renames the temporary file into place.
 */
export class SafetensorsStreamWriter {
  readonly entries: readonly TensorEntry[];
  private readonly fd: number;
  private readonly tempPath: string;
  private written = 0;
  private readonly total: number;
  private done = false;

  constructor(readonly path: string, tensors: readonly TensorSpec[], metadata: Readonly<Record<string, string>> = {}) {
    const { bytes, entries } = headerBytes(tensors, metadata);
    this.entries = entries;
    this.total = entries.reduce((s, e) => s + e.end - e.begin, 0);
    this.tempPath = `${path}.tmp-${process.pid}`;
    this.fd = openSync(this.tempPath, 'w');
    writeSync(this.fd, bytes);
  }

  /** Appends the next bytes of the data section. */
  write(bytes: Uint8Array): void {
    if (this.done) throw new SafetensorsError('write after commit');
    if (this.written + bytes.byteLength > this.total) throw new SafetensorsError(`${this.path}: more data than the header declares (${this.total} bytes)`);
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(this.fd, bytes, off, bytes.byteLength - off);
    this.written += bytes.byteLength;
  }

  commit(): void {
    if (this.written !== this.total) {
      this.abort();
      throw new SafetensorsError(`${this.path}: ${this.written} of ${this.total} data bytes written`);
    }
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.done = true;
    renameSync(this.tempPath, this.path);
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    closeSync(this.fd);
    rmSync(this.tempPath, { force: true });
  }
}

/** Writes whole tensors held in memory. */
export function writeSafetensors(path: string, tensors: readonly (TensorSpec & { readonly data: Uint8Array })[], metadata: Readonly<Record<string, string>> = {}): void {
  const writer = new SafetensorsStreamWriter(path, tensors, metadata);
  try {
    for (const t of tensors) {
      if (t.data.byteLength !== byteSize(t)) throw new SafetensorsError(`tensor \`${t.name}\`: ${t.data.byteLength} bytes for shape [${t.shape.join(', ')}] ${t.dtype}`);
      writer.write(t.data);
    }
  } catch (error) {
    writer.abort();
    throw error;
  }
  writer.commit();
}

/** An open safetensors file: validated header, byte ranges read on demand. */
export class SafetensorsReader {
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  private readonly fd: number;
  private readonly dataStart: number;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new SafetensorsError(code === 'ENOENT' ? `${path} does not exist` : `cannot open ${path} (${code ?? 'error'})`);
    }
    try {
      const size = fstatSync(this.fd).size;
      const lenBuf = Buffer.alloc(8);
      if (size < 8 || readSync(this.fd, lenBuf, 0, 8, 0) !== 8) throw new SafetensorsError(`${path}: too short to be safetensors`);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > size - 8 || headerLen > 100 * 1024 * 1024) throw new SafetensorsError(`${path}: header length ${headerLen} exceeds the file`);
      const header = Buffer.alloc(headerLen);
      readSync(this.fd, header, 0, headerLen, 8);
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(header.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new SafetensorsError(`${path}: header is not JSON`);
      }
      this.dataStart = 8 + headerLen;
      const dataLen = size - this.dataStart;
      const metadata = (json.__metadata__ ?? {}) as Record<string, string>;
      const tensors = new Map<string, TensorEntry>();
      for (const [name, value] of Object.entries(json)) {
        if (name === '__metadata__') continue;
        const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        const dtype = v.dtype as DType;
        const shape = v.shape as number[];
        const offsets = v.data_offsets as [number, number];
        if (DTYPE_SIZE[dtype] === undefined || !Array.isArray(shape) || !Array.isArray(offsets) || offsets.length !== 2) {
          throw new SafetensorsError(`${path}: tensor \`${name}\` has a malformed entry`);
        }
        const [begin, end] = offsets;
        if (!(begin >= 0 && end >= begin && end <= dataLen) || end - begin !== byteSize({ name, dtype, shape })) {
          throw new SafetensorsError(`${path}: tensor \`${name}\` offsets [${begin}, ${end}] do not fit its shape or the file`);
        }
        tensors.set(name, { name, dtype, shape, begin, end });
      }
      this.metadata = metadata;
      this.tensors = tensors;
    } catch (error) {
      closeSync(this.fd);
      throw error;
    }
  }

  entry(name: string): TensorEntry {
    const e = this.tensors.get(name);
    if (e === undefined) throw new SafetensorsError(`${this.path}: no tensor \`${name}\``);
    return e;
  }

  /** Bytes [start, start + length) of a tensor's data. */
  readBytes(name: string, start = 0, length?: number): Buffer {
    const e = this.entry(name);
    const len = length ?? e.end - e.begin - start;
    if (start < 0 || start + len > e.end - e.begin) throw new RangeError(`${this.path}: byte range outside tensor \`${name}\``);
    const out = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(this.fd, out, got, len - got, this.dataStart + e.begin + start + got);
      if (n === 0) throw new SafetensorsError(`${this.path}: unexpected end of file`);
      got += n;
    }
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}
