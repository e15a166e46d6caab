// Small dense linear algebra for evaluation statistics: means, covariances, the eigen-
// decomposition of a symmetric matrix (cyclic Jacobi), its PSD square root, and the Fréchet
// distance between two Gaussians. Matrices are row-major Float64Arrays of n×n.

/** Column means of `rows` (each a vector of length d). */
export function mean(rows: readonly Float64Array[], d: number): Float64Array {
  const mu = new Float64Array(d);
  for (const r of rows) for (let i = 0; i < d; i++) mu[i]! += r[i] ?? 0;
  if (rows.length > 0) for (let i = 0; i < d; i++) mu[i]! /= rows.length;
  return mu;
}

/** Unbiased sample covariance (zero for fewer than two rows). */
export function covariance(rows: readonly Float64Array[], d: number, mu = mean(rows, d)): Float64Array {
  const cov = new Float64Array(d * d);
  if (rows.length < 2) return cov;
  for (const r of rows) {
    for (let i = 0; i < d; i++) {
      const di = (r[i] ?? 0) - (mu[i] ?? 0);
      for (let j = i; j < d; j++) cov[i * d + j]! += di * ((r[j] ?? 0) - (mu[j] ?? 0));
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = (cov[i * d + j] ?? 0) / (rows.length - 1);
      cov[i * d + j] = v;
      cov[j * d + i] = v;
    }
  }
  return cov;
}

/** Eigen-decomposition of a symmetric matrix: values, and vectors as the columns of a row-major matrix. */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const at = (i: number, j: number) => a[i * n + j] ?? 0;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let scale = 0;
    for (let i = 0; i < n; i++) {
      scale += at(i, i) ** 2;
      for (let j = i + 1; j < n; j++) off += at(i, j) ** 2;
    }
    if (off <= 1e-30 * Math.max(scale, 1e-300) || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = at(p, q);
        if (apq === 0) continue;
        const theta = (at(q, q) - at(p, p)) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = at(k, p);
          const akq = at(k, q);
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = at(p, k);
          const aqk = at(q, k);
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p] ?? 0;
          const vkq = v[k * n + q] ?? 0;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = at(i, i);
  return { values, vectors: v };
}

/** The PSD square root of a symmetric matrix (negative eigenvalues from rounding are clamped to 0). */
export function sqrtPsd(matrix: Float64Array, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(matrix, n);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const root = Math.sqrt(Math.max(0, values[k] ?? 0));
    if (root === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = (vectors[i * n + k] ?? 0) * root;
      for (let j = 0; j < n; j++) out[i * n + j]! += vik * (vectors[j * n + k] ?? 0);
    }
  }
  return out;
}

export function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k] ?? 0;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += aik * (b[k * n + j] ?? 0);
    }
  }
  return out;
}

const trace = (m: Float64Array, n: number) => {
  let t = 0;
  for (let i = 0; i < n; i++) t += m[i * n + i] ?? 0;
  return t;
};

/**
 * Fréchet distance between N(mu1, s1) and N(mu2, s2):
 * |mu1 − mu2|² + tr(s1 + s2 − 2 (s1^½ s2 s1^½)^½). The inner product is symmetric PSD, so
 * only symmetric square roots are needed (no general matrix square root).
 */
export function frechetDistance(mu1: Float64Array, s1: Float64Array, mu2: Float64Array, s2: Float64Array, n: number): number {
  let meanTerm = 0;
  for (let i = 0; i < n; i++) meanTerm += ((mu1[i] ?? 0) - (mu2[i] ?? 0)) ** 2;
  const r1 = sqrtPsd(s1, n);
  const inner = matmul(matmul(r1, s2, n), r1, n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
    const sym = ((inner[i * n + j] ?? 0) + (inner[j * n + i] ?? 0)) / 2;
    inner[i * n + j] = sym;
    inner[j * n + i] = sym;
  }
  const cross = trace(sqrtPsd(inner, n), n);
  return Math.max(0, meanTerm + trace(s1, n) + trace(s2, n) - 2 * cross);
}
