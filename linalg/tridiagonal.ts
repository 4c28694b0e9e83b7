/**
 * The eigenvalues and eigenvectors of a small symmetric tridiagonal matrix, in float64 on the
 * host: what Lanczos leaves behind (its Ritz values and vectors, and the Gauss quadrature of
 * stochastic Lanczos quadrature). The implicit QL method with Wilkinson shifts (Golub & Van Loan,
 * Matrix Computations, 4th ed., section 8.3; the QL form of the EISPACK routine tql2), which
 * costs O(k^2) per eigenvalue with vectors, nothing for the k of a few tens that Lanczos uses.
 *
 * @module
 */

import { SgnError } from "../errors.ts";

/** The eigen-decomposition of a symmetric tridiagonal matrix (see {@link tridiagonalEigen}). */
export interface TridiagonalEigen {
  /** The eigenvalues, ascending. */
  values: Float64Array;
  /**
   * The eigenvectors, row-major k x k: `vectors[r * k + i]` is component r of the unit
   * eigenvector of `values[i]`; each one's sign is chosen so that its largest component is
   * positive (ties: the first).
   */
  vectors: Float64Array;
}

/** Sweeps allowed per eigenvalue: QL converges in two or three, cubically. */
const MAX_SWEEPS = 60;

/**
 * Eigenvalues (ascending) and unit eigenvectors of the symmetric tridiagonal matrix with
 * diagonal `diagonal` (length k >= 1) and off-diagonal `offDiagonal` (length k - 1), by implicit
 * QL with Wilkinson shifts in float64.
 *
 * @example
 * ```ts
 * import { tridiagonalEigen } from "./tridiagonal.ts";
 * // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
 * const { values, vectors } = tridiagonalEigen([2, 2], [1]);
 * console.log(values); // Float64Array [1, 3] (to rounding)
 * console.log(vectors); // Float64Array [0.707..., 0.707..., -0.707..., 0.707...] (to rounding)
 * ```
 */
export function tridiagonalEigen(
  diagonal: ArrayLike<number>,
  offDiagonal: ArrayLike<number>,
): TridiagonalEigen {
  const k = diagonal.length;
  if (k < 1) throw new SgnError("tridiagonalEigen: the matrix must have at least one row");
  if (offDiagonal.length !== k - 1) {
    throw new SgnError(
      `tridiagonalEigen: ${k} diagonal entries need ${k - 1} off-diagonal ones, got ` +
        `${offDiagonal.length}`,
    );
  }
  const d = Float64Array.from(diagonal);
  // e[i] couples rows i and i + 1; e[k - 1] = 0 ends the matrix.
  const e = new Float64Array(k);
  e.set(Array.from(offDiagonal));
  for (let i = 0; i < k; i++) {
    if (!Number.isFinite(d[i]) || !Number.isFinite(e[i])) {
      throw new SgnError(
        `tridiagonalEigen: entry ${i} is not finite (diagonal ${d[i]}, off-diagonal ${e[i]})`,
      );
    }
  }
  // Scaled by a power of two (exactly) so that the largest entry is about 1: the rotations
  // then never meet subnormal numbers, where they lose their orthogonality.
  let big = 0;
  for (let i = 0; i < k; i++) big = Math.max(big, Math.abs(d[i]), Math.abs(e[i]));
  // (2^1000 at most: 2^1074, for the smallest subnormal, is not a double.)
  const scale = big > 0 ? 2 ** Math.min(1000, Math.max(-1000, -Math.round(Math.log2(big)))) : 1;
  for (let i = 0; i < k; i++) {
    d[i] *= scale;
    e[i] *= scale;
  }
  const largest = big * scale;
  const z = new Float64Array(k * k);
  for (let i = 0; i < k; i++) z[i * k + i] = 1;

  for (let l = 0; l < k; l++) {
    for (let sweep = 0;; sweep++) {
      // The first negligible coupling at or below row l splits the matrix there: below the
      // rounding of its two diagonal entries or, as in EISPACK's tql2, of the largest entry
      // (which QL needs to converge where tiny couplings meet tiny diagonal entries; the
      // eigenvalues are then exact to the rounding of the largest).
      let m = l;
      while (m < k - 1) {
        const near = Math.abs(d[m]) + Math.abs(d[m + 1]);
        if (Math.abs(e[m]) <= Number.EPSILON * Math.max(near, largest)) break;
        m++;
      }
      if (m === l) break;
      if (sweep === MAX_SWEEPS) {
        throw new SgnError(
          `tridiagonalEigen: no convergence after ${MAX_SWEEPS} QL sweeps at eigenvalue ${l}`,
        );
      }
      // Wilkinson's shift: the eigenvalue of the leading 2 x 2 block nearer d[l].
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      let underflow = false;
      // Chase the bulge from row m up to row l with Givens rotations.
      for (; i >= l; i--) {
        const f = s * e[i];
        const b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          // The rotation vanished: deflate and start the sweep again.
          d[i + 1] -= p;
          e[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        for (let row = 0; row < k; row++) {
          const zi = z[row * k + i];
          const zi1 = z[row * k + i + 1];
          z[row * k + i + 1] = s * zi + c * zi1;
          z[row * k + i] = c * zi - s * zi1;
        }
      }
      if (underflow) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }

  // Ascending order, and a sign convention so that results repeat.
  const order = Array.from({ length: k }, (_, i) => i).sort((a, b) => d[a] - d[b]);
  const values = Float64Array.from(order, (i) => d[i] / scale);
  const vectors = new Float64Array(k * k);
  order.forEach((src, dst) => {
    let lead = 0;
    for (let row = 0; row < k; row++) {
      if (Math.abs(z[row * k + src]) > Math.abs(z[lead * k + src]) + 1e-14) lead = row;
    }
    const sign = z[lead * k + src] < 0 ? -1 : 1;
    for (let row = 0; row < k; row++) vectors[row * k + dst] = sign * z[row * k + src];
  });
  return { values, vectors };
}
