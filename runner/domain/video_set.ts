// The `videos` artifact: a directory of generated (or real) clips, for eval and for people.
//
//   videos.safetensors  tensor `frames` U8 [N, F, H, W, 3] — the exact decoded pixels eval reads;
//                       metadata format "cfpipe-videos/1", prompts (JSON array of N), fps
//   index.json          [{ "prompt", "gif", "mp4"?, "png"? }] in the same order
//   <prompt[:100]>.gif  always; .mp4 when ffmpeg is on PATH (or when asked); .png strips on request
//
// Videos that share a prompt get " (2)", " (3)"... after the name, since upstream's plain
// `<prompt[:100]>.mp4` would let the second overwrite (or skip) the first.

import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsError, SafetensorsReader, writeSafetensors } from './safetensors.js';
import { DEFAULT_FPS, DEFAULT_SCALE, encodeGif, framesToPng, hasFfmpeg, videoBaseName, writeMp4 } from './video.js';
import type { RgbVideo } from './rgb.js';

export const VIDEO_SET_FORMAT = 'cfpipe-videos/1';
export const VIDEO_SET_FILE = 'videos.safetensors';

export interface LabelledClip {
  readonly prompt: string;
  readonly video: RgbVideo;
}

export interface VideoSetEntry {
  readonly prompt: string;
  readonly gif: string;
  readonly mp4?: string;
  readonly png?: string;
}

export interface VideoSetOptions {
  /** mp4 files: 'auto' (default) writes them when ffmpeg is on PATH. */
  readonly mp4?: boolean | 'auto';
  readonly png?: boolean;
  readonly scale?: number;
  readonly fps?: number;
  readonly signal?: AbortSignal;
  /** Extra string metadata stored with the frames (sampler, steps, network calls per video...). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Writes a video set into `dir` (created if needed). All clips must share one size. */
export async function writeVideoSet(dir: string, clips: readonly LabelledClip[], options: VideoSetOptions = {}): Promise<VideoSetEntry[]> {
  mkdirSync(dir, { recursive: true });
  const first = clips[0]?.video;
  const [frames, height, width] = first ? [first.frames, first.height, first.width] : [0, 0, 0];
  for (const c of clips) {
    if (c.video.frames !== frames || c.video.height !== height || c.video.width !== width) {
      throw new RangeError(`video set: clip "${c.prompt}" is ${c.video.frames}x${c.video.height}x${c.video.width}, the first is ${frames}x${height}x${width}`);
    }
  }
  const fps = options.fps ?? DEFAULT_FPS;
  const scale = options.scale ?? DEFAULT_SCALE;
  const mp4 = options.mp4 === 'auto' || options.mp4 === undefined ? hasFfmpeg() : options.mp4;
  const data = new Uint8Array(clips.length * frames * height * width * 3);
  clips.forEach((c, i) => data.set(c.video.rgb, i * c.video.rgb.length));
  writeSafetensors(join(dir, VIDEO_SET_FILE), [{ name: 'frames', dtype: 'U8', shape: [clips.length, frames, height, width, 3], data }], {
    ...options.metadata,
    format: VIDEO_SET_FORMAT,
    prompts: JSON.stringify(clips.map((c) => c.prompt)),
    fps: String(fps),
  });
  const used = new Map<string, number>();
  const entries: VideoSetEntry[] = [];
  for (const c of clips) {
    options.signal?.throwIfAborted();
    const base = videoBaseName(c.prompt);
    const n = (used.get(base) ?? 0) + 1;
    used.set(base, n);
    const name = n === 1 ? base : `${base} (${n})`;
    writeFileSync(join(dir, `${name}.gif`), encodeGif(c.video, { scale, fps }));
    const entry: { prompt: string; gif: string; mp4?: string; png?: string } = { prompt: c.prompt, gif: `${name}.gif` };
    if (mp4) {
      await writeMp4(c.video, join(dir, `${name}.mp4`), { scale, fps, ...(options.signal ? { signal: options.signal } : {}) });
      entry.mp4 = `${name}.mp4`;
    }
    if (options.png) {
      writeFileSync(join(dir, `${name}.png`), framesToPng(c.video, { scale }));
      entry.png = `${name}.png`;
    }
    entries.push(entry);
  }
  const indexTemp = join(dir, `index.json.tmp-${process.pid}`);
  writeFileSync(indexTemp, `${JSON.stringify(entries, null, 2)}\n`);
  renameSync(indexTemp, join(dir, 'index.json'));
  return entries;
}

/** Reads the clips of a video set back, in order. */
export function readVideoSet(dir: string): LabelledClip[] {
  const file = new SafetensorsReader(join(dir, VIDEO_SET_FILE));
  try {
    if (file.metadata.format !== VIDEO_SET_FORMAT) throw new SafetensorsError(`${dir}: not a video set (format ${JSON.stringify(file.metadata.format ?? null)})`);
    const entry = file.entry('frames');
    const [n = 0, frames = 0, height = 0, width = 0, channels = 0] = entry.shape;
    if (entry.dtype !== 'U8' || entry.shape.length !== 5 || channels !== 3) throw new SafetensorsError(`${dir}: \`frames\` must be U8 [N, F, H, W, 3]`);
    const prompts = JSON.parse(file.metadata.prompts ?? 'null') as unknown;
    if (!Array.isArray(prompts) || prompts.length !== n) throw new SafetensorsError(`${dir}: metadata \`prompts\` must list ${n} prompts`);
    const bytes = file.readBytes('frames');
    const per = frames * height * width * 3;
    return prompts.map((prompt, i) => ({
      prompt: String(prompt),
      video: { frames, height, width, rgb: new Uint8Array(bytes.buffer, bytes.byteOffset + i * per, per) },
    }));
  } finally {
    file.close();
  }
}

/** The extra metadata a video set was written with (without the format's own keys). */
export function readVideoSetMetadata(dir: string): Record<string, string> {
  const file = new SafetensorsReader(join(dir, VIDEO_SET_FILE));
  try {
    const { format: _format, prompts: _prompts, ...rest } = file.metadata;
    return rest;
  } finally {
    file.close();
  }
}

/** The index of a video set (which files show which prompt). */
export function readVideoIndex(dir: string): VideoSetEntry[] {
  return JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as VideoSetEntry[];
}
