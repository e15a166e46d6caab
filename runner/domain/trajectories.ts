// Trajectory shards: the output of an `ode_pairs` task and the input of `lmdb_build`.
// Upstream saves one `{prompt: float32 [1, 6, F, C, H, W]}` torch file per row; a shard here is
// one safetensors file holding many rows:
//
//   tensor   trajectories  F16 [n, S, F, C, H, W]   S = 6 snapshots, slot order of spec §1.6:
//                          noise (σ=1), before steps 12 / 24 / 36, the teacher's endpoint, the GT latent
//   metadata format   "cfpipe-trajectories/1"
//            prompts  JSON array of the n prompts
//            rows     JSON array of the n source row indices (in the clean dataset)
//            + any extra string metadata the producer adds (sampler settings, seed...)
//
// float16 because that is what the LMDB stores anyway (upstream casts when building it), so the
// shard → LMDB copy is exact; rows stream to disk as they are produced.

import { f16ToF32, f32ToF16, f16ToBytesLE, bytesLEToF16 } from './float16.js';
import { SafetensorsError, SafetensorsReader, SafetensorsStreamWriter } from './safetensors.js';

export const TRAJECTORY_FORMAT = 'cfpipe-trajectories/1';
export const TRAJECTORY_TENSOR = 'trajectories';
/** The snapshot indices into upstream's 50-entry trajectory list that the 6 slots hold. */
export const TRAJECTORY_SLOT_INDICES = [0, 12, 24, 36, -2, -1] as const;

export type RowShape = readonly [slots: number, frames: number, channels: number, height: number, width: number];

export interface TrajectoryShardHeader {
  readonly rowShape: RowShape;
  readonly prompts: readonly string[];
  /** Source row indices, one per row. */
  readonly rows: readonly number[];
  readonly metadata?: Readonly<Record<string, string>>;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Streams the rows of one shard to `path` (a temporary name until `commit`). */
export class TrajectoryShardWriter {
  private readonly writer: SafetensorsStreamWriter;
  private readonly rowValues: number;
  private readonly expected: number;
  private appended = 0;

  constructor(path: string, header: TrajectoryShardHeader) {
    if (header.rowShape.length !== 5 || !header.rowShape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new SafetensorsError(`trajectory row shape must be [S, F, C, H, W], got [${header.rowShape.join(', ')}]`);
    }
    if (header.rows.length !== header.prompts.length) throw new SafetensorsError(`${header.prompts.length} prompts but ${header.rows.length} row indices`);
    this.rowValues = numel(header.rowShape);
    this.expected = header.prompts.length;
    this.writer = new SafetensorsStreamWriter(path, [{ name: TRAJECTORY_TENSOR, dtype: 'F16', shape: [this.expected, ...header.rowShape] }], {
      ...header.metadata,
      format: TRAJECTORY_FORMAT,
      prompts: JSON.stringify(header.prompts),
      rows: JSON.stringify(header.rows),
    });
  }

  /** The next row: float32 values (rounded to float16) or float16 bits. */
  append(row: Float32Array | Uint16Array): void {
    if (row.length !== this.rowValues) throw new SafetensorsError(`trajectory row has ${row.length} values, expected ${this.rowValues}`);
    if (this.appended >= this.expected) throw new SafetensorsError(`more than the ${this.expected} declared rows`);
    this.writer.write(f16ToBytesLE(row instanceof Uint16Array ? row : f32ToF16(row)));
    this.appended++;
  }

  commit(): void {
    this.writer.commit();
  }

  abort(): void {
    this.writer.abort();
  }
}

/** Reads a shard; rows come off disk one at a time. */
export class TrajectoryShardReader {
  readonly rowShape: RowShape;
  readonly prompts: readonly string[];
  readonly rows: readonly number[];
  readonly metadata: Readonly<Record<string, string>>;
  private readonly file: SafetensorsReader;
  private readonly rowBytes: number;

  constructor(readonly path: string) {
    this.file = new SafetensorsReader(path);
    try {
      const meta = this.file.metadata;
      if (meta.format !== TRAJECTORY_FORMAT) throw new SafetensorsError(`${path}: not a trajectory shard (format ${JSON.stringify(meta.format ?? null)})`);
      const entry = this.file.entry(TRAJECTORY_TENSOR);
      if (entry.dtype !== 'F16' || entry.shape.length !== 6) throw new SafetensorsError(`${path}: \`${TRAJECTORY_TENSOR}\` must be F16 [n, S, F, C, H, W]`);
      const [n = 0, s = 0, f = 0, c = 0, h = 0, w = 0] = entry.shape;
      const prompts = JSON.parse(meta.prompts ?? 'null') as unknown;
      const rows = JSON.parse(meta.rows ?? 'null') as unknown;
      if (!Array.isArray(prompts) || prompts.length !== n || !prompts.every((p) => typeof p === 'string')) throw new SafetensorsError(`${path}: metadata \`prompts\` must list ${n} strings`);
      if (!Array.isArray(rows) || rows.length !== n || !rows.every((r) => Number.isInteger(r))) throw new SafetensorsError(`${path}: metadata \`rows\` must list ${n} integers`);
      this.rowShape = [s, f, c, h, w];
      this.prompts = prompts as string[];
      this.rows = rows as number[];
      this.metadata = meta;
      this.rowBytes = s * f * c * h * w * 2;
    } catch (error) {
      this.file.close();
      throw error;
    }
  }

  get count(): number {
    return this.prompts.length;
  }

  rowF16(i: number): Uint16Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new RangeError(`row ${i} is out of range 0..${this.count - 1}`);
    return bytesLEToF16(this.file.readBytes(TRAJECTORY_TENSOR, i * this.rowBytes, this.rowBytes));
  }

  row(i: number): Float32Array {
    return f16ToF32(this.rowF16(i));
  }

  close(): void {
    this.file.close();
  }
}
