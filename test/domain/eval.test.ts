import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKGROUND, COLORS, clip, domainConfig } from '../../runner/domain/clips.js';
import { analyzeVideo, evaluateVideos, featureFrechetDistance, fitBouncingMotion, type LabelledVideo } from '../../runner/domain/eval.js';
import { CounterRng } from '../../runner/domain/rng.js';
import type { RgbVideo } from '../../runner/domain/rgb.js';

const cfg = domainConfig();
const set = (split: 'train' | 'heldout', n: number): LabelledVideo[] =>
  Array.from({ length: n }, (_, i) => {
    const c = clip(cfg, split, i);
    return { prompt: c.prompt, video: c.video };
  });
const train = set('train', 60);
const heldout = set('heldout', 60);

test('real clips: adherence 1 on colour, shape and direction (bounces included); consistent and smooth', () => {
  const m = evaluateVideos(train, heldout);
  assert.deepEqual(m.generated.adherence, { color: 1, shape: 1, direction: 1, all: 1 });
  assert.deepEqual(m.reference.adherence, { color: 1, shape: 1, direction: 1, all: 1 });
  assert.equal(m.generated.temporal.identity, 1);
  assert.equal(m.generated.temporal.smooth, 1);
  assert.equal(m.generated.temporal.presence, 1);
  assert.ok(m.generated.temporal.motionRmse < 0.6, `rmse ${m.generated.temporal.motionRmse}`);
  assert.ok(Math.abs(m.dynamicDegree.ratio - 1) < 0.1, `ratio ${m.dynamicDegree.ratio}`);
  assert.ok(m.frechetDistance < 0.1, `train vs held-out FD ${m.frechetDistance}`);
});

test('the Fréchet distance of a set against itself is 0', () => {
  const features = heldout.map((v) => analyzeVideo(v.video).features);
  assert.ok(featureFrechetDistance(features, features) < 1e-9);
});

function noiseVideo(seed: number): RgbVideo {
  const rng = new CounterRng([seed, 99]);
  const rgb = new Uint8Array(9 * 32 * 32 * 3).map(() => rng.int(256));
  return { frames: 9, height: 32, width: 32, rgb };
}

test('noise scores low on adherence and far in Fréchet distance', () => {
  const noise = heldout.slice(0, 30).map((v, i) => ({ prompt: v.prompt, video: noiseVideo(i) }));
  const m = evaluateVideos(noise, heldout);
  const real = evaluateVideos(train.slice(0, 30), heldout);
  assert.ok(m.generated.adherence.all <= 0.1, `all ${m.generated.adherence.all}`);
  assert.ok(m.generated.adherence.color <= 0.4, `colour ${m.generated.adherence.color}`);
  assert.ok(m.generated.temporal.smooth <= 0.2, `smooth ${m.generated.temporal.smooth}`);
  assert.ok(m.generated.temporal.presence <= 0.2, `presence ${m.generated.temporal.presence}`);
  assert.ok(m.frechetDistance > 20 * real.frechetDistance, `noise FD ${m.frechetDistance} vs real ${real.frechetDistance}`);
});

function recolor(video: RgbVideo, to: readonly number[]): RgbVideo {
  const rgb = video.rgb.slice();
  for (let p = 0; p < rgb.length; p += 3) {
    if (rgb[p] !== BACKGROUND[0] || rgb[p + 1] !== BACKGROUND[1] || rgb[p + 2] !== BACKGROUND[2]) rgb.set(to, p);
  }
  return { ...video, rgb };
}

test('a clip with the wrong colour is caught, and only its colour', () => {
  const wrong = heldout.slice(0, 30).map((v) => {
    const other = v.prompt.includes(' red ') ? COLORS.blue! : COLORS.red!;
    return { prompt: v.prompt, video: recolor(v.video, other) };
  });
  const m = evaluateVideos(wrong, heldout);
  assert.equal(m.generated.adherence.color, 0);
  assert.equal(m.generated.adherence.shape, 1);
  assert.equal(m.generated.adherence.direction, 1);
});

test('a frozen clip is still: wrong direction, zero dynamic degree', () => {
  const frozen = heldout.slice(0, 20).map((v) => {
    const first = v.video.rgb.subarray(0, 32 * 32 * 3);
    const rgb = new Uint8Array(v.video.rgb.length);
    for (let t = 0; t < 9; t++) rgb.set(first, t * first.length);
    return { prompt: v.prompt, video: { ...v.video, rgb } };
  });
  const m = evaluateVideos(frozen, heldout);
  assert.equal(m.generated.adherence.direction, 0);
  assert.equal(m.dynamicDegree.generated, 0);
  assert.equal(analyzeVideo(frozen[0]!.video).direction, 'still');
});

test('bouncing-motion fit recovers velocity through reflections', () => {
  const positions = Array.from({ length: 9 }, (_, t) => {
    const u = 3 - 2.5 * t; // leaves through 0 at t = 1.2
    return Math.round(Math.abs(u));
  });
  const fit = fitBouncingMotion(positions, 20, 8);
  assert.ok(Math.abs(fit.v + 2.5) < 0.15, `v ${fit.v}`);
  assert.ok(fit.rmse < 0.5);
  assert.deepEqual(fitBouncingMotion([5, NaN], 20, 8), { v: 0, rmse: 0 });
});
