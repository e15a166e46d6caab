// Trajectory shards → one ODE-pair LMDB, with upstream create_lmdb_iterative's semantics (spec
// §1.7): shards in the given order, rows in file order, a row whose prompt was already seen is
// dropped (unless dedupe is off), rows are float16 and re-indexed contiguously. One fix: the
// shape metadata is the row shape every shard declares (checked equal), not the last file's —
// upstream's breaks when that file's only prompt was a duplicate.

import { LatentLmdbWriter } from './lmdb_layout.js';
import { TrajectoryShardReader, type RowShape } from './trajectories.js';

export class OdeLmdbError extends Error {
  override readonly name = 'OdeLmdbError';
}

export interface OdeLmdbSummary {
  readonly rows: number;
  readonly dropped: number;
  readonly rowShape: RowShape;
}

export async function buildOdeLmdb(
  parts: readonly string[],
  outPath: string,
  options: { readonly dedupePrompts?: boolean; readonly format?: 1 | 2; readonly onProgress?: (rowsRead: number, rowsTotal: number) => void } = {},
): Promise<OdeLmdbSummary> {
  if (parts.length === 0) throw new OdeLmdbError('no trajectory shards given');
  const dedupe = options.dedupePrompts ?? true;
  // Check every shard's shape before writing anything.
  let rowShape: RowShape | undefined;
  let total = 0;
  for (const part of parts) {
    const reader = new TrajectoryShardReader(part);
    try {
      total += reader.count;
      if (rowShape === undefined) rowShape = reader.rowShape;
      else if (reader.rowShape.join() !== rowShape.join()) {
        throw new OdeLmdbError(`${part} has rows of shape [${reader.rowShape.join(', ')}] but ${parts[0]} has [${rowShape.join(', ')}]`);
      }
    } finally {
      reader.close();
    }
  }
  const shape = rowShape!;
  const writer = LatentLmdbWriter.create(outPath, { rowShape: shape, format: options.format ?? 2 });
  const seen = new Set<string>();
  let dropped = 0;
  let read = 0;
  try {
    for (const part of parts) {
      const reader = new TrajectoryShardReader(part);
      try {
        for (let i = 0; i < reader.count; i++) {
          options.onProgress?.(read++, total);
          const prompt = reader.prompts[i]!;
          if (dedupe && seen.has(prompt)) {
            dropped++;
            continue;
          }
          seen.add(prompt);
          await writer.append(reader.rowF16(i), prompt);
        }
      } finally {
        reader.close();
      }
    }
    options.onProgress?.(read, total);
    if (writer.rows === 0) throw new OdeLmdbError(`the ${parts.length} shard(s) hold no rows`);
    const rows = await writer.finish();
    return { rows, dropped, rowShape: shape };
  } catch (error) {
    await writer.abort();
    throw error;
  }
}
