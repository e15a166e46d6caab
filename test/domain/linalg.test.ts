import { test } from 'node:test';
import assert from 'node:assert/strict';
import { covariance, frechetDistance, matmul, mean, sqrtPsd, symmetricEigen } from '../../runner/domain/linalg.js';
import { CounterRng } from '../../runner/domain/rng.js';

function randomSpd(n: number, seed: number): Float64Array {
  const rng = new CounterRng([seed]);
  const a = Float64Array.from({ length: n * n }, () => rng.normal());
  const at = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) at[i * n + j] = a[j * n + i]!;
  const spd = matmul(a, at, n);
  for (let i = 0; i < n; i++) spd[i * n + i]! += 0.1;
  return spd;
}

const close = (a: Float64Array, b: Float64Array, tol: number) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);

test('Jacobi eigen-decomposition reconstructs the matrix', () => {
  const n = 12;
  const m = randomSpd(n, 1);
  const { values, vectors } = symmetricEigen(m, n);
  const back = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) back[i * n + j]! += vectors[i * n + k]! * values[k]! * vectors[j * n + k]!;
  assert.ok(close(back, m, 1e-9));
  assert.ok([...values].every((v) => v > 0));
});

test('the PSD square root squares back', () => {
  const n = 24;
  const m = randomSpd(n, 2);
  const r = sqrtPsd(m, n);
  assert.ok(close(matmul(r, r, n), m, 1e-8));
});

test('Fréchet distance matches the closed form for commuting covariances', () => {
  const n = 3;
  const s1 = Float64Array.from([4, 0, 0, 0, 1, 0, 0, 0, 9]);
  const s2 = Float64Array.from([1, 0, 0, 0, 1, 0, 0, 0, 4]);
  const mu1 = Float64Array.from([0, 0, 0]);
  const mu2 = Float64Array.from([1, 2, 0]);
  // |Δμ|² + Σ (√a − √b)² = 5 + (1 + 0 + 1)
  assert.ok(Math.abs(frechetDistance(mu1, s1, mu2, s2, n) - 7) < 1e-9);
  const s = randomSpd(5, 3);
  assert.ok(frechetDistance(mu1.subarray(0, 0), s, mu1.subarray(0, 0), s, 5) < 1e-9);
});

test('mean and unbiased covariance', () => {
  const rows = [Float64Array.from([1, 2]), Float64Array.from([3, 6])];
  assert.deepEqual([...mean(rows, 2)], [2, 4]);
  assert.deepEqual([...covariance(rows, 2)], [2, 4, 4, 8]);
});
