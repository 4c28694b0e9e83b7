/**
 * Independent dense float64 linear algebra for the spectra tests (tests/spectra_test.ts,
 * spectra_ggn_test.ts), sharing no code with linalg/: a cyclic Jacobi eigensolver, dense
 * products and norms, symmetric matrices with a given spectrum, the dense matrix of an operator
 * built column by column from A e_i, and a relative closeness check.
 */

import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import { tensor } from "../autodiff/tensor.ts";
import { type LinearOperator, matrixOperator } from "../linalg/operator.ts";
import { cpu, Random } from "./harness.ts";

/**
 * Eigenvalues (ascending) and eigenvectors (columns, row-major) of a dense symmetric n x n
 * matrix by cyclic Jacobi rotations, in float64: slow, simple, and accurate to rounding.
 */
export function jacobi(
  a: ArrayLike<number>,
  n: number,
): { values: number[]; vectors: Float64Array } {
  // Scaled (by a power of two) to a largest entry near 1, so that squares do not underflow.
  let big = 0;
  for (let i = 0; i < n * n; i++) big = Math.max(big, Math.abs(a[i]));
  const scale = big > 0 ? 2 ** Math.min(1000, Math.max(-1000, -Math.round(Math.log2(big)))) : 1;
  const m = Float64Array.from(a, (x) => x * scale);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (const x of m) total += x * x;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] ** 2;
    if (off <= 1e-32 * total) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (apq === 0) continue;
        const theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A <- J^T A J with J the rotation in the (p, q) plane.
        for (let k = 0; k < n; k++) {
          const akp = m[k * n + p];
          const akq = m[k * n + q];
          m[k * n + p] = c * akp - s * akq;
          m[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = m[p * n + k];
          const aqk = m[q * n + k];
          m[p * n + k] = c * apk - s * aqk;
          m[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  let off = 0;
  for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] ** 2;
  assert.ok(off <= 1e-28 * Math.max(total, 1e-300), `Jacobi did not converge (off ${off})`);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => m[i * n + i] - m[j * n + j]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values: order.map((i) => m[i * n + i] / scale), vectors };
}

/** y = A x for a dense row-major n x n matrix. */
export function matvec(a: ArrayLike<number>, x: ArrayLike<number>, n: number): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += a[i * n + j] * x[j];
    y[i] = s;
  }
  return y;
}

export function norm(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** Frobenius norm of a dense matrix (a bound on its spectral norm). */
export const frobenius = norm;

/**
 * Q diag(lambda) Q^T for a random orthogonal Q (n Householder reflections of Gaussian vectors
 * from `seed`), in float64.
 */
export function symmetricWithSpectrum(lambda: ArrayLike<number>, seed: number): Float64Array {
  const n = lambda.length;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = lambda[i];
  const rng = new Random(seed);
  for (let r = 0; r < n; r++) {
    const v = rng.array(n, (g) => g.normal());
    const vv = v.reduce((s, x) => s + x * x, 0);
    // A <- H A H with H = I - 2 v v^T / v^T v.
    const av = matvec(a, v, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] -= 2 * av[i] * v[j] / vv;
    // v^T (A H), a row: A H is not symmetric.
    const va = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) va[j] += v[i] * a[i * n + j];
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] -= 2 * v[i] * va[j] / vv;
  }
  // Exactly symmetric (the reflections leave rounding-level asymmetry).
  symmetrize(a, n);
  return a;
}

/** Makes an n x n matrix exactly symmetric: each pair of entries becomes their mean. */
function symmetrize(a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const s = (a[i * n + j] + a[j * n + i]) / 2;
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
}

/** A dense float64 matrix as an operator on the float64 oracle backend. */
export function denseOp(a: Float64Array, n: number, be: Backend = cpu): LinearOperator {
  return matrixOperator(tensor(a, [n, n], { backend: be, dtype: "float64" }));
}

/** The dense matrix of an operator, column by column from A e_i, symmetrized. */
export async function denseOf(op: LinearOperator): Promise<Float64Array> {
  const n = op.dimension;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const e = new Float64Array(n);
    e[i] = 1;
    const et = tensor(e, [n], { backend: op.backend, dtype: op.dtype });
    const col = op.apply(et);
    const values = await col.data();
    et.dispose();
    col.dispose();
    for (let r = 0; r < n; r++) a[r * n + i] = values[r];
  }
  symmetrize(a, n);
  return a;
}

export function relClose(actual: number, expected: number, rtol: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= rtol * Math.abs(expected),
    `${what}: ${actual}, expected ${expected} (rtol ${rtol}, off by ${
      Math.abs(actual - expected) / Math.abs(expected)
    })`,
  );
}
