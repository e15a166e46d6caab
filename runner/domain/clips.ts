// The procedural video domain: one coloured shape on a plain background, moving at constant
// velocity and bouncing off the borders. Everything about clip i of a split is a pure function
// of (seed, split, i) — see rng.ts — so datasets of any size agree on their common clips.
//
// Default preset (CPU): 9 RGB frames of 32x32. Why: with the 4x space-to-depth "VAE" a clip is
// a [9, 48, 8, 8] latent, i.e. 16 tokens per frame with a (1, 2, 2) patch and 144 tokens per clip,
// small enough that a DiT of a few hundred thousand parameters trains a step in milliseconds on
// 2 cores; 9 frames divide into blocks of 1 (frame-wise) and 3 (chunk-wise); and a 7–11 px
// object moving 2–3 px per frame crosses most of the frame, so most clips show a bounce.

import { CounterRng } from './rng.js';
import type { Rgb, RgbVideo } from './rgb.js';

/** The palette. Far apart in RGB so a colour survives noisy generation; named as in prompts. */
export const COLORS: Readonly<Record<string, Rgb>> = {
  red: [230, 40, 40],
  green: [40, 200, 60],
  blue: [50, 90, 240],
  yellow: [240, 220, 40],
  magenta: [220, 50, 220],
  cyan: [40, 210, 220],
};

/** The plain background every clip uses (dark grey, far from every palette colour). */
export const BACKGROUND: Rgb = [24, 24, 24];

export const SHAPES = ['square', 'disc', 'triangle', 'cross'] as const;
export type Shape = (typeof SHAPES)[number];

/** Directions as prompts name them, with their unit step in image axes (y grows downward). */
export const DIRECTIONS: Readonly<Record<string, readonly [number, number]>> = {
  left: [-1, 0],
  right: [1, 0],
  up: [0, -1],
  down: [0, 1],
  'up-left': [-Math.SQRT1_2, -Math.SQRT1_2],
  'up-right': [Math.SQRT1_2, -Math.SQRT1_2],
  'down-left': [-Math.SQRT1_2, Math.SQRT1_2],
  'down-right': [Math.SQRT1_2, Math.SQRT1_2],
};

export type Split = 'train' | 'heldout';
const SPLIT_STREAM: Readonly<Record<Split, number>> = { train: 0, heldout: 1 };

export interface DomainConfig {
  readonly frames: number;
  readonly height: number;
  readonly width: number;
  readonly seed: number;
  readonly colors: readonly string[];
  readonly shapes: readonly Shape[];
  readonly directions: readonly string[];
  /** Object side in pixels, inclusive range. */
  readonly sizeMin: number;
  readonly sizeMax: number;
  /** Speed in pixels per frame. */
  readonly speedMin: number;
  readonly speedMax: number;
}

/** The domain with defaults for everything not given; sizes and speeds scale with the frame. */
export function domainConfig(partial: Partial<DomainConfig> = {}): DomainConfig {
  const frames = partial.frames ?? 9;
  const height = partial.height ?? 32;
  const width = partial.width ?? 32;
  const side = Math.min(height, width);
  const cfg: DomainConfig = {
    frames,
    height,
    width,
    seed: partial.seed ?? 0,
    colors: partial.colors ?? Object.keys(COLORS),
    shapes: partial.shapes ?? SHAPES,
    directions: partial.directions ?? Object.keys(DIRECTIONS),
    sizeMin: partial.sizeMin ?? Math.max(3, Math.round(side * 0.22)),
    sizeMax: partial.sizeMax ?? Math.max(3, Math.round(side * 0.34)),
    speedMin: partial.speedMin ?? side * 0.06,
    speedMax: partial.speedMax ?? side * 0.1,
  };
  const problems = checkDomain(cfg);
  if (problems.length > 0) throw new RangeError(`invalid domain: ${problems.join('; ')}`);
  return cfg;
}

/** What is wrong with a domain config (empty when it is usable). */
export function checkDomain(cfg: DomainConfig): string[] {
  const problems: string[] = [];
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) problems.push(`${name} must be a positive integer, got ${v}`);
  };
  positiveInt('frames', cfg.frames);
  positiveInt('height', cfg.height);
  positiveInt('width', cfg.width);
  if (!Number.isInteger(cfg.sizeMin) || !Number.isInteger(cfg.sizeMax) || cfg.sizeMin < 3 || cfg.sizeMax < cfg.sizeMin) {
    problems.push(`object size range ${cfg.sizeMin}..${cfg.sizeMax} must be integers with 3 ≤ min ≤ max`);
  }
  if (cfg.sizeMax >= Math.min(cfg.height, cfg.width)) problems.push(`objects (up to ${cfg.sizeMax} px) must be smaller than the frame`);
  if (!(cfg.speedMin >= 0 && cfg.speedMax >= cfg.speedMin)) problems.push(`speed range ${cfg.speedMin}..${cfg.speedMax} is empty`);
  for (const c of cfg.colors) if (COLORS[c] === undefined) problems.push(`unknown colour \`${c}\``);
  for (const s of cfg.shapes) if (!SHAPES.includes(s)) problems.push(`unknown shape \`${s}\``);
  for (const d of cfg.directions) if (DIRECTIONS[d] === undefined) problems.push(`unknown direction \`${d}\``);
  if (cfg.colors.length === 0 || cfg.shapes.length === 0 || cfg.directions.length === 0) problems.push('colours, shapes and directions must be non-empty');
  return problems;
}

/** Everything that determines one clip. Positions are the object's top-left corner in pixels. */
export interface ClipSpec {
  readonly split: Split;
  readonly index: number;
  readonly color: string;
  readonly shape: Shape;
  readonly direction: string;
  readonly size: number;
  readonly x0: number;
  readonly y0: number;
  /** Velocity in pixels per frame. */
  readonly vx: number;
  readonly vy: number;
}

export function clipSpec(cfg: DomainConfig, split: Split, index: number): ClipSpec {
  if (!Number.isInteger(index) || index < 0) throw new RangeError(`clip index must be a non-negative integer, got ${index}`);
  const rng = new CounterRng([cfg.seed, SPLIT_STREAM[split], index]);
  const color = rng.pick(cfg.colors);
  const shape = rng.pick(cfg.shapes);
  const direction = rng.pick(cfg.directions);
  const size = cfg.sizeMin + rng.int(cfg.sizeMax - cfg.sizeMin + 1);
  const speed = rng.range(cfg.speedMin, cfg.speedMax);
  const [ux, uy] = DIRECTIONS[direction] ?? [0, 0];
  const vx = ux * speed;
  const vy = uy * speed;
  // The first step never touches a wall, so the prompt's direction is what the first frames show.
  const start = (v: number, extent: number) => rng.range(Math.min(Math.max(0, -v), extent), Math.max(0, Math.min(extent, extent - v)));
  const x0 = start(vx, cfg.width - size);
  const y0 = start(vy, cfg.height - size);
  return { split, index, color, shape, direction, size, x0, y0, vx, vy };
}

export const promptOf = (spec: Pick<ClipSpec, 'color' | 'shape' | 'direction'>): string =>
  `a ${spec.color} ${spec.shape} moving ${spec.direction}`;

/** Parses a domain prompt back into its parts; undefined for anything else. */
export function parsePrompt(prompt: string): { color: string; shape: Shape; direction: string } | undefined {
  const m = /^a (\S+) (\S+) moving (\S+)$/.exec(prompt.trim());
  if (m === null) return undefined;
  const [, color = '', shape = '', direction = ''] = m;
  if (COLORS[color] === undefined || !SHAPES.includes(shape as Shape) || DIRECTIONS[direction] === undefined) return undefined;
  return { color, shape: shape as Shape, direction };
}

/** Folds an unbounded coordinate into [0, extent] as a ball bouncing between two walls does. */
export function reflect(u: number, extent: number): number {
  if (extent <= 0) return 0;
  const period = 2 * extent;
  const m = ((u % period) + period) % period;
  return m <= extent ? m : period - m;
}

/** Top-left corner of the object in frame t (before rounding to pixels). */
export function positionAt(cfg: DomainConfig, spec: ClipSpec, t: number): [number, number] {
  return [reflect(spec.x0 + spec.vx * t, cfg.width - spec.size), reflect(spec.y0 + spec.vy * t, cfg.height - spec.size)];
}

const maskCache = new Map<string, Uint8Array>();

/**
 * The shape's pixels in a size×size box (1 = object), sampled at pixel centres. The renderer
 * and the evaluator's template matcher both use this, so they agree on what a shape is.
 */
export function shapeMask(shape: Shape, size: number): Uint8Array {
  const cacheKey = `${shape}:${size}`;
  const cached = maskCache.get(cacheKey);
  if (cached !== undefined) return cached;
  const mask = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = (x + 0.5) / size - 0.5;
      const v = (y + 0.5) / size - 0.5;
      let inside: boolean;
      switch (shape) {
        case 'square':
          inside = true;
          break;
        case 'disc':
          inside = u * u + v * v <= 0.25;
          break;
        case 'triangle': // apex up, base on the bottom edge
          inside = Math.abs(u) <= (v + 0.5) / 2;
          break;
        case 'cross': // arms one third of the side wide
          inside = Math.abs(u) <= 1 / 6 || Math.abs(v) <= 1 / 6;
          break;
      }
      mask[y * size + x] = inside ? 1 : 0;
    }
  }
  maskCache.set(cacheKey, mask);
  return mask;
}

/** Renders one clip: background, then the object stamped at its rounded position each frame. */
export function renderClip(cfg: DomainConfig, spec: ClipSpec): RgbVideo {
  const { frames, height, width } = cfg;
  const rgb = new Uint8Array(frames * height * width * 3);
  for (let p = 0; p < frames * height * width; p++) rgb.set(BACKGROUND, p * 3);
  const color = COLORS[spec.color] ?? BACKGROUND;
  const mask = shapeMask(spec.shape, spec.size);
  for (let t = 0; t < frames; t++) {
    const [px, py] = positionAt(cfg, spec, t);
    const left = Math.round(px);
    const top = Math.round(py);
    for (let y = 0; y < spec.size; y++) {
      for (let x = 0; x < spec.size; x++) {
        if (mask[y * spec.size + x] === 0) continue;
        rgb.set(color, ((t * height + top + y) * width + left + x) * 3);
      }
    }
  }
  return { frames, height, width, rgb };
}

/** Clip `index` of a split, rendered, with its prompt. */
export function clip(cfg: DomainConfig, split: Split, index: number): { spec: ClipSpec; prompt: string; video: RgbVideo } {
  const spec = clipSpec(cfg, split, index);
  return { spec, prompt: promptOf(spec), video: renderClip(cfg, spec) };
}
