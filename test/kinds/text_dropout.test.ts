// Text dropout rows for CFG (runner/kinds/text_dropout.ts): the fraction of unconditional rows,
// their content (the negative prompt with clips spread over the set), and the refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dropoutRows, withTextDropout } from '../../runner/kinds/text_dropout.js';

const rows = (n: number, per: number, textLen: number) => ({
  count: n,
  slots: 1,
  samples: Float32Array.from({ length: n * per }, (_, i) => Math.floor(i / per) + 1),
  text: Float32Array.from({ length: n * textLen }, (_, i) => -(Math.floor(i / textLen) + 1)),
});

test('a fraction p of the rows carries the negative prompt, repeating clips spread over the set', () => {
  const data = rows(90, 4, 3);
  const uncond = Float32Array.of(7, 8, 9);
  const out = withTextDropout(data, uncond, 0.1);
  assert.equal(out.count, 100);
  assert.equal(dropoutRows(90, 0.1), 10);
  assert.deepEqual(out.samples!.subarray(0, 360), data.samples);
  assert.deepEqual(out.text.subarray(0, 270), data.text);
  const sources = new Set<number>();
  for (let i = 90; i < 100; i++) {
    assert.deepEqual([...out.text.subarray(i * 3, i * 3 + 3)], [7, 8, 9]);
    const clip = out.samples![i * 4]!;
    assert.deepEqual([...out.samples!.subarray(i * 4, i * 4 + 4)], [clip, clip, clip, clip]);
    sources.add(clip);
  }
  assert.equal(sources.size, 10, 'ten different clips');
  assert.ok(Math.max(...sources) > 80 && Math.min(...sources) === 1, 'spread over the whole set');
});

test('p = 0 leaves the data as it is; p outside [0, 1) and a wrong embedding size are refused', () => {
  const data = rows(8, 2, 3);
  assert.equal(withTextDropout(data, Float32Array.of(1, 2, 3), 0), data);
  assert.throws(() => withTextDropout(data, Float32Array.of(1, 2, 3), 1), /\[0, 1\)/);
  assert.throws(() => withTextDropout(data, Float32Array.of(1, 2, 3), -0.1), /\[0, 1\)/);
  assert.throws(() => withTextDropout(data, Float32Array.of(1, 2), 0.5), /negative prompt embedding/);
});
