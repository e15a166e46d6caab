// Atomic, checksummed checkpoints in a task's work dir, for any kind that resumes.
//
// File layout: `ckpt-<step, 12 digits>.bin` = payload ‖ trailer, where the trailer is
// sha256(step ‖ payload) (32 bytes) ‖ payload length (u64 LE) ‖ step (u64 LE) ‖ magic "CFCKPT01".
// A checkpoint is written to a temporary name, fsynced, renamed into place, and the folder
// fsynced, so a crash leaves either the old set or the new set — never a half file under a
// checkpoint name. Reading validates newest first and falls back to older ones, so a truncated
// or bit-flipped latest checkpoint costs one interval of work, not the run.

import { createHash } from 'node:crypto';
import { open, readdir, readFile, rename, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

const MAGIC = Buffer.from('CFCKPT01', 'latin1');
const TRAILER_BYTES = 32 + 8 + 8 + MAGIC.length;
const NAME = /^ckpt-(\d{12})\.bin$/;

/** How many valid checkpoints to keep: the newest plus one to fall back to. */
export const CHECKPOINTS_KEPT = 2;

export const checkpointPath = (workDir: string, step: number): string =>
  join(workDir, `ckpt-${String(step).padStart(12, '0')}.bin`);

function checksum(step: number, payload: Uint8Array): Buffer {
  const stepBytes = Buffer.alloc(8);
  stepBytes.writeBigUInt64LE(BigInt(step));
  return createHash('sha256').update(stepBytes).update(payload).digest();
}

/** fsyncs a directory so a rename inside it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes the checkpoint for `step` atomically and prunes all but the newest CHECKPOINTS_KEPT. Returns its path. */
export async function writeCheckpoint(workDir: string, step: number, payload: Uint8Array): Promise<string> {
  await mkdir(workDir, { recursive: true });
  const finalPath = checkpointPath(workDir, step);
  const tempPath = `${finalPath}.tmp-${process.pid}`;
  const trailer = Buffer.alloc(TRAILER_BYTES);
  checksum(step, payload).copy(trailer, 0);
  trailer.writeBigUInt64LE(BigInt(payload.length), 32);
  trailer.writeBigUInt64LE(BigInt(step), 40);
  MAGIC.copy(trailer, 48);
  const handle = await open(tempPath, 'w');
  try {
    await handle.writeFile(payload);
    await handle.write(trailer);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tempPath, finalPath);
  await syncDir(workDir);
  await pruneCheckpoints(workDir, step);
  return finalPath;
}

async function pruneCheckpoints(workDir: string, newestStep: number): Promise<void> {
  const steps = (await listCheckpointSteps(workDir)).filter((s) => s <= newestStep);
  for (const step of steps.slice(CHECKPOINTS_KEPT)) await rm(checkpointPath(workDir, step), { force: true });
  // Temporary files left by a killed writer are garbage.
  for (const name of await readdir(workDir)) {
    if (name.startsWith('ckpt-') && name.includes('.tmp-') && !name.endsWith(`.tmp-${process.pid}`)) {
      await rm(join(workDir, name), { force: true });
    }
  }
}

/** Steps that have a checkpoint file (valid or not), newest first. */
export async function listCheckpointSteps(workDir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(workDir);
  } catch {
    return [];
  }
  return names
    .map((n) => NAME.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => b - a);
}

export type CheckpointCheck = { readonly ok: true; readonly payload: Buffer } | { readonly ok: false; readonly reason: string };

/** Validates one checkpoint file against its trailer. */
export async function readCheckpointFile(path: string, step: number): Promise<CheckpointCheck> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    return { ok: false, reason: `unreadable (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  if (bytes.length < TRAILER_BYTES) return { ok: false, reason: 'truncated' };
  const trailer = bytes.subarray(bytes.length - TRAILER_BYTES);
  if (!trailer.subarray(48).equals(MAGIC)) return { ok: false, reason: 'truncated or not a checkpoint (no end marker)' };
  const length = Number(trailer.readBigUInt64LE(32));
  if (length !== bytes.length - TRAILER_BYTES) return { ok: false, reason: 'truncated (length mismatch)' };
  if (Number(trailer.readBigUInt64LE(40)) !== step) return { ok: false, reason: 'step mismatch' };
  const payload = bytes.subarray(0, length);
  if (!checksum(step, payload).equals(trailer.subarray(0, 32))) return { ok: false, reason: 'checksum mismatch' };
  return { ok: true, payload };
}

export interface LoadedCheckpoint {
  readonly step: number;
  readonly path: string;
  readonly payload: Buffer;
}

export interface CheckpointSearch {
  /** The newest valid checkpoint, if any. */
  readonly latest?: LoadedCheckpoint;
  /** Newer checkpoints that failed validation (and were skipped), with the reason. */
  readonly rejected: readonly { readonly step: number; readonly path: string; readonly reason: string }[];
}

/** Finds the newest checkpoint that validates; corrupt newer ones are reported and skipped. */
export async function loadLatestCheckpoint(workDir: string): Promise<CheckpointSearch> {
  const rejected: { step: number; path: string; reason: string }[] = [];
  for (const step of await listCheckpointSteps(workDir)) {
    const path = checkpointPath(workDir, step);
    const check = await readCheckpointFile(path, step);
    if (check.ok) return { latest: { step, path, payload: check.payload }, rejected };
    rejected.push({ step, path, reason: check.reason });
  }
  return { rejected };
}
