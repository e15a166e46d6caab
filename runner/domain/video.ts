// Videos a person can watch: GIF always (gifenc), mp4 where ffmpeg is on PATH (libx264, like
// upstream's torchvision write_video), and a PNG strip of all frames for a quick look. Frames are
// upscaled with nearest neighbour (default 8x) so a 32x32 clip's shapes are visible. 16 fps as
// upstream. Files are named after the prompt like upstream's `<prompt[:100]>.mp4`.

import gifenc, { type Palette } from 'gifenc';
import { spawnSync } from 'node:child_process';
import { crc32, deflateSync } from 'node:zlib';
import { execa } from 'execa';
import type { RgbVideo } from './rgb.js';

export const DEFAULT_FPS = 16;
export const DEFAULT_SCALE = 8;

/** Nearest-neighbour upscaling by an integer factor. */
export function upscale(video: RgbVideo, factor: number): RgbVideo {
  if (!Number.isInteger(factor) || factor < 1) throw new RangeError(`upscale factor must be a positive integer, got ${factor}`);
  if (factor === 1) return video;
  const { frames, height, width } = video;
  const H = height * factor;
  const W = width * factor;
  const rgb = new Uint8Array(frames * H * W * 3);
  for (let t = 0; t < frames; t++) {
    for (let y = 0; y < H; y++) {
      const srcRow = (t * height + Math.floor(y / factor)) * width;
      const dstRow = (t * H + y) * W;
      for (let x = 0; x < W; x++) {
        const s = (srcRow + Math.floor(x / factor)) * 3;
        const d = (dstRow + x) * 3;
        rgb[d] = video.rgb[s] ?? 0;
        rgb[d + 1] = video.rgb[s + 1] ?? 0;
        rgb[d + 2] = video.rgb[s + 2] ?? 0;
      }
    }
  }
  return { frames, height: H, width: W, rgb };
}

/**
 * A looping animated GIF. One palette for the whole clip: the exact colours when there are at
 * most 256 (always, for domain clips), otherwise gifenc's quantizer.
 */
export function encodeGif(video: RgbVideo, options: { scale?: number; fps?: number } = {}): Uint8Array {
  const scale = options.scale ?? DEFAULT_SCALE;
  const fps = options.fps ?? DEFAULT_FPS;
  const { frames, height, width } = video;
  const pixels = frames * height * width;
  const colours = new Map<number, number>();
  let palette: Palette = [];
  let index: Uint8Array = new Uint8Array(pixels);
  for (let p = 0; p < pixels && colours.size <= 256; p++) {
    const key = ((video.rgb[p * 3] ?? 0) << 16) | ((video.rgb[p * 3 + 1] ?? 0) << 8) | (video.rgb[p * 3 + 2] ?? 0);
    let i = colours.get(key);
    if (i === undefined) {
      i = colours.size;
      colours.set(key, i);
      palette.push([key >>> 16, (key >>> 8) & 0xff, key & 0xff]);
    }
    index[p] = i;
  }
  if (colours.size > 256) {
    const rgba = new Uint8Array(pixels * 4);
    for (let p = 0; p < pixels; p++) {
      rgba.set(video.rgb.subarray(p * 3, p * 3 + 3), p * 4);
      rgba[p * 4 + 3] = 255;
    }
    palette = gifenc.quantize(rgba, 256);
    index = gifenc.applyPalette(rgba, palette);
  }
  const gif = gifenc.GIFEncoder();
  const W = width * scale;
  const H = height * scale;
  const frameIndex = new Uint8Array(W * H);
  for (let t = 0; t < frames; t++) {
    for (let y = 0; y < H; y++) {
      const src = (t * height + Math.floor(y / scale)) * width;
      for (let x = 0; x < W; x++) frameIndex[y * W + x] = index[src + Math.floor(x / scale)] ?? 0;
    }
    gif.writeFrame(frameIndex, W, H, { palette, delay: Math.round(1000 / fps), repeat: 0 });
  }
  gif.finish();
  return gif.bytes();
}

/** A PNG (8-bit RGB, no interlace) of [H, W, 3] bytes. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  if (rgb.length !== width * height * 3) throw new RangeError(`encodePng: ${rgb.length} bytes for ${width}x${height} RGB`);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0; // filter: none
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1);
  }
  const chunk = (type: string, data: Buffer) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    data.copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** All frames side by side (upscaled, one white gap between frames) as one PNG. */
export function framesToPng(video: RgbVideo, options: { scale?: number } = {}): Buffer {
  const big = upscale(video, options.scale ?? DEFAULT_SCALE);
  const gap = Math.max(1, Math.floor((options.scale ?? DEFAULT_SCALE) / 2));
  const W = big.frames * big.width + (big.frames - 1) * gap;
  const strip = new Uint8Array(W * big.height * 3).fill(255);
  for (let t = 0; t < big.frames; t++) {
    for (let y = 0; y < big.height; y++) {
      const src = ((t * big.height + y) * big.width) * 3;
      strip.set(big.rgb.subarray(src, src + big.width * 3), (y * W + t * (big.width + gap)) * 3);
    }
  }
  return encodePng(strip, W, big.height);
}

let ffmpegFound: boolean | undefined;

/** Whether `ffmpeg` runs from PATH (checked once per process). */
export function hasFfmpeg(): boolean {
  ffmpegFound ??= spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
  return ffmpegFound;
}

/** Encodes an mp4 (H.264, yuv420p) with ffmpeg from raw frames on stdin. */
export async function writeMp4(video: RgbVideo, path: string, options: { scale?: number; fps?: number; signal?: AbortSignal } = {}): Promise<void> {
  const scale = options.scale ?? DEFAULT_SCALE;
  const fps = options.fps ?? DEFAULT_FPS;
  // yuv420p needs even sizes; the scale filter rounds up odd ones.
  const filter = `scale=${video.width * scale + ((video.width * scale) % 2)}:${video.height * scale + ((video.height * scale) % 2)}:flags=neighbor`;
  await execa(
    'ffmpeg',
    ['-y', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${video.width}x${video.height}`, '-r', String(fps), '-i', 'pipe:0',
      '-vf', filter, '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', path],
    { input: Buffer.from(video.rgb.buffer, video.rgb.byteOffset, video.rgb.byteLength), ...(options.signal ? { cancelSignal: options.signal } : {}) },
  );
}

/**
 * A file name (without extension) from a prompt as upstream names its mp4s — the first 100
 * characters — made safe for every filesystem: path separators, reserved and control characters
 * become `_`, and leading/trailing dots and spaces go.
 */
export function videoBaseName(prompt: string): string {
  const first100 = Array.from(prompt).slice(0, 100).join('');
  // eslint-disable-next-line no-control-regex
  const safe = first100.replace(/[/\\:*?"<>|\x00-\x1f\x7f]/g, '_').replace(/^[\s.]+|[\s.]+$/g, '');
  return safe.length === 0 ? 'video' : safe;
}
