/**
 * The error function, for the `erf` op of the kernel IR (and through it GELU): JavaScript has no
 * `Math.erf`, so the JavaScript lowerings call {@link erf}, and WGSL's `erfF` runs this scheme cut
 * to float32 (every other table entry, fewer terms: wgsl/prelude.ts).
 *
 * The scheme: erf is odd, and 1 to float64 precision from |x| = 6 (erfc(6) = 2.2e-17). Below,
 * |x| = x0 + h with x0 = k/8 the nearest of a table of erf(k/8) (or x0 = 0 for |x| < 1/2, where
 * the table's value would cancel most of the correction), and
 *
 *   erf(x0 + h) = erf(x0) + 2/sqrt(pi) e^(-x0^2) sum_j q_j h^(j+1) / (j+1)!,
 *
 * the Taylor series of erf' = 2/sqrt(pi) e^(-x^2) around x0: q_j = (-1)^j H_j(x0), the Hermite
 * polynomials' recurrence q_(j+1) = -2 x0 q_j - 2 j q_(j-1). With |h| <= 1/16, {@link ERF_TERMS}
 * terms reach the last bit (twice as many from x0 = 0, |h| < 1/2); x0^2 is exact, so
 * e^(-x0^2) is one correctly rounded-or-nearly exp.
 *
 * Accuracy: within 2 float64 ulps of erf (tests/layers_test.ts checks it against an exact
 * evaluation in BigInt fixed point, on random and special points); a float32 result is this
 * value rounded once (the CPU backends), or `erfF`'s float32 evaluation on WebGPU (stated there).
 * erf(+-0) = +-0, erf(+-Inf) = +-1, NaN stays NaN.
 *
 * @example
 * ```ts
 * import { erf } from "./erf.ts";
 * console.log(erf(1)); // 0.8427007929497149
 * ```
 *
 * @module
 */

/**
 * erf(k/8) for k = 0..48, rounded to float64 (computed from the Taylor series of erf in BigInt
 * fixed point; tests/layers_test.ts recomputes and compares every entry).
 */
export const ERF_TABLE: readonly number[] = [
  0,
  0.1403162048013338,
  0.27632639016823696,
  0.4041169094348223,
  0.5204998778130465,
  0.623240882188418,
  0.7111556336535151,
  0.7840750610598597,
  0.8427007929497149,
  0.8883882317017078,
  0.9229001282564583,
  0.9481700727820903,
  0.9661051464753108,
  0.9784437332399837,
  0.9866716712191824,
  0.9919900576701199,
  0.9953222650189527,
  0.9973459706405177,
  0.9985372834133188,
  0.9992170617821089,
  0.999593047982555,
  0.9997946242638588,
  0.9998993780778803,
  0.9999521451602562,
  0.9999779095030014,
  0.9999901032653747,
  0.9999956972205363,
  0.9999981847185726,
  0.9999992569016276,
  0.9999997048598075,
  0.9999998862727434,
  0.999999957486056,
  0.9999999845827421,
  0.9999999945765992,
  0.9999999981494259,
  0.9999999993875167,
  0.9999999998033839,
  0.9999999999387839,
  0.9999999999815149,
  0.9999999999945866,
  0.9999999999984626,
  0.9999999999995766,
  0.9999999999998869,
  0.9999999999999707,
  0.9999999999999927,
  0.9999999999999982,
  0.9999999999999996,
  0.9999999999999999,
  1,
];

/** Terms of the series around a table point (|h| <= 1/16); twice as many around 0. */
const ERF_TERMS = 12;

/** 2 / sqrt(pi). */
export const TWO_OVER_SQRT_PI = 1.1283791670955126;

/** The error function in float64, within 2 ulps (see the module). */
export function erf(x: number): number {
  if (x !== x || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 6) return x > 0 ? 1 : -1;
  const k = a < 0.5 ? 0 : Math.round(a * 8);
  const x0 = k / 8;
  const h = a - x0;
  // The first term, c h, apart: the rest is small beside it, so its rounding matters less.
  let qPrev = 1;
  let q = -2 * x0;
  let p = (h * h) / 2;
  let s = 0;
  for (let j = 1, n = k === 0 ? 2 * ERF_TERMS : ERF_TERMS; j < n; j++) {
    s += q * p;
    const next = -2 * x0 * q - 2 * j * qPrev;
    qPrev = q;
    q = next;
    p *= h / (j + 2);
  }
  const c = TWO_OVER_SQRT_PI * Math.exp(-x0 * x0);
  const r = ERF_TABLE[k] + (c * h + c * s);
  return x < 0 ? -r : r;
}
