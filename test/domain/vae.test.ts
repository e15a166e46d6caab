import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clip, domainConfig } from '../../runner/domain/clips.js';
import { SpaceToDepthVae } from '../../runner/domain/vae.js';
import { f16ToF32, f32ToF16 } from '../../runner/domain/float16.js';
import { videoToPixels } from '../../runner/domain/rgb.js';

const cfg = domainConfig();

test('latent layout is [F, 3·f², H/f, W/f] and channels 0..2 are the block-mean colour', () => {
  const vae = new SpaceToDepthVae(4);
  assert.deepEqual(vae.latentShape(9, 32, 32), [9, 48, 8, 8]);
  const { video } = clip(cfg, 'train', 3);
  const pixels = videoToPixels(video);
  const z = vae.encode(pixels, 9, 32, 32);
  // block (by=2, bx=5) of frame 4, green channel: mean of its 16 pixels.
  let mean = 0;
  for (let dy = 0; dy < 4; dy++) for (let dx = 0; dx < 4; dx++) mean += pixels[(4 * 3 + 1) * 1024 + (8 + dy) * 32 + 20 + dx]!;
  assert.ok(Math.abs(z[((4 * 48 + 1) * 8 + 2) * 8 + 5]! - mean / 16) < 1e-6);
  assert.ok(z.every((v) => Math.abs(v) <= 1 + 1e-6));
});

test('decode inverts encode exactly for every factor, and 8-bit videos come back byte for byte', () => {
  for (const factor of [1, 2, 4, 8]) {
    const vae = new SpaceToDepthVae(factor);
    const { video } = clip(cfg, 'heldout', factor);
    const z = vae.encodeVideo(video);
    const back = vae.decodeToVideo(z, vae.latentShape(9, 32, 32));
    assert.deepEqual(back.rgb, video.rgb, `factor ${factor}`);
    const pixels = videoToPixels(video);
    const decoded = vae.decode(z, 9, 32 / factor, 32 / factor);
    let maxErr = 0;
    for (let i = 0; i < pixels.length; i++) maxErr = Math.max(maxErr, Math.abs(decoded[i]! - pixels[i]!));
    assert.ok(maxErr < 1e-6, `factor ${factor}: ${maxErr}`);
  }
});

test('the transform preserves L2 distances up to one global scale (orthogonal)', () => {
  const vae = new SpaceToDepthVae(4);
  const a = videoToPixels(clip(cfg, 'train', 1).video);
  const b = videoToPixels(clip(cfg, 'train', 2).video);
  const za = vae.encode(a, 9, 32, 32);
  const zb = vae.encode(b, 9, 32, 32);
  const dist = (x: Float32Array, y: Float32Array) => Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]!) ** 2, 0));
  assert.ok(Math.abs(dist(za, zb) * 4 - dist(a, b)) < 1e-3 * dist(a, b));
});

test('after a float16 round trip (LMDB storage) pixels stay within one 8-bit step', () => {
  const vae = new SpaceToDepthVae(4);
  const { video } = clip(cfg, 'train', 11);
  const z = f16ToF32(f32ToF16(vae.encodeVideo(video)));
  const back = vae.decodeToVideo(z, vae.latentShape(9, 32, 32));
  for (let i = 0; i < back.rgb.length; i++) assert.ok(Math.abs(back.rgb[i]! - video.rgb[i]!) <= 1, `byte ${i}`);
});

test('bad factors and frame sizes are refused', () => {
  assert.throws(() => new SpaceToDepthVae(3), /power of two/);
  assert.throws(() => new SpaceToDepthVae(4).latentShape(9, 30, 32), /not divisible/);
});
