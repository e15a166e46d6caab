// Evaluation on decoded RGB videos, measuring what the paper measures, on this domain:
//   prompt adherence  — do the detected object's colour, shape and first direction of motion
//                       match the prompt (three fractions, and all three at once);
//   temporal consistency — the object keeps one colour and shape (identity), and moves like a
//                       ball between walls: constant velocity with reflections (motion RMSE of
//                       that fit; "smooth" = RMSE ≤ 1 px);
//   dynamic degree    — mean centroid speed, against the reference clips';
//   Fréchet distance  — between Gaussian fits of per-video feature vectors of generated vs
//                       held-out real clips (FVD's recipe with hand-made features).
// Detection is background subtraction: pixels far from the background colour, largest
// 4-connected component. Colour is the nearest palette entry to the component's mean colour;
// shape is the renderer's own template (clips.ts shapeMask) with the best IoU.

import { BACKGROUND, COLORS, DIRECTIONS, SHAPES, parsePrompt, reflect, shapeMask, type Shape } from './clips.js';
import { covariance, frechetDistance, mean } from './linalg.js';
import type { RgbVideo } from './rgb.js';

/** A pixel is foreground when some channel differs from the background by more than this. */
const FOREGROUND_THRESHOLD = 64;
/** Below this speed (px/frame) the object counts as not moving. */
const STILL_SPEED = 0.3;
/** Largest bounding box (fraction of the frame) still taken for an object. */
const MAX_OBJECT_BOX = 0.5;
/** Motion RMSE (px) up to which a video's motion counts as smooth. */
const SMOOTH_RMSE = 1.0;

export interface FrameDetection {
  readonly found: boolean;
  /** Pixels of the object (largest component). */
  readonly area: number;
  /** Inclusive bounding box. */
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
  readonly cx: number;
  readonly cy: number;
  /** Mean colour of the object's pixels. */
  readonly rgb: readonly [number, number, number];
  readonly color?: string;
  readonly shape?: Shape;
  /** IoU of the best shape template. */
  readonly shapeIoU: number;
  /** Foreground pixels outside the object, as a fraction of the frame. */
  readonly stray: number;
  /** Mean colour of the background pixels. */
  readonly background: readonly [number, number, number];
  /** Fraction of the object's pixels nearest to each palette colour (palette order). */
  readonly colorHistogram: readonly number[];
}

export interface VideoAnalysis {
  readonly frames: readonly FrameDetection[];
  /** Majority colour / shape over frames with an object; undefined when none was found. */
  readonly color?: string;
  readonly shape?: Shape;
  /** Direction of the fitted initial velocity, or 'still'; undefined when the object is seen in < 2 frames. */
  readonly direction?: string;
  readonly vx: number;
  readonly vy: number;
  /** Mean centroid displacement per frame between consecutive frames with an object. */
  readonly speed: number;
  readonly motionRmse: number;
  /** Fraction of frames whose colour and shape equal the majority ones (0 if nothing found). */
  readonly identity: number;
  /** Fraction of frames with an object. */
  readonly presence: number;
  readonly features: Float64Array;
}

const PALETTE = Object.entries(COLORS);

function nearestColor(rgb: readonly number[]): string {
  let best = '';
  let bestDist = Infinity;
  for (const [name, c] of PALETTE) {
    const d = (c[0] - (rgb[0] ?? 0)) ** 2 + (c[1] - (rgb[1] ?? 0)) ** 2 + (c[2] - (rgb[2] ?? 0)) ** 2;
    if (d < bestDist) {
      bestDist = d;
      best = name;
    }
  }
  return best;
}

function matchShape(component: Uint8Array, width: number, box: { x0: number; y0: number; x1: number; y1: number }): { shape?: Shape; iou: number } {
  const w = box.x1 - box.x0 + 1;
  const h = box.y1 - box.y0 + 1;
  const s = Math.max(w, h);
  let best: Shape | undefined;
  let bestIoU = -1;
  const height = component.length / width;
  for (const shape of SHAPES) {
    const mask = shapeMask(shape, s);
    // Anchor the template at the box's corners: shapes that leave their top row empty (even-sized triangles) fit bottom-anchored.
    for (const top of new Set([box.y0, box.y1 - s + 1])) {
      for (const left of new Set([box.x0, box.x1 - s + 1])) {
        let inter = 0;
        let union = 0;
        const ya = Math.min(top, box.y0);
        const yb = Math.max(top + s - 1, box.y1);
        const xa = Math.min(left, box.x0);
        const xb = Math.max(left + s - 1, box.x1);
        for (let y = ya; y <= yb; y++) {
          for (let x = xa; x <= xb; x++) {
            const inImage = y >= 0 && y < height && x >= 0 && x < width;
            const a = inImage && component[y * width + x] === 1;
            const ty = y - top;
            const tx = x - left;
            const b = ty >= 0 && ty < s && tx >= 0 && tx < s && mask[ty * s + tx] === 1;
            if (a && b) inter++;
            if (a || b) union++;
          }
        }
        const iou = union === 0 ? 0 : inter / union;
        if (iou > bestIoU) {
          bestIoU = iou;
          best = shape;
        }
      }
    }
  }
  return best === undefined ? { iou: 0 } : { shape: best, iou: bestIoU };
}

/** Finds the object in one frame ([H, W, 3] bytes). */
export function detectFrame(frame: Uint8Array, height: number, width: number): FrameDetection {
  const n = height * width;
  const fg = new Uint8Array(n);
  let fgCount = 0;
  const bgSum = [0, 0, 0];
  for (let p = 0; p < n; p++) {
    const r = frame[p * 3] ?? 0;
    const g = frame[p * 3 + 1] ?? 0;
    const b = frame[p * 3 + 2] ?? 0;
    if (Math.max(Math.abs(r - BACKGROUND[0]), Math.abs(g - BACKGROUND[1]), Math.abs(b - BACKGROUND[2])) > FOREGROUND_THRESHOLD) {
      fg[p] = 1;
      fgCount++;
    } else {
      bgSum[0]! += r;
      bgSum[1]! += g;
      bgSum[2]! += b;
    }
  }
  const bgPixels = n - fgCount;
  const background: [number, number, number] = bgPixels > 0 ? [bgSum[0]! / bgPixels, bgSum[1]! / bgPixels, bgSum[2]! / bgPixels] : [0, 0, 0];
  const empty: FrameDetection = {
    found: false, area: 0, x0: 0, y0: 0, x1: -1, y1: -1, cx: 0, cy: 0, rgb: [0, 0, 0], shapeIoU: 0,
    stray: fgCount / n, background, colorHistogram: PALETTE.map(() => 0),
  };
  if (fgCount === 0) return empty;

  // Largest 4-connected component of the foreground.
  const label = new Int32Array(n).fill(-1);
  const stack: number[] = [];
  let bestLabel = -1;
  let bestSize = 0;
  for (let start = 0, next = 0; start < n; start++) {
    if (fg[start] === 0 || label[start] !== -1) continue;
    const id = next++;
    let size = 0;
    label[start] = id;
    stack.push(start);
    while (stack.length > 0) {
      const p = stack.pop()!;
      size++;
      const x = p % width;
      const y = (p - x) / width;
      const neighbours = [x > 0 ? p - 1 : -1, x < width - 1 ? p + 1 : -1, y > 0 ? p - width : -1, y < height - 1 ? p + width : -1];
      for (const q of neighbours) {
        if (q >= 0 && fg[q] === 1 && label[q] === -1) {
          label[q] = id;
          stack.push(q);
        }
      }
    }
    if (size > bestSize) {
      bestSize = size;
      bestLabel = id;
    }
  }
  const component = new Uint8Array(n);
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  let sx = 0;
  let sy = 0;
  const sum = [0, 0, 0];
  const histogram = PALETTE.map(() => 0);
  for (let p = 0; p < n; p++) {
    if (label[p] !== bestLabel) continue;
    component[p] = 1;
    const x = p % width;
    const y = (p - x) / width;
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
    sx += x;
    sy += y;
    const px = [frame[p * 3] ?? 0, frame[p * 3 + 1] ?? 0, frame[p * 3 + 2] ?? 0];
    for (let c = 0; c < 3; c++) sum[c]! += px[c]!;
    const nearest = nearestColor(px);
    histogram[PALETTE.findIndex(([name]) => name === nearest)]!++;
  }
  // An "object" spanning over half the frame is not one (noise, a washed-out frame): nothing found.
  if ((x1 - x0 + 1) * (y1 - y0 + 1) > MAX_OBJECT_BOX * n) return empty;
  const rgb: [number, number, number] = [sum[0]! / bestSize, sum[1]! / bestSize, sum[2]! / bestSize];
  const { shape, iou } = matchShape(component, width, { x0, y0, x1, y1 });
  return {
    found: true, area: bestSize, x0, y0, x1, y1, cx: sx / bestSize, cy: sy / bestSize, rgb,
    color: nearestColor(rgb), ...(shape === undefined ? {} : { shape }), shapeIoU: iou,
    stray: (fgCount - bestSize) / n, background, colorHistogram: histogram.map((h) => h / bestSize),
  };
}

/**
 * Fits p(t) = reflect(p0 + v·t, extent) to one axis's positions (NaN = not seen) by grid search
 * over v and p0. Returns the velocity as seen at the first observed frame (its sign is the
 * initial direction of motion) and the RMS residual in pixels.
 */
export function fitBouncingMotion(positions: readonly number[], extent: number, maxSpeed: number): { v: number; rmse: number } {
  const seen = positions.map((p, t) => [t, p] as const).filter(([, p]) => Number.isFinite(p));
  if (seen.length < 2) return { v: 0, rmse: 0 };
  const cost = (p0: number, v: number) => {
    let c = 0;
    for (const [t, p] of seen) c += (reflect(p0 + v * t, extent) - p) ** 2;
    return c;
  };
  // reflect is even, so starts in [0, extent] with either sign of v cover every motion. Coarse
  // grid first, then a fine one around the best coarse point.
  let best = { v: 0, p0: 0, cost: Infinity };
  const search = (vLo: number, vHi: number, vStep: number, pLo: number, pHi: number, pStep: number) => {
    for (let v = vLo; v <= vHi + 1e-9; v += vStep) {
      for (let p0 = Math.max(0, pLo); p0 <= Math.min(extent, pHi) + 1e-9; p0 += pStep) {
        const c = cost(p0, v);
        if (c < best.cost - 1e-9 || (Math.abs(c - best.cost) <= 1e-9 && Math.abs(v) < Math.abs(best.v))) best = { v, p0, cost: c };
      }
    }
  };
  search(-maxSpeed, maxSpeed, 0.1, 0, extent, 0.5);
  const coarse = best;
  search(coarse.v - 0.1, coarse.v + 0.1, 0.02, coarse.p0 - 0.5, coarse.p0 + 0.5, 0.1);
  // Report the velocity as the video shows it at the start: a start at (or just before) a wall
  // with v towards it is, on screen, a start moving away from it.
  const firstT = seen[0]![0];
  const shown = reflect(best.p0 + best.v * (firstT + 0.5), extent) - reflect(best.p0 + best.v * firstT, extent);
  const v = shown < 0 ? -Math.abs(best.v) : Math.abs(best.v);
  return { v: Math.abs(v) < 1e-9 ? 0 : v, rmse: Math.sqrt(best.cost / seen.length) };
}

function directionOf(vx: number, vy: number): string {
  if (Math.hypot(vx, vy) < STILL_SPEED) return 'still';
  let best = 'still';
  let bestCos = -Infinity;
  for (const [name, [ux, uy]] of Object.entries(DIRECTIONS)) {
    const cos = (vx * ux + vy * uy) / Math.hypot(vx, vy);
    if (cos > bestCos) {
      bestCos = cos;
      best = name;
    }
  }
  return best;
}

function majority<T>(items: readonly T[]): T | undefined {
  const counts = new Map<T, number>();
  let best: T | undefined;
  let bestCount = 0;
  for (const item of items) {
    const c = (counts.get(item) ?? 0) + 1;
    counts.set(item, c);
    if (c > bestCount) {
      bestCount = c;
      best = item;
    }
  }
  return best;
}

/** Length of the feature vector used for the Fréchet distance. */
export const FEATURE_DIM = 18 + PALETTE.length;

/** Detects the object in every frame and summarises colour, shape, motion and features. */
export function analyzeVideo(video: RgbVideo): VideoAnalysis {
  const { frames, height, width } = video;
  const frameBytes = height * width * 3;
  const detections = Array.from({ length: frames }, (_, t) => detectFrame(video.rgb.subarray(t * frameBytes, (t + 1) * frameBytes), height, width));
  const found = detections.filter((d) => d.found);
  const color = majority(found.map((d) => d.color));
  const shape = majority(found.map((d) => d.shape).filter((s): s is Shape => s !== undefined));
  const identity = found.length === 0 ? 0 : found.filter((d) => d.color === color && d.shape === shape).length / frames;

  // Per-axis bouncing-motion fit of the object's top-left corner (the bottom row of every shape is full width).
  const sizes = found.map((d) => Math.max(d.x1 - d.x0 + 1, d.y1 - d.y0 + 1)).sort((a, b) => a - b);
  const size = sizes[Math.floor(sizes.length / 2)] ?? 0;
  const xs = detections.map((d) => (d.found ? d.x0 : NaN));
  const ys = detections.map((d) => (d.found ? d.y1 - size + 1 : NaN));
  const maxSpeed = Math.max(width, height) / 4;
  const fx = fitBouncingMotion(xs, Math.max(0, width - size), maxSpeed);
  const fy = fitBouncingMotion(ys, Math.max(0, height - size), maxSpeed);
  let travelled = 0;
  let steps = 0;
  for (let t = 1; t < frames; t++) {
    const a = detections[t - 1]!;
    const b = detections[t]!;
    if (a.found && b.found) {
      travelled += Math.hypot(b.cx - a.cx, b.cy - a.cy);
      steps++;
    }
  }
  const speed = steps === 0 ? 0 : travelled / steps;
  const motionRmse = Math.hypot(fx.rmse, fy.rmse);
  const direction = found.length >= 2 ? directionOf(fx.v, fy.v) : undefined;

  const avg = (f: (d: FrameDetection) => number, over: readonly FrameDetection[]) => (over.length === 0 ? 0 : over.reduce((s, d) => s + f(d), 0) / over.length);
  let temporalChange = 0;
  for (let i = frameBytes; i < video.rgb.length; i++) temporalChange += Math.abs((video.rgb[i] ?? 0) - (video.rgb[i - frameBytes] ?? 0));
  temporalChange /= Math.max(1, video.rgb.length - frameBytes) * 255;
  const frameArea = height * width;
  const features = new Float64Array(FEATURE_DIM);
  const values = [
    avg((d) => d.rgb[0] / 255, found), avg((d) => d.rgb[1] / 255, found), avg((d) => d.rgb[2] / 255, found),
    avg((d) => d.background[0] / 255, detections), avg((d) => d.background[1] / 255, detections), avg((d) => d.background[2] / 255, detections),
    avg((d) => d.area / frameArea, found),
    avg((d) => d.area / ((d.x1 - d.x0 + 1) * (d.y1 - d.y0 + 1)), found),
    avg((d) => (d.x1 - d.x0 + 1) / (d.y1 - d.y0 + 1), found) / 2,
    speed / width, Math.abs(fx.v) / width, Math.abs(fy.v) / height, motionRmse / width,
    identity, found.length / frames, avg((d) => d.stray, detections), temporalChange, avg((d) => d.shapeIoU, found),
    ...PALETTE.map((_, i) => avg((d) => d.colorHistogram[i] ?? 0, found)),
  ];
  values.forEach((v, i) => (features[i] = v));
  return {
    frames: detections,
    ...(color === undefined ? {} : { color }),
    ...(shape === undefined ? {} : { shape }),
    ...(direction === undefined ? {} : { direction }),
    vx: fx.v, vy: fy.v, speed, motionRmse, identity, presence: found.length / frames, features,
  };
}

export interface LabelledVideo {
  readonly prompt: string;
  readonly video: RgbVideo;
}

export interface AdherenceScores {
  readonly color: number;
  readonly shape: number;
  readonly direction: number;
  /** All three at once. */
  readonly all: number;
}

export interface SetScores {
  readonly videos: number;
  /** Videos whose prompt is a domain prompt (the adherence denominators). */
  readonly scored: number;
  readonly adherence: AdherenceScores;
  readonly temporal: { readonly identity: number; readonly smooth: number; readonly motionRmse: number; readonly presence: number };
  /** Mean centroid speed, pixels per frame. */
  readonly speed: number;
}

export interface EvalMetrics {
  readonly generated: SetScores;
  readonly reference: SetScores;
  readonly dynamicDegree: { readonly generated: number; readonly reference: number; readonly ratio: number };
  readonly frechetDistance: number;
}

/** Scores one set of videos against their prompts. */
export function scoreSet(videos: readonly LabelledVideo[], analyses: readonly VideoAnalysis[] = videos.map((v) => analyzeVideo(v.video))): SetScores {
  let scored = 0;
  const hits = { color: 0, shape: 0, direction: 0, all: 0 };
  analyses.forEach((a, i) => {
    const want = parsePrompt(videos[i]!.prompt);
    if (want === undefined) return;
    scored++;
    const c = a.color === want.color;
    const s = a.shape === want.shape;
    const d = a.direction === want.direction;
    hits.color += Number(c);
    hits.shape += Number(s);
    hits.direction += Number(d);
    hits.all += Number(c && s && d);
  });
  const frac = (k: number) => (scored === 0 ? 0 : k / scored);
  const avg = (f: (a: VideoAnalysis) => number) => (analyses.length === 0 ? 0 : analyses.reduce((s, a) => s + f(a), 0) / analyses.length);
  return {
    videos: videos.length,
    scored,
    adherence: { color: frac(hits.color), shape: frac(hits.shape), direction: frac(hits.direction), all: frac(hits.all) },
    temporal: {
      identity: avg((a) => a.identity),
      smooth: avg((a) => Number(a.presence > 0 && a.motionRmse <= SMOOTH_RMSE)),
      motionRmse: avg((a) => a.motionRmse),
      presence: avg((a) => a.presence),
    },
    speed: avg((a) => a.speed),
  };
}

/** Fréchet distance between the Gaussian fits of two sets of feature vectors. */
export function featureFrechetDistance(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  const d = FEATURE_DIM;
  const ma = mean(a, d);
  const mb = mean(b, d);
  return frechetDistance(ma, covariance(a, d, ma), mb, covariance(b, d, mb), d);
}

/** Every metric of the eval stage: generated videos against held-out real clips. */
export function evaluateVideos(generated: readonly LabelledVideo[], reference: readonly LabelledVideo[]): EvalMetrics {
  const ga = generated.map((v) => analyzeVideo(v.video));
  const ra = reference.map((v) => analyzeVideo(v.video));
  const g = scoreSet(generated, ga);
  const r = scoreSet(reference, ra);
  return {
    generated: g,
    reference: r,
    dynamicDegree: { generated: g.speed, reference: r.speed, ratio: r.speed === 0 ? 0 : g.speed / r.speed },
    frechetDistance: featureFrechetDistance(ga.map((a) => a.features), ra.map((a) => a.features)),
  };
}
