import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKGROUND, COLORS, clip, clipSpec, domainConfig, parsePrompt, promptOf, reflect, renderClip, shapeMask, SHAPES } from '../../runner/domain/clips.js';

const cfg = domainConfig();

test('clip i is the same whatever else is generated (counter-based)', () => {
  const a = clip(cfg, 'train', 123);
  for (let i = 0; i < 50; i++) clip(cfg, 'train', i);
  const b = clip(cfg, 'train', 123);
  assert.deepEqual(a.spec, b.spec);
  assert.deepEqual(a.video.rgb, b.video.rgb);
  assert.notDeepEqual(clipSpec(cfg, 'train', 5), clipSpec(cfg, 'heldout', 5));
  assert.notDeepEqual(clipSpec(cfg, 'train', 5), clipSpec(domainConfig({ seed: 1 }), 'train', 5));
});

test('clips cover every colour, shape and direction, and prompts name them', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 400; i++) {
    const { spec, prompt } = clip(cfg, 'train', i);
    assert.equal(prompt, `a ${spec.color} ${spec.shape} moving ${spec.direction}`);
    assert.deepEqual(parsePrompt(prompt), { color: spec.color, shape: spec.shape, direction: spec.direction });
    seen.add(spec.color).add(spec.shape).add(spec.direction);
  }
  for (const name of [...Object.keys(COLORS), ...SHAPES, 'left', 'right', 'up', 'down', 'up-left', 'down-right']) assert.ok(seen.has(name), name);
  assert.equal(parsePrompt('a purple disc moving left'), undefined);
});

test('rendered frames hold exactly the shape in its colour on the background', () => {
  const { spec, video } = clip(cfg, 'train', 7);
  const color = COLORS[spec.color]!;
  const area = shapeMask(spec.shape, spec.size).reduce((a, b) => a + b, 0);
  for (let t = 0; t < video.frames; t++) {
    let objectPixels = 0;
    for (let p = 0; p < video.height * video.width; p++) {
      const px = [...video.rgb.subarray((t * video.height * video.width + p) * 3, (t * video.height * video.width + p) * 3 + 3)];
      if (px.every((v, c) => v === color[c])) objectPixels++;
      else assert.deepEqual(px, [...BACKGROUND]);
    }
    assert.equal(objectPixels, area, `frame ${t}`);
  }
});

test('motion bounces off the borders and stays inside the frame', () => {
  assert.equal(reflect(-3, 10), 3);
  assert.equal(reflect(13, 10), 7);
  assert.equal(reflect(25, 10), 5);
  const spec = { ...clipSpec(cfg, 'train', 0), x0: 1, vx: -2, y0: 5, vy: 0, size: 8 };
  const video = renderClip(cfg, spec);
  // frame 1 would be at x = -1: reflected to x = 1, so column 0 stays background.
  const firstColumnHasObject = (t: number) => {
    for (let y = 0; y < 32; y++) if (video.rgb[((t * 32 + y) * 32) * 3] !== BACKGROUND[0]) return true;
    return false;
  };
  assert.equal(firstColumnHasObject(1), false);
});

test('shape masks differ from each other at every size used', () => {
  for (let size = cfg.sizeMin; size <= cfg.sizeMax; size++) {
    const masks = SHAPES.map((s) => shapeMask(s, size).join(''));
    assert.equal(new Set(masks).size, SHAPES.length, `size ${size}`);
  }
});

test('invalid domain settings are refused with the reason', () => {
  assert.throws(() => domainConfig({ colors: ['purple'] }), /unknown colour `purple`/);
  assert.throws(() => domainConfig({ height: 8, width: 8, sizeMin: 3, sizeMax: 9 }), /smaller than the frame/);
  assert.equal(promptOf({ color: 'red', shape: 'disc', direction: 'left' }), 'a red disc moving left');
});
