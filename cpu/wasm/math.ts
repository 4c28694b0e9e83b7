/**
 * Vectorized exp, log, tanh, sigmoid and softplus on four float32 lanes (f32x4) in WebAssembly SIMD, as
 * functions `(v128) -> v128` added to a module on demand. Each is a range reduction and a
 * polynomial (the classic single-precision forms of Cephes' expf, logf and tanhf, written here
 * for four lanes), with the special values handled by lane selects:
 *
 * - exp: x = n ln2 + r, |r| <= ln2/2 (ln2 in two parts, so r is exact), exp(r) by a degree-7
 *   polynomial, and 2^n applied as two factors 2^(n>>1) 2^(n - n>>1), so that results that
 *   round into the subnormal range round once and exp(88.72...) reaches the largest float
 *   before +Inf. x is clamped to [-104, 89] first: beyond, the result is 0 or +Inf anyway.
 *   exp(+-0) = 1, exp(-Inf) = 0, exp(+Inf) = +Inf, NaN stays NaN.
 * - log: x = m 2^e with m in [sqrt(1/2), sqrt(2)) (subnormal x scaled by 2^23 first), log(1 + f)
 *   by f - f^2/2 + f^3 P(f), and e ln2 added in two parts. log(+-0) = -Inf, log(x < 0) = NaN,
 *   log(+Inf) = +Inf, NaN stays NaN.
 * - tanh: of |x|, with the sign of x put back (tanh(-0) = -0): below 0.625 an odd polynomial,
 *   above 1 - 2 / (exp(2|x|) + 1) (which is 1 from |x| ~ 9 and at +Inf). NaN stays NaN.
 * - sigmoid: the overflow-safe form of `UNARY.sigmoid` in kernel/ir.ts: e = exp(-|x|), then
 *   1 / (1 + e) where x >= 0 and e / (1 + e) elsewhere (sigmoid(NaN) = NaN).
 * - softplus: `UNARY.softplus`'s form, max(x, 0) + log1p(exp(-|x|)), log1p from log by
 *   Goldberg's correction (softplus(-Inf) = 0, softplus(+Inf) = +Inf, NaN stays NaN).
 *
 * Error against `Math.exp`, `Math.log`, `Math.tanh` (and the sigmoid and softplus formulas in
 * float64), in float32 units in the last place of the exact result (below 2^-126: the subnormal
 * spacing 2^-149): {@link MAX_ULPS} bounds it: exp 1, log 1, tanh 1.5, sigmoid 2.5, softplus 3.5
 * (the largest seen on 13 million inputs, every 331st float32 bit pattern and the special values
 * and thresholds, was exp 0.96, log 0.78, tanh 1.26, sigmoid 2.21, softplus 2.96; on every 1021st
 * pattern tanh 1.31 and sigmoid 2.23). tests/wasm_test.ts asserts the bounds. Specials (+-0, +-Inf, NaN, the overflow and
 * underflow thresholds, subnormal inputs and results) come out as `Math.*` rounded to float32.
 *
 * Float64 kernels do not use these: they call the op table's own functions (`Math.exp`, ...),
 * imported into their module (cpu/wasm/imports.ts), for the JavaScript loops' and the oracle's
 * bits; only {@link sigmoidBody}, generic over the lane shape, builds their sigmoid from that exp.
 *
 * @example
 * ```ts
 * import { WasmModule } from "./module.ts";
 * import { MathFns } from "./math.ts";
 * const m = new WasmModule();
 * const lib = new MathFns(m);
 * m.func(["f32"], ["f32"], (f) => {
 *   f.get(0).op("f32x4.splat").call(lib.index("exp")).lane("f32x4.extract_lane", 0);
 * }, "exp");
 * const { exp } = new WebAssembly.Instance(new WebAssembly.Module(m.bytes())).exports as {
 *   exp: (x: number) => number;
 * };
 * console.log(exp(1)); // 2.7182817459106445
 * ```
 *
 * @module
 */

import type { Fn, WasmModule } from "./module.ts";

/** A vectorized function of this module. */
export type MathOp = "exp" | "log" | "tanh" | "sigmoid" | "softplus";

/** The largest error of each function, in float32 ulps of the exact result (see the module). */
export const MAX_ULPS: Readonly<Record<MathOp, number>> = {
  exp: 1,
  log: 1,
  tanh: 1.5,
  sigmoid: 2.5,
  softplus: 3.5,
};

/** Horner's scheme for an f32x4 polynomial in local `x` (coefficients highest degree first). */
function poly(f: Fn, x: number, coef: readonly number[]): void {
  f.f32x4(coef[0]);
  for (const c of coef.slice(1)) f.get(x).op("f32x4.mul").f32x4(c).op("f32x4.add");
}

/** 1.5 2^23: added to |v| < 2^22, the float32 sum is v rounded to an integer, ties to even. */
const MAGIC = 12582912;
/** MAGIC's bit pattern: the sum's pattern minus it is that integer. */
const MAGIC_BITS = 0x4b400000;

/** exp on f32x4: local 0 -> stack. */
function expBody(f: Fn, x: number): void {
  const n = f.local("v128"), r = f.local("v128"), ni = f.local("v128");
  // x clamped: pmax(x, c) is x < c ? c : x and pmin(x, c) is c < x ? c : x, so NaN stays (one
  // instruction each on x64, where min/max's NaN and -0 rules take several).
  f.get(x).f32x4(-104).op("f32x4.pmax").f32x4(89).op("f32x4.pmin").set(x);
  // n = nearest(x log2 e) by adding 1.5 2^23 (the sum rounds to an integer, ties to even, held in
  // the low bits of its pattern, read as the integer ni); r = x - n ln2 in two parts.
  f.get(x).f32x4(Math.LOG2E).op("f32x4.mul").f32x4(MAGIC).op("f32x4.add").tee(ni);
  f.f32x4(MAGIC).op("f32x4.sub").set(n);
  f.get(ni).i32x4(MAGIC_BITS).op("i32x4.sub").set(ni);
  f.get(x).get(n).f32x4(0.693359375).op("f32x4.mul").op("f32x4.sub");
  f.get(n).f32x4(-2.12194440e-4).op("f32x4.mul").op("f32x4.sub").set(r);
  // exp(r) = 1 + r + r^2 P(r).
  poly(f, r, [
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
  ]);
  f.get(r).get(r).op("f32x4.mul").op("f32x4.mul").get(r).op("f32x4.add").f32x4(1).op("f32x4.add");
  // times 2^(n >> 1) times 2^(n - (n >> 1)), each a normal power of two.
  f.get(ni).i32(1).op("i32x4.shr_s").tee(n);
  f.i32x4(127).op("i32x4.add").i32(23).op("i32x4.shl").op("f32x4.mul");
  f.get(ni).get(n).op("i32x4.sub").i32x4(127).op("i32x4.add").i32(23).op("i32x4.shl");
  f.op("f32x4.mul");
}

/** log on f32x4: local 0 -> stack. */
function logBody(f: Fn, x: number): void {
  const sub = f.local("v128"), bits = f.local("v128"), e = f.local("v128");
  const m = f.local("v128"), small = f.local("v128"), v = f.local("v128"), z = f.local("v128");
  const fe = f.local("v128");
  // Subnormals (and zero, negatives: replaced at the end) scaled by 2^23.
  f.get(x).f32x4(2 ** -126).op("f32x4.lt").set(sub);
  f.get(x).f32x4(2 ** 23).op("f32x4.mul").get(x).get(sub).op("v128.bitselect").set(bits);
  // x = m 2^e, m in [1/2, 1).
  f.get(bits).i32(23).op("i32x4.shr_u").i32x4(126).op("i32x4.sub");
  f.get(sub).i32x4(23).op("v128.and").op("i32x4.sub").set(e);
  f.get(bits).i32x4(0x007fffff).op("v128.and").i32x4(0x3f000000).op("v128.or").set(m);
  // m < sqrt(1/2): f = 2m - 1 and e - 1; else f = m - 1 (both exact).
  f.get(m).f32x4(Math.SQRT1_2).op("f32x4.lt").set(small);
  f.get(e).get(small).op("i32x4.add").op("f32x4.convert_i32x4_s").set(fe);
  f.get(m).f32x4(1).op("f32x4.sub").get(m).get(small).op("v128.and").op("f32x4.add").set(v);
  f.get(v).get(v).op("f32x4.mul").set(z);
  poly(f, v, [
    7.0376836292e-2,
    -1.1514610310e-1,
    1.1676998740e-1,
    -1.2420140846e-1,
    1.4249322787e-1,
    -1.6668057665e-1,
    2.0000714765e-1,
    -2.4999993993e-1,
    3.3333331174e-1,
  ]);
  f.get(v).op("f32x4.mul").get(z).op("f32x4.mul");
  f.get(fe).f32x4(-2.12194440e-4).op("f32x4.mul").op("f32x4.add");
  f.get(z).f32x4(0.5).op("f32x4.mul").op("f32x4.sub");
  f.get(v).op("f32x4.add");
  f.get(fe).f32x4(0.693359375).op("f32x4.mul").op("f32x4.add");
  // +Inf -> +Inf, +-0 -> -Inf, negative or NaN -> NaN.
  f.set(z);
  f.f32x4(Infinity).get(z).get(x).f32x4(Infinity).op("f32x4.eq").op("v128.bitselect").set(z);
  f.f32x4(-Infinity).get(z).get(x).f32x4(0).op("f32x4.eq").op("v128.bitselect").set(z);
  f.f32x4(NaN).get(z);
  f.get(x).f32x4(0).op("f32x4.lt").get(x).get(x).op("f32x4.ne").op("v128.or");
  f.op("v128.bitselect");
}

/** tanh on f32x4: local 0 -> stack. */
function tanhBody(f: Fn, x: number, exp: () => void): void {
  const a = f.local("v128"), z = f.local("v128");
  f.get(x).op("f32x4.abs").set(a);
  // Small: a + a z P(z), z = a^2.
  f.get(a).get(a).op("f32x4.mul").set(z);
  poly(f, z, [
    -5.70498872745e-3,
    2.06390887954e-2,
    -5.37397155531e-2,
    1.33314422036e-1,
    -3.33332819422e-1,
  ]);
  f.get(z).op("f32x4.mul").get(a).op("f32x4.mul").get(a).op("f32x4.add").set(z);
  // Large: 1 - 2 / (exp(2a) + 1).
  f.f32x4(1).f32x4(2);
  f.get(a).get(a).op("f32x4.add");
  exp();
  f.f32x4(1).op("f32x4.add");
  f.op("f32x4.div").op("f32x4.sub");
  f.get(z).get(a).f32x4(0.625).op("f32x4.gt").op("v128.bitselect");
  // The sign of x.
  f.get(x).i32x4(0x7fffffff).op("v128.bitselect");
}

/** The lane shapes the functions come in: four float32 or two float64 lanes. */
export type Lanes = "f32x4" | "f64x2";

/**
 * sigmoid on either lane shape, from exp, in `UNARY.sigmoid`'s overflow-safe form: e = exp(-|x|),
 * 1 / (1 + e) for x >= 0 and e / (1 + e) below. Local x -> stack.
 */
export function sigmoidBody(f: Fn, x: number, exp: () => void, t: Lanes): void {
  const e = f.local("v128"), d = f.local("v128");
  const c = (v: number) => (t === "f32x4" ? f.f32x4(v) : f.f64x2(v));
  f.get(x).op(`${t}.abs`).op(`${t}.neg`);
  exp();
  f.tee(e);
  c(1).op(`${t}.add`).set(d);
  c(1).get(d).op(`${t}.div`);
  f.get(e).get(d).op(`${t}.div`);
  f.get(x);
  c(0).op(`${t}.ge`).op("v128.bitselect");
}

/**
 * softplus on either lane shape: max(x, 0) + log1p(e) with e = exp(-|x|) in [0, 1], log1p(e) as
 * log(u) e / (u - 1) with u = 1 + e rounded (exact where u - 1 is 0: then e), which cancels the
 * rounding of u (Goldberg, "What every computer scientist should know about floating-point
 * arithmetic", Theorem 4). Local x -> stack.
 */
function softplusBody(f: Fn, x: number, call: (op: MathOp) => void, t: Lanes): void {
  const e = f.local("v128"), u = f.local("v128"), d = f.local("v128");
  const c = (v: number) => (t === "f32x4" ? f.f32x4(v) : f.f64x2(v));
  f.get(x).op(`${t}.abs`).op(`${t}.neg`);
  call("exp");
  f.tee(e);
  c(1).op(`${t}.add`).tee(u);
  c(1).op(`${t}.sub`).set(d);
  // e where d = 0, else log(u) e / d; the max(x, 0) that keeps NaN out of it: x where x > 0.
  f.get(e);
  f.get(u);
  call("log");
  f.get(e).op(`${t}.mul`).get(d).op(`${t}.div`);
  f.get(d);
  c(0).op(`${t}.eq`).op("v128.bitselect");
  f.get(x).get(x);
  c(0).op(`${t}.gt`).op("v128.and");
  f.op(`${t}.add`);
}

/** Each function's body on f32x4: local x -> stack (`call` runs another function). */
const BODIES: Record<MathOp, (f: Fn, x: number, call: (op: MathOp) => void) => void> = {
  exp: (f, x) => expBody(f, x),
  log: (f, x) => logBody(f, x),
  tanh: (f, x, call) => tanhBody(f, x, () => call("exp")),
  sigmoid: (f, x, call) => sigmoidBody(f, x, () => call("exp"), "f32x4"),
  softplus: (f, x, call) => softplusBody(f, x, call, "f32x4"),
};

/** The vectorized float32 functions of one module, each added the first time it is asked for. */
export class MathFns {
  readonly #index = new Map<MathOp, number>();
  /** Adds to module `m`. */
  constructor(readonly m: WasmModule) {}

  /** The function index of `op` (a v128 -> v128 function on f32x4), added on first use. */
  index(op: MathOp): number {
    const hit = this.#index.get(op);
    if (hit !== undefined) return hit;
    // Declared before its body is built, so that a body may call other functions first.
    const i = this.m.func(["v128"], ["v128"]);
    this.#index.set(op, i);
    const f = this.m.body(i);
    BODIES[op](f, 0, (o) => f.call(this.index(o)));
    return i;
  }

  /**
   * Emits `op` inline into `f`: the vector argument on the stack becomes the result (no call,
   * so the compiler can schedule it with the code around it). Uses new locals of `f`.
   */
  inline(f: Fn, op: MathOp): void {
    const x = f.local("v128");
    f.set(x);
    BODIES[op](f, x, (o) => this.inline(f, o));
  }
}
