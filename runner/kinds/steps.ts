// `steps`: a deterministic, resumable, step-wise computation with checkpoints — the runner's
// own test kind, and a template for real training kinds. Each step iterates the logistic map
// over a state vector `work` times and chains a SHA-256 trace over the states, so the result
// depends on every step having been done exactly once and in order; resuming from a checkpoint
// must reproduce an uninterrupted run bit for bit.
//
//   stage a: steps { n = 50, checkpoint_every = 5, work = 2000, width = 64, seed = 1 }
//
// Inputs (any names) are mixed into the initial state, so chained `steps` stages carry data.
// Every declared output receives the same result: a JSON header line, then `output_bytes` of
// bytes expanded from the final state (for tests that need a large write to interrupt).

import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import type { Value } from '../graph.js';
import { loadLatestCheckpoint, writeCheckpoint } from './checkpoints.js';
import { KindError, type KindContext, type StageKind } from './types.js';

interface StepsParams {
  readonly n: number;
  readonly checkpointEvery: number;
  readonly work: number;
  readonly width: number;
  readonly seed: number;
  readonly outputBytes: number;
}

function intParam(params: { readonly [k: string]: Value }, name: string, fallback: number, min: number): number {
  const value = params[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new KindError(`steps: \`${name}\` must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function readParams(params: { readonly [k: string]: Value }): StepsParams {
  return {
    n: intParam(params, 'n', 10, 0),
    checkpointEvery: intParam(params, 'checkpoint_every', 1, 1),
    work: intParam(params, 'work', 1000, 1),
    width: intParam(params, 'width', 64, 1),
    seed: intParam(params, 'seed', 0, 0),
    outputBytes: intParam(params, 'output_bytes', 0, 0),
  };
}

/** The training-state analogue: step counter, the state vector and the running trace digest. */
interface StepsState {
  step: number;
  readonly x: Float64Array;
  trace: Buffer;
}

async function initialState(ctx: KindContext, p: StepsParams): Promise<StepsState> {
  const seedHash = createHash('sha256').update(`steps:${p.seed}:${p.width}`);
  for (const name of Object.keys(ctx.inputs).sort()) {
    for (const path of ctx.inputs[name] ?? []) seedHash.update(name).update(await readFile(path));
  }
  let block = seedHash.digest();
  const x = new Float64Array(p.width);
  for (let i = 0; i < p.width; i++) {
    if (i % 8 === 0 && i > 0) block = createHash('sha256').update(block).digest();
    // A value strictly inside (0, 1), where the logistic map stays.
    x[i] = 0.05 + 0.9 * (block.readUInt32LE((i % 8) * 4) / 2 ** 32);
  }
  return { step: 0, x, trace: createHash('sha256').update(block).digest() };
}

function encodeState(s: StepsState): Buffer {
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(s.step));
  return Buffer.concat([head, s.trace, Buffer.from(s.x.buffer, s.x.byteOffset, s.x.byteLength)]);
}

function decodeState(payload: Buffer, width: number): StepsState {
  if (payload.length !== 8 + 32 + width * 8) throw new KindError('steps: checkpoint does not match this stage (width changed?)');
  const x = new Float64Array(width);
  Buffer.from(x.buffer).set(payload.subarray(40));
  return { step: Number(payload.readBigUInt64LE(0)), trace: Buffer.from(payload.subarray(8, 40)), x };
}

function advance(s: StepsState, work: number): void {
  const x = s.x;
  for (let j = 0; j < work; j++) {
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      x[i] = 3.99 * v * (1 - v);
    }
  }
  s.step += 1;
  s.trace = createHash('sha256').update(s.trace).update(Buffer.from(x.buffer, x.byteOffset, x.byteLength)).digest();
}

async function writeResult(path: string, s: StepsState, p: StepsParams): Promise<void> {
  const header = JSON.stringify({ steps: s.step, trace: s.trace.toString('hex'), x0: s.x[0] }) + '\n';
  const handle = await open(path, 'w');
  try {
    await handle.write(header);
    let block = s.trace;
    let left = p.outputBytes;
    const chunk = Buffer.alloc(64 * 1024);
    while (left > 0) {
      let filled = 0;
      while (filled < chunk.length && filled < left) {
        block = createHash('sha256').update(block).digest();
        filled += block.copy(chunk, filled);
      }
      const size = Math.min(filled, left);
      await handle.write(chunk, 0, size);
      left -= size;
    }
  } finally {
    await handle.close();
  }
}

export const kind: StageKind = {
  name: 'steps',
  async run(ctx: KindContext): Promise<void> {
    const p = readParams(ctx.task.params);
    const found = await loadLatestCheckpoint(ctx.workDir);
    for (const bad of found.rejected) ctx.log(`checkpoint at step ${bad.step} is invalid (${bad.reason}); skipped`);
    const state = found.latest ? decodeState(found.latest.payload, p.width) : await initialState(ctx, p);
    if (found.latest) ctx.log(`resuming from checkpoint at step ${state.step}`);
    let savedStep = state.step;
    ctx.progress(state.step, p.n);
    while (state.step < p.n) {
      if (ctx.signal.aborted) {
        if (savedStep !== state.step) ctx.checkpoint(state.step, await writeCheckpoint(ctx.workDir, state.step, encodeState(state)));
        ctx.signal.throwIfAborted();
      }
      advance(state, p.work);
      ctx.progress(state.step, p.n, { x0: state.x[0]! });
      if (state.step % p.checkpointEvery === 0 && state.step < p.n) {
        ctx.checkpoint(state.step, await writeCheckpoint(ctx.workDir, state.step, encodeState(state)));
        savedStep = state.step;
      }
    }
    for (const path of Object.values(ctx.outputs)) await writeResult(path, state, p);
    // Stands in for Node's shutdown deadlock (V8 background threads after native GPU work): the
    // work is done and reported, but the process never gets to exit on its own.
    if (ctx.task.params['hang_on_exit'] === true) process.on('exit', () => { for (;;); });
  },
};
