// The domain's frozen text encoder, standing in for umT5-XXL: deterministic, no weights to
// fetch. A prompt is lower-cased and split into word tokens ("up-left" stays one token), an
// end-of-sequence token is appended as T5's tokenizer does, each token's embedding is a
// Gaussian vector seeded by a hash of the token, a fixed sinusoidal position code is added, and
// positions past the real tokens are zero — upstream zeroes T5's output there the same way.
// Output: float32 [textLen, textDim], row-major.

import { CounterRng, hashString } from './rng.js';

export const EOS_TOKEN = '</s>';

/** Word tokens of a prompt, plus the end-of-sequence token. */
export function tokenize(prompt: string): string[] {
  const words = prompt.toLowerCase().match(/[\p{L}\p{N}]+(?:['-][\p{L}\p{N}]+)*/gu) ?? [];
  return [...words, EOS_TOKEN];
}

export interface TextEncoderOptions {
  /** Sequence length after padding/truncation (upstream: 512). */
  readonly textLen: number;
  /** Embedding width (upstream: 4096). */
  readonly textDim: number;
  /** Weight of the position code relative to the unit-variance token embedding. */
  readonly positionScale?: number;
}

export class FrozenTextEncoder {
  readonly textLen: number;
  readonly textDim: number;
  private readonly positionScale: number;
  private readonly tokenCache = new Map<string, Float32Array>();

  constructor(options: TextEncoderOptions) {
    if (!Number.isInteger(options.textLen) || options.textLen < 1) throw new RangeError(`textLen must be a positive integer, got ${options.textLen}`);
    if (!Number.isInteger(options.textDim) || options.textDim < 2) throw new RangeError(`textDim must be an integer ≥ 2, got ${options.textDim}`);
    this.textLen = options.textLen;
    this.textDim = options.textDim;
    this.positionScale = options.positionScale ?? 0.25;
  }

  /** The token's embedding: textDim standard normals from a stream keyed by the token's hash. */
  tokenEmbedding(token: string): Float32Array {
    const cached = this.tokenCache.get(token);
    if (cached !== undefined) return cached;
    const rng = new CounterRng([0x7e47, hashString(token), this.textDim]);
    const e = new Float32Array(this.textDim);
    for (let i = 0; i < this.textDim; i++) e[i] = rng.normal();
    this.tokenCache.set(token, e);
    return e;
  }

  /** [textLen, textDim] float32; tokens beyond textLen are dropped (the EOS is kept last, as T5's truncation does). */
  encode(prompt: string): Float32Array {
    let tokens = tokenize(prompt);
    if (tokens.length > this.textLen) tokens = [...tokens.slice(0, this.textLen - 1), EOS_TOKEN];
    const out = new Float32Array(this.textLen * this.textDim);
    const half = this.textDim / 2;
    tokens.forEach((token, pos) => {
      const e = this.tokenEmbedding(token);
      for (let i = 0; i < this.textDim; i++) {
        const pair = i % half;
        const angle = pos / Math.pow(10000, pair / half);
        const code = i < half ? Math.sin(angle) : Math.cos(angle);
        out[pos * this.textDim + i] = (e[i] ?? 0) + this.positionScale * code;
      }
    });
    return out;
  }

  /** Several prompts, stacked: [n, textLen, textDim]. */
  encodeBatch(prompts: readonly string[]): Float32Array {
    const out = new Float32Array(prompts.length * this.textLen * this.textDim);
    prompts.forEach((p, i) => out.set(this.encode(p), i * this.textLen * this.textDim));
    return out;
  }
}
