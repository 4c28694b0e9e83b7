/**
 * The op table of the kernel IR: each element-wise op's text in JavaScript and in WGSL, side by
 * side ({@link UNARY}, {@link BINARY}), and the JavaScript functions made from them. A new
 * element-wise op is one row here; `kernel/ir.ts` re-exports all of it.
 *
 * @module
 */

import { erf } from "./erf.ts";

/**
 * The functions the JavaScript texts of {@link UNARY} may call beyond `Math`, as `lib.name(x)`:
 * every JavaScript lowering (the interpreter's {@link UNARY_FN}, cpu/compile.ts's loops) makes
 * its functions with `lib` bound to this object.
 */
export const JS_LIB: Readonly<{ erf: (x: number) => number }> = { erf };

/** An element-wise op's text in each target language. */
export interface OpText {
  /** JavaScript, on doubles. */
  readonly js: string;
  /** WGSL, on f32. */
  readonly wgsl: string;
}

/**
 * Each unary op in JavaScript (of `x`, on doubles) and in WGSL (of `x: f32`). Helper functions
 * named here live in the lowering's prelude (`lib.` in JavaScript: {@link JS_LIB}). NaN passes
 * through as IEEE says.
 */
export const UNARY = {
  neg: { js: "-x", wgsl: "-x" },
  exp: { js: "Math.exp(x)", wgsl: "exp(x)" },
  log: { js: "Math.log(x)", wgsl: "log(x)" },
  sigmoid: {
    js: "(x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))",
    wgsl: "sigmoidF(x)",
  },
  tanh: { js: "Math.tanh(x)", wgsl: "tanhF(x)" },
  relu: { js: "(x <= 0 ? 0 : x)", wgsl: "select(x, 0.0, x <= 0.0)" },
  square: { js: "x * x", wgsl: "x * x" },
  sqrt: { js: "Math.sqrt(x)", wgsl: "sqrt(x)" },
  reciprocal: { js: "1 / x", wgsl: "1.0 / x" },
  abs: { js: "Math.abs(x)", wgsl: "abs(x)" },
  // sign(-0) is -0 and sign(NaN) NaN (the builtin gives +0 at -0).
  sign: { js: "(x !== x ? x : Math.sign(x))", wgsl: "select(sign(x), x, isNan(x) || x == 0.0)" },
  step: { js: "(x > 0 ? 1 : 0)", wgsl: "select(0.0, 1.0, x > 0.0)" },
  // log(1 + e^x) without overflow: x + log1p(e^-x) above 0, log1p(e^x) elsewhere.
  softplus: {
    js: "(x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)))",
    wgsl: "softplusF(x)",
  },
  erf: { js: "lib.erf(x)", wgsl: "erfF(x)" },
} as const satisfies Record<string, OpText>;

/**
 * The element-wise unary operations: the keys of {@link UNARY}, so that a new op is one row there.
 * `step` is the derivative of relu: 1 where x > 0, else 0. `softplus` is log(1 + e^x); `erf` the
 * error function (kernel/erf.ts).
 */
export type UnaryOp = keyof typeof UNARY;
/** Every {@link UnaryOp}, in the table's order (for tests and validation). */
export const UNARY_OPS: readonly UnaryOp[] = Object.keys(UNARY) as UnaryOp[];

/** Each binary op in JavaScript (of `a`, `b`) and WGSL; comparisons give 1 or 0. */
export const BINARY = {
  add: { js: "a + b", wgsl: "a + b" },
  sub: { js: "a - b", wgsl: "a - b" },
  mul: { js: "a * b", wgsl: "a * b" },
  div: { js: "a / b", wgsl: "a / b" },
  max: { js: "(a !== a || b !== b ? NaN : a > b ? a : b)", wgsl: "maxF(a, b)" },
  min: { js: "(a !== a || b !== b ? NaN : a < b ? a : b)", wgsl: "minF(a, b)" },
  pow: { js: "Math.pow(a, b)", wgsl: "powF(a, b)" },
  eq: { js: "(a === b ? 1 : 0)", wgsl: "select(0.0, 1.0, a == b)" },
  ne: { js: "(a !== b ? 1 : 0)", wgsl: "select(0.0, 1.0, a != b || isNan(a) || isNan(b))" },
  lt: { js: "(a < b ? 1 : 0)", wgsl: "select(0.0, 1.0, a < b)" },
  le: { js: "(a <= b ? 1 : 0)", wgsl: "select(0.0, 1.0, a <= b)" },
  gt: { js: "(a > b ? 1 : 0)", wgsl: "select(0.0, 1.0, a > b)" },
  ge: { js: "(a >= b ? 1 : 0)", wgsl: "select(0.0, 1.0, a >= b)" },
} as const satisfies Record<string, OpText>;

/** Element-wise binary operations (the keys of {@link BINARY}); comparisons give 1 or 0. */
export type BinaryOp = keyof typeof BINARY;
/** Every {@link BinaryOp}, in the table's order (for tests and validation). */
export const BINARY_OPS: readonly BinaryOp[] = Object.keys(BINARY) as BinaryOp[];

/**
 * A function from JavaScript text that may call {@link JS_LIB}'s functions as `lib.name`: `params`
 * and `body` as `new Function` takes them.
 */
export function jsFunction(params: readonly string[], body: string): unknown {
  return new Function("lib", `return (${params.join(", ")}) => { ${body} };`)(JS_LIB);
}

/** The scalar functions of {@link UNARY} and {@link BINARY}, for interpreters. */
export const UNARY_FN: Readonly<Record<UnaryOp, (x: number) => number>> = Object.fromEntries(
  Object.entries(UNARY).map(([op, d]) => [op, jsFunction(["x"], `return ${d.js};`)]),
) as Record<UnaryOp, (x: number) => number>;
/** See {@link UNARY_FN}. */
export const BINARY_FN: Readonly<Record<BinaryOp, (a: number, b: number) => number>> = Object
  .fromEntries(
    Object.entries(BINARY).map(([op, d]) => [op, new Function("a", "b", `return ${d.js};`)]),
  ) as Record<BinaryOp, (a: number, b: number) => number>;
