// The one in-memory form of a decoded video in the domain: 8-bit RGB, frame-major, pixels
// interleaved ([F, H, W, 3]) — what GIF, PNG and ffmpeg's rawvideo rgb24 take as they are.
// The "VAE" works on float pixels in [-1, 1] laid out [F, 3, H, W]; these two functions are
// the bridge, with upstream's output mapping (x * 0.5 + 0.5, clamped to [0, 1], times 255).

export interface RgbVideo {
  readonly frames: number;
  readonly height: number;
  readonly width: number;
  /** frames * height * width * 3 bytes, [F, H, W, 3]. */
  readonly rgb: Uint8Array;
}

export type Rgb = readonly [number, number, number];

export function emptyVideo(frames: number, height: number, width: number): RgbVideo {
  return { frames, height, width, rgb: new Uint8Array(frames * height * width * 3) };
}

/** 8-bit RGB [F, H, W, 3] → float pixels in [-1, 1], [F, 3, H, W]. */
export function videoToPixels(video: RgbVideo): Float32Array {
  const { frames, height, width, rgb } = video;
  const plane = height * width;
  const out = new Float32Array(frames * 3 * plane);
  for (let f = 0; f < frames; f++) {
    for (let p = 0; p < plane; p++) {
      const src = (f * plane + p) * 3;
      for (let c = 0; c < 3; c++) out[(f * 3 + c) * plane + p] = (rgb[src + c] ?? 0) / 127.5 - 1;
    }
  }
  return out;
}

/**
 * Float pixels [F, 3, H, W] → 8-bit RGB. Rounds to nearest (upstream truncates after scaling;
 * rounding makes encode → decode of an 8-bit video return the same bytes).
 */
export function pixelsToVideo(pixels: Float32Array, frames: number, height: number, width: number): RgbVideo {
  const plane = height * width;
  if (pixels.length !== frames * 3 * plane) {
    throw new Error(`pixelsToVideo: ${pixels.length} values do not make ${frames}x3x${height}x${width}`);
  }
  const rgb = new Uint8Array(frames * plane * 3);
  for (let f = 0; f < frames; f++) {
    for (let c = 0; c < 3; c++) {
      const base = (f * 3 + c) * plane;
      for (let p = 0; p < plane; p++) {
        const x = pixels[base + p] ?? 0;
        const unit = Math.min(1, Math.max(0, x * 0.5 + 0.5)); // NaN → 0 via max/min ordering below
        rgb[(f * plane + p) * 3 + c] = Number.isNaN(unit) ? 0 : Math.round(unit * 255);
      }
    }
  }
  return { frames, height, width, rgb };
}

/** One frame's bytes ([H, W, 3]) as a view. */
export function frameView(video: RgbVideo, frame: number): Uint8Array {
  const size = video.height * video.width * 3;
  return video.rgb.subarray(frame * size, (frame + 1) * size);
}
