// The domain's "VAE": a fixed, exactly invertible transform standing in for Wan's 3-D VAE.
// Pixels in [-1, 1] ([F, 3, H, W]) → space-to-depth by `factor` → a Walsh–Hadamard transform over
// the factor² sub-pixel positions of each block and colour, scaled by 1/factor² → latent
// [F, 3·factor², H/factor, W/factor], frame-major like upstream's [F, C, H, W].
//
// Why this transform: it is orthogonal up to one global scale, so an L2 loss in latent space is
// an L2 loss in pixel space (as a VAE approximately gives); the scale 1/factor² keeps every latent
// value within [-1, 1]; and channels 0..2 are the block-mean RGB — a low-resolution preview —
// while the others carry edges (mostly zero), the way VAE latents separate layout from detail.
// Channel k·3 + c holds Hadamard row k of colour c. No temporal compression: invertibility
// would need more channels, and the tiny preset's 9 frames divide into blocks of 1 and 3 anyway.
// Decoding is exact up to float32 rounding (8-bit videos come back byte for byte); after a
// float16 round trip (LMDB storage) pixels stay within one 8-bit step.

import { pixelsToVideo, videoToPixels, type RgbVideo } from './rgb.js';

export type LatentShape = readonly [frames: number, channels: number, height: number, width: number];

function popcountParity(x: number): number {
  let v = x;
  let parity = 0;
  while (v !== 0) {
    parity ^= v & 1;
    v >>>= 1;
  }
  return parity;
}

export class SpaceToDepthVae {
  readonly factor: number;
  /** Sub-pixel positions per block (factor²). */
  private readonly n: number;
  /** Sylvester Hadamard signs, n×n, row-major: sign[k*n + j] = (-1)^popcount(k & j). */
  private readonly sign: Int8Array;

  constructor(factor: number) {
    if (!Number.isInteger(factor) || factor < 1 || (factor & (factor - 1)) !== 0) {
      throw new RangeError(`VAE factor must be a power of two (1, 2, 4, 8...), got ${factor}`);
    }
    this.factor = factor;
    this.n = factor * factor;
    this.sign = new Int8Array(this.n * this.n);
    for (let k = 0; k < this.n; k++) for (let j = 0; j < this.n; j++) this.sign[k * this.n + j] = popcountParity(k & j) ? -1 : 1;
  }

  get channels(): number {
    return 3 * this.n;
  }

  /** The latent shape of a clip of `frames` RGB frames of height×width. */
  latentShape(frames: number, height: number, width: number): LatentShape {
    if (height % this.factor !== 0 || width % this.factor !== 0) {
      throw new RangeError(`frame size ${height}x${width} is not divisible by the VAE factor ${this.factor}`);
    }
    return [frames, this.channels, height / this.factor, width / this.factor];
  }

  /** Float pixels [F, 3, H, W] in [-1, 1] → latent [F, 3·f², H/f, W/f]. */
  encode(pixels: Float32Array, frames: number, height: number, width: number): Float32Array {
    const [, channels, lh, lw] = this.latentShape(frames, height, width);
    if (pixels.length !== frames * 3 * height * width) throw new RangeError(`encode: expected ${frames * 3 * height * width} pixel values, got ${pixels.length}`);
    const { factor: f, n, sign } = this;
    const out = new Float32Array(frames * channels * lh * lw);
    const block = new Float64Array(n);
    for (let t = 0; t < frames; t++) {
      for (let c = 0; c < 3; c++) {
        const src = (t * 3 + c) * height * width;
        for (let by = 0; by < lh; by++) {
          for (let bx = 0; bx < lw; bx++) {
            for (let dy = 0; dy < f; dy++) for (let dx = 0; dx < f; dx++) block[dy * f + dx] = pixels[src + (by * f + dy) * width + bx * f + dx] ?? 0;
            for (let k = 0; k < n; k++) {
              let acc = 0;
              for (let j = 0; j < n; j++) acc += (sign[k * n + j] ?? 0) * (block[j] ?? 0);
              out[((t * channels + k * 3 + c) * lh + by) * lw + bx] = acc / n;
            }
          }
        }
      }
    }
    return out;
  }

  /** Latent [F, 3·f², h, w] → float pixels [F, 3, h·f, w·f]. */
  decode(latent: Float32Array, frames: number, latentHeight: number, latentWidth: number): Float32Array {
    const { factor: f, n, sign } = this;
    const channels = this.channels;
    if (latent.length !== frames * channels * latentHeight * latentWidth) {
      throw new RangeError(`decode: expected ${frames * channels * latentHeight * latentWidth} latent values, got ${latent.length}`);
    }
    const height = latentHeight * f;
    const width = latentWidth * f;
    const out = new Float32Array(frames * 3 * height * width);
    const coef = new Float64Array(n);
    for (let t = 0; t < frames; t++) {
      for (let c = 0; c < 3; c++) {
        const dst = (t * 3 + c) * height * width;
        for (let by = 0; by < latentHeight; by++) {
          for (let bx = 0; bx < latentWidth; bx++) {
            for (let k = 0; k < n; k++) coef[k] = latent[((t * channels + k * 3 + c) * latentHeight + by) * latentWidth + bx] ?? 0;
            for (let j = 0; j < n; j++) {
              let acc = 0;
              for (let k = 0; k < n; k++) acc += (sign[k * n + j] ?? 0) * (coef[k] ?? 0);
              out[dst + (by * f + Math.floor(j / f)) * width + bx * f + (j % f)] = acc;
            }
          }
        }
      }
    }
    return out;
  }

  /** An 8-bit video → its latent. */
  encodeVideo(video: RgbVideo): Float32Array {
    return this.encode(videoToPixels(video), video.frames, video.height, video.width);
  }

  /** A latent → an 8-bit video (clamped and rounded like upstream's output path). */
  decodeToVideo(latent: Float32Array, shape: LatentShape): RgbVideo {
    const [frames, channels, lh, lw] = shape;
    if (channels !== this.channels) throw new RangeError(`decode: latent has ${channels} channels, this VAE makes ${this.channels}`);
    return pixelsToVideo(this.decode(latent, frames, lh, lw), frames, lh * this.factor, lw * this.factor);
  }
}
