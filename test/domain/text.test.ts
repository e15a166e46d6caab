import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrozenTextEncoder, tokenize } from '../../runner/domain/text.js';

test('tokenizer splits words, keeps compound directions, appends EOS', () => {
  assert.deepEqual(tokenize('A red disc moving up-left'), ['a', 'red', 'disc', 'moving', 'up-left', '</s>']);
  assert.deepEqual(tokenize(''), ['</s>']);
});

test('embeddings are deterministic, [textLen, textDim], zero past the real tokens', () => {
  const enc = new FrozenTextEncoder({ textLen: 16, textDim: 32 });
  const a = enc.encode('a red disc moving left');
  assert.equal(a.length, 16 * 32);
  assert.deepEqual(a, new FrozenTextEncoder({ textLen: 16, textDim: 32 }).encode('a red disc moving left'));
  for (let i = 6 * 32; i < a.length; i++) assert.equal(a[i], 0);
  assert.ok(a.subarray(5 * 32, 6 * 32).some((v) => v !== 0), 'EOS position is filled');
});

test('prompts differing in one word differ exactly at that position', () => {
  const enc = new FrozenTextEncoder({ textLen: 8, textDim: 16 });
  const a = enc.encode('a red disc moving left');
  const b = enc.encode('a blue disc moving left');
  const differs = (pos: number) => a.subarray(pos * 16, pos * 16 + 16).some((v, i) => v !== b[pos * 16 + i]);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(differs), [false, true, false, false, false, false]);
  // distinct tokens get nearly orthogonal embeddings
  const red = enc.tokenEmbedding('red');
  const blue = enc.tokenEmbedding('blue');
  const dot = red.reduce((s, v, i) => s + v * blue[i]!, 0) / 16;
  assert.ok(Math.abs(dot) < 0.6, `cosine-ish ${dot}`);
});

test('long prompts are truncated to textLen keeping EOS last', () => {
  const enc = new FrozenTextEncoder({ textLen: 3, textDim: 4, positionScale: 0 });
  const out = enc.encode('one two three four');
  assert.deepEqual(out.subarray(8, 12), enc.tokenEmbedding('</s>'));
  const batch = enc.encodeBatch(['x', 'y']);
  assert.deepEqual(batch.subarray(12), enc.encode('y'));
});
