/**
 * The WGSL helper functions of the kernel IR's op table (kernel/ir.ts names them in its WGSL
 * texts), and the ones that every lowering shares (NaN by its bits, the argmax order). Kernels
 * carry only the helpers their entry point reaches (`pruneFunctions`).
 *
 * NaN must pass through as IEEE says. llvmpipe folds `x != x` to false and its `max`/`min` drop
 * NaN, so the helpers test for NaN on the bit pattern (`isNan`) and build max from `select`.
 *
 * @module
 */

import { ERF_TABLE, TWO_OVER_SQRT_PI } from "../kernel/erf.ts";

/** erf(x) / x below 1/2 as a polynomial in z = x^2, Horner's form: its Taylor series to z^8. */
const taylor = (() => {
  let text = "";
  for (let m = 8, f = 40320; m >= 0; f /= m || 1, m--) {
    const coef = ((m % 2 ? -1 : 1) * TWO_OVER_SQRT_PI) / (f * (2 * m + 1));
    text = m === 8 ? `${coef}` : `(${coef} + z * ${text})`;
  }
  return text;
})();

/** Scalar helpers the op table names; only those a kernel reaches are kept. */
export const WGSL_PRELUDE = /* wgsl */ `
// Infinity and NaN from their bits through a let: WGSL forbids a constant expression whose value
// is inf or NaN, and Chromium's compiler (Tint) rejects bitcast<f32>(0x7f800000u) where naga lets
// it pass; a let makes the bitcast a run-time expression.
fn infF32() -> f32 { let bits = 0x7f800000u; return bitcast<f32>(bits); }
fn nanF32() -> f32 { let bits = 0x7fc00000u; return bitcast<f32>(bits); }
fn isNan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn sigmoidF(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}
// The builtin tanh loses accuracy near 0 on llvmpipe: a series there, exp elsewhere.
fn tanhF(x: f32) -> f32 {
  let a = abs(x);
  let x2 = x * x;
  let series = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
  let t = exp(-2.0 * a);
  let big = sign(x) * (1.0 - t) / (1.0 + t);
  return select(big, series, a < 0.125);
}
fn maxF(a: f32, b: f32) -> f32 { return select(select(b, a, a > b), a + b, isNan(a) || isNan(b)); }
fn minF(a: f32, b: f32) -> f32 { return select(select(b, a, a < b), a + b, isNan(a) || isNan(b)); }
// WGSL's pow is exp2(b log2(a)): undefined for negative bases, and on llvmpipe pow(0, -1) is 0.
// This follows C's (and JavaScript's) pow: integer exponents of negative bases, zero and
// infinite bases by their rules, the sign of -0 and -inf kept for odd exponents.
fn powF(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (isNan(a) || isNan(b)) { return nanF32(); }
  let negative = (bitcast<u32>(a) & 0x80000000u) != 0u;
  let odd = (abs(b) % 2.0) == 1.0;
  let big = abs(a) == infF32();
  if (a == 0.0 || big) {
    let m = select(0.0, infF32(), (b < 0.0) != big);
    return select(m, -m, negative && odd);
  }
  if (!negative) { return pow(a, b); }
  if (b != floor(b)) { return nanF32(); }
  let m = pow(-a, b);
  return select(m, -m, odd);
}
// log(1 + u) for u >= 0 (and NaN), to float32's relative accuracy also for small u: a series
// below 1/32 (its first omitted term is under 2e-10 relative), log(1 + u) above, where the
// rounding of 1 + u costs at most 2e-6 relative.
fn log1pF32(u: f32) -> f32 {
  let series = u * (1.0 + u * (-0.5 + u * (1.0 / 3.0 + u * (-0.25 + u * (0.2 - u / 6.0)))));
  return select(series, log(1.0 + u), u >= 0.03125);
}
// log(1 + e^x) as max(x, 0) + log1p(e), e = e^-|x| in (0, 1]: log1p(e) = 2 atanh(s), s = e / (2 + e)
// <= 1/3, by its series 2 s (1 + s^2/3 + s^4/5 + ...) to s^16 (the rest under 1e-9 relative). No
// sum cancels, so no compiler's rewriting of (1 + e) - 1 (llvmpipe's) can cost accuracy.
fn softplusF(x: f32) -> f32 {
  let e = exp(-abs(x));
  let s = e / (2.0 + e);
  let z = s * s;
  let p = 1.0 + z * (1.0 / 3.0 + z * (0.2 + z * (1.0 / 7.0 + z * (1.0 / 9.0 + z * (1.0 / 11.0 + z * (1.0 / 13.0 + z * (1.0 / 15.0 + z / 17.0)))))));
  return select(0.0, x, x > 0.0) + 2.0 * s * p;
}
// erf in float32 by kernel/erf.ts's scheme, cut to float32's needs: below 1/2 the Taylor series
// of erf to x^17; above, erf(k/4) (every other entry of kernel/erf.ts's table: llvmpipe took 0.3 s
// instead of 0.02 s to compile a kernel with all 49) plus the Taylor series of erf' around
// x0 = k/4 to h^8 (|h| <= 1/8: the rest is under 1e-9 of the result). Within 2.2 float32 ulps of
// erf on llvmpipe (tests/layers_test.ts). erf(+-0) = +-0, NaN stays.
fn erfF(x: f32) -> f32 {
  const ERF_TABLE_4 = array<f32, 25>(${ERF_TABLE.filter((_, i) => i % 2 === 0).join(", ")});
  let a = abs(x);
  if (isNan(x) || x == 0.0) { return x; }
  if (a >= 6.0) { return select(-1.0, 1.0, x > 0.0); }
  if (a < 0.5) {
    let z = x * x;
    return x * ${taylor};
  }
  let k = u32(round(a * 4.0));
  let x0 = f32(k) * 0.25;
  let h = a - x0;
  // q_j = (-1)^j H_j(x0) by the Hermite recurrence; s = sum_(j >= 1) q_j h^j / (j+1)!.
  var qPrev = 1.0;
  var q = -2.0 * x0;
  var p = h / 2.0;
  var s = 0.0;
  for (var j = 1u; j < 8u; j++) {
    s += q * p;
    let next = -2.0 * x0 * q - 2.0 * f32(j) * qPrev;
    qPrev = q;
    q = next;
    p *= h / f32(j + 2u);
  }
  let c = ${TWO_OVER_SQRT_PI} * exp(-x0 * x0);
  let r = ERF_TABLE_4[k] + (c * h + c * h * s);
  return select(r, -r, x < 0.0);
}
// Whether (v, i) replaces (acc, arg) in a max: the first NaN wins, then the first maximum.
fn takesMax(acc: f32, arg: u32, v: f32, i: u32) -> bool {
  if (i == 0xffffffffu) { return false; }
  if (arg == 0xffffffffu) { return true; }
  let na = isNan(acc);
  let nv = isNan(v);
  if (na || nv) { return nv && (!na || i < arg); }
  return v > acc || (v == acc && i < arg);
}
`;
