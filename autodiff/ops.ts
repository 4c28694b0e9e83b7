/**
 * Differentiable operations with NumPy/JAX-like names. Each one checks its arguments, then
 * applies a primitive with `bind`, so it works on concrete tensors and inside every
 * transformation (jvp, vjp, grad, hvp, ggnvp) alike.
 *
 * @example
 * ```ts
 * import { init, tensor, ops } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const x = tensor([[1, 2], [3, 4]]);
 * const y = ops.sum(ops.sigmoid(ops.matmul(x, x)), [1]); // shape [2]
 * console.log(await y.data());
 * ```
 *
 * @module
 */

import { checkInt, checkInts, SgnError, showValue } from "../errors.ts";

import { checkShape, sizeOf } from "../kernel/shape.ts";
import { bind } from "./core.ts";
import { checkTensor, scope, Tensor } from "./tensor.ts";
import { full as lazyFull } from "../kernel/graph.ts";

/** A tensor or a number (broadcast as a scalar of the other operand's dtype and backend). */
export type TensorLike = Tensor | number;

/**
 * A scalar constant on `like`'s backend and dtype: a constant of the kernel IR, so it costs no
 * buffer and travels in the uniforms of the kernel it fuses into (a per-step value such as
 * 1 - beta^t does not compile a new kernel).
 */
export function scalarLike(value: number, like: Tensor): Tensor {
  return fullLike(like, [], value);
}

/** A tensor of `shape` filled with `value` (a constant of the IR) on `like`'s backend and dtype. */
function fullLike(like: Tensor, shape: readonly number[], value: number): Tensor {
  return new Tensor(
    like.backend,
    lazyFull(like.backend, shape, value, like.dtype),
    shape,
    like.dtype,
  );
}

function pair(a: TensorLike, b: TensorLike, op: string): [Tensor, Tensor] {
  for (const v of [a, b]) {
    if (!(v instanceof Tensor) && typeof v !== "number") {
      throw new SgnError(
        `${op}: operands must be Tensors or numbers, got ${
          Array.isArray(v) ? "an array (make it a tensor with tensor(...))" : typeof v
        }`,
      );
    }
  }
  if (a instanceof Tensor && b instanceof Tensor) return [a, b];
  if (a instanceof Tensor) return [a, scalarLike(b as number, a)];
  if (b instanceof Tensor) return [scalarLike(a as number, b), b];
  throw new SgnError(`${op}: at least one operand must be a Tensor`);
}

/** A tensor of zeros with `like`'s shape, dtype and backend. */
export function zerosLike(like: Tensor, shape: readonly number[] = like.shape): Tensor {
  return fullLike(like, shape, 0);
}

/** A tensor of ones with `like`'s shape, dtype and backend. */
export function onesLike(like: Tensor, shape: readonly number[] = like.shape): Tensor {
  return fullLike(like, shape, 1);
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== "boolean") {
    throw new SgnError(`${what} must be true or false, got ${showValue(v)}`);
  }
  return v;
}

/** One integer for both axes, or [height, width]. */
function twoInts(v: unknown, what: string, min: number): [number, number] {
  if (Array.isArray(v)) {
    if (v.length !== 2) {
      throw new SgnError(`${what} must be one integer or [height, width], got ${showValue(v)}`);
    }
    return [checkInt(v[0], `${what}[0]`, min), checkInt(v[1], `${what}[1]`, min)];
  }
  const n = checkInt(v, what, min);
  return [n, n];
}

// --- element-wise ---------------------------------------------------------------------------

/** a + b, broadcasting. */
export const add = (a: TensorLike, b: TensorLike): Tensor =>
  bind("add", pair(a, b, "add"), undefined);
/** a - b, broadcasting. */
export const sub = (a: TensorLike, b: TensorLike): Tensor =>
  bind("sub", pair(a, b, "sub"), undefined);
/** a * b, broadcasting. */
export const mul = (a: TensorLike, b: TensorLike): Tensor =>
  bind("mul", pair(a, b, "mul"), undefined);
/** a / b, broadcasting. */
export const div = (a: TensorLike, b: TensorLike): Tensor =>
  bind("div", pair(a, b, "div"), undefined);
/** Element-wise maximum (its derivative goes to a where a >= b, else to b). */
export const maximum = (a: TensorLike, b: TensorLike): Tensor =>
  bind("maximum", pair(a, b, "maximum"), undefined);
/** -x. */
export const neg = (x: Tensor): Tensor => bind("neg", [x], undefined);
/** e^x. */
export const exp = (x: Tensor): Tensor => bind("exp", [x], undefined);
/** Natural logarithm. */
export const log = (x: Tensor): Tensor => bind("log", [x], undefined);
/** 1 / (1 + e^-x). */
export const sigmoid = (x: Tensor): Tensor => bind("sigmoid", [x], undefined);
/** Hyperbolic tangent. */
export const tanh = (x: Tensor): Tensor => bind("tanh", [x], undefined);
/** max(x, 0); its derivative at 0 is taken as 0. */
export const relu = (x: Tensor): Tensor => bind("relu", [x], undefined);
/** x^2. */
export const square = (x: Tensor): Tensor => bind("square", [x], undefined);
/** Square root. */
export const sqrt = (x: Tensor): Tensor => bind("sqrt", [x], undefined);
/** 1 / x. */
export const reciprocal = (x: Tensor): Tensor => bind("reciprocal", [x], undefined);
/** log(1 + e^x), without overflow (x + log(1 + e^-x) for x > 0); its derivative is sigmoid(x). */
export const softplus = (x: Tensor): Tensor => bind("softplus", [x], undefined);
/**
 * The error function, 2/sqrt(pi) times the integral of e^(-t^2) from 0 to x: within 2 float64
 * ulps (kernel/erf.ts; float32 on WebGPU as stated there).
 */
export const erf = (x: Tensor): Tensor => bind("erf", [x], undefined);
/**
 * |x|; its derivative is {@link sign}(x), 0 at x = 0 (as relu's there).
 *
 * @example
 * ```ts
 * import { init, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * console.log(await ops.abs(tensor([-2, 0, 3])).data()); // [2, 0, 3]
 * ```
 */
export const abs = (x: Tensor): Tensor => bind("abs", [x], undefined);
/**
 * -1, 0 or 1 as x is negative, zero or positive (-0 stays -0 and NaN stays NaN); its derivative
 * is zero.
 *
 * @example
 * ```ts
 * import { init, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * console.log(await ops.sign(tensor([-2, 0, 3])).data()); // [-1, 0, 1]
 * ```
 */
export const sign = (x: Tensor): Tensor => bind("sign", [x], undefined);
/** 1 where x > 0, else 0 (the derivative of relu); its own derivative is zero. */
export const step = (x: Tensor): Tensor => bind("step", [x], undefined);
/** 1 where a > b, else 0 (not differentiable: zero derivative). */
export const greater = (a: TensorLike, b: TensorLike): Tensor =>
  bind("compare", pair(a, b, "greater"), { op: "gt" });
/** 1 where a >= b, else 0 (zero derivative). */
export const greaterEqual = (a: TensorLike, b: TensorLike): Tensor =>
  bind("compare", pair(a, b, "greaterEqual"), { op: "ge" });
/** 1 where a == b, else 0 (zero derivative). */
export const equal = (a: TensorLike, b: TensorLike): Tensor =>
  bind("compare", pair(a, b, "equal"), { op: "eq" });
/** cond != 0 ? a : b, all three of one shape. */
export const where = (cond: Tensor, a: Tensor, b: Tensor): Tensor =>
  bind("where", [cond, a, b], undefined);

// --- layout ---------------------------------------------------------------------------------

/** Reshapes to `shape`; one entry may be -1 (inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor(x, "reshape: x");
  shape = checkShape(shape, "reshape", true);
  const known = shape.filter((d) => d !== -1);
  const infer = shape.length - known.length;
  const size = sizeOf(known);
  if (infer > 1 || known.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new SgnError(`reshape: invalid target shape [${shape.join(", ")}]`);
  }
  const full = infer === 1
    ? shape.map((d) => (d === -1 ? (size === 0 ? 0 : x.size / size) : d))
    : [...shape];
  if (sizeOf(full) !== x.size || full.some((d) => !Number.isInteger(d))) {
    throw new SgnError(
      `reshape: cannot reshape [${x.shape.join(", ")}] (${x.size} elements) to [${
        shape.join(", ")
      }]`,
    );
  }
  if (full.length === x.rank && full.every((d, i) => d === x.shape[i])) return x;
  return bind("reshape", [x], { shape: full });
}

/** Flattens all dimensions from `startAxis` on into one: [n, c, h, w] -> [n, c*h*w]. */
export function flatten(x: Tensor, startAxis = 1): Tensor {
  checkTensor(x, "flatten: x");
  checkInt(startAxis, "flatten: startAxis", 0, x.rank);
  return reshape(x, [...x.shape.slice(0, startAxis), sizeOf(x.shape.slice(startAxis))]);
}

/** Permutes dimensions (default: reverses them). */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  checkTensor(x, "transpose: x");
  const p = perm === undefined
    ? x.shape.map((_, i) => x.rank - 1 - i)
    : checkInts(perm, "transpose: perm", 0, x.rank);
  const sorted = [...p].sort((a, b) => a - b);
  if (p.length !== x.rank || sorted.some((v, i) => v !== i)) {
    throw new SgnError(
      `transpose: [${p.join(", ")}] is not a permutation of the ${x.rank} axes of [${
        x.shape.join(", ")
      }]`,
    );
  }
  if (p.every((v, i) => v === i)) return x;
  return bind("transpose", [x], { perm: [...p] });
}

/** Broadcasts to `shape` by NumPy rules. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor(x, "broadcastTo: x");
  shape = checkShape(shape, "broadcastTo");
  if (shape.length === x.rank && shape.every((d, i) => d === x.shape[i])) return x;
  return bind("broadcastTo", [x], { shape: [...shape] });
}

function normAxes(x: Tensor, axes: number | readonly number[] | undefined, op: string): number[] {
  checkTensor(x, `${op}: x`);
  const list = axes === undefined
    ? x.shape.map((_, i) => i)
    : typeof axes === "number"
    ? [axes]
    : checkInts(axes, `${op}: axes`, -x.rank, x.rank - 1);
  const out = list.map((a) => (a < 0 ? a + x.rank : a));
  for (const a of out) {
    if (!Number.isInteger(a) || a < 0 || a >= x.rank) {
      throw new SgnError(`${op}: axis ${a} is out of range for shape [${x.shape.join(", ")}]`);
    }
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/** Sum over `axes` (default all). */
export function sum(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  return bind("sum", [x], { axes: normAxes(x, axes, "sum"), keepdims: bool(keepdims, "sum") });
}

/** Mean over `axes` (default all). */
export function mean(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  const ax = normAxes(x, axes, "mean");
  bool(keepdims, "mean");
  const count = sizeOf(ax.map((a) => x.shape[a]));
  return scope(() => mul(sum(x, ax, keepdims), 1 / count));
}

/** Maximum over `axes` (default all); the derivative is shared among tied maxima. */
export function max(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  return bind("max", [x], { axes: normAxes(x, axes, "max"), keepdims: bool(keepdims, "max") });
}

/** Index of the first maximum along `axis` (as floats; not differentiable). */
export function argmax(x: Tensor, axis = -1): Tensor {
  if (typeof axis !== "number") {
    throw new SgnError(`argmax: axis must be one axis number, got ${showValue(axis)}`);
  }
  return bind("argmax", [x], { axis: normAxes(x, axis, "argmax")[0] });
}

/** Softmax along the last axis. */
export const softmax = (x: Tensor): Tensor => bind("softmax", [x], undefined);
/** Log-softmax along the last axis. */
export const logSoftmax = (x: Tensor): Tensor => bind("logSoftmax", [x], undefined);

/** The block x[starts[0] : starts[0] + sizes[0], ...] (step 1). */
export function slice(x: Tensor, starts: readonly number[], sizes: readonly number[]): Tensor {
  checkTensor(x, "slice: x");
  starts = checkInts(starts, "slice: starts", 0);
  sizes = checkInts(sizes, "slice: sizes", 0);
  if (starts.length !== x.rank || sizes.length !== x.rank) {
    throw new SgnError(`slice: give ${x.rank} starts and sizes for shape [${x.shape.join(", ")}]`);
  }
  for (let i = 0; i < x.rank; i++) {
    if (starts[i] < 0 || sizes[i] < 0 || starts[i] + sizes[i] > x.shape[i]) {
      throw new SgnError(
        `slice: [${starts[i]}, ${starts[i] + sizes[i]}) is outside axis ${i} of [${
          x.shape.join(", ")
        }]`,
      );
    }
  }
  return bind("slice", [x], { starts: [...starts], sizes: [...sizes] });
}

/** Joins tensors along `axis`; the other dimensions must agree. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs)) {
    throw new SgnError(`concat: give an array of tensors, got ${showValue(xs)}`);
  }
  xs.forEach((x, i) => checkTensor(x, `concat: xs[${i}]`));
  if (typeof axis !== "number") {
    throw new SgnError(`concat: axis must be one axis number, got ${showValue(axis)}`);
  }
  if (xs.length === 0) throw new SgnError("concat: give at least one tensor");
  if (xs.length === 1) return xs[0];
  return bind("concat", [...xs], { axis: normAxes(xs[0], axis, "concat")[0] });
}

/** Pads with zeros: `before[i]` and `after[i]` entries on each side of axis i. */
export function pad(x: Tensor, before: readonly number[], after: readonly number[]): Tensor {
  checkTensor(x, "pad: x");
  before = checkInts(before, "pad: before", 0);
  after = checkInts(after, "pad: after", 0);
  if (before.length !== x.rank || after.length !== x.rank) {
    throw new SgnError(
      `pad: give ${x.rank} sizes before and after for shape [${x.shape.join(", ")}]`,
    );
  }
  checkShape(x.shape.map((d, i) => d + before[i] + after[i]), "pad");
  return scope(() => padAll(x, before, after));
}

function padAll(x: Tensor, before: readonly number[], after: readonly number[]): Tensor {
  let y = x;
  for (let i = 0; i < x.rank; i++) {
    if (before[i] === 0 && after[i] === 0) continue;
    const parts: Tensor[] = [];
    const shapeAt = (n: number) => y.shape.map((d, j) => (j === i ? n : d));
    if (before[i] > 0) parts.push(zerosLike(y, shapeAt(before[i])));
    parts.push(y);
    if (after[i] > 0) parts.push(zerosLike(y, shapeAt(after[i])));
    y = concat(parts, i);
  }
  return y;
}

// --- linear algebra and convolution -----------------------------------------------------------

/**
 * Matrix product of [..., m, k] and [..., k, n] (rank 2 or 3; a rank-2 operand is shared by
 * every batch entry of a rank-3 one). `transA` / `transB` read the operand's last two axes
 * transposed without moving memory.
 */
export function matmul(
  a: Tensor,
  b: Tensor,
  options: { transA?: boolean; transB?: boolean } = {},
): Tensor {
  if (typeof options !== "object" || options === null) {
    throw new SgnError(`matmul: options must be { transA?, transB? }, got ${showValue(options)}`);
  }
  const transA = bool(options.transA ?? false, "matmul: transA");
  const transB = bool(options.transB ?? false, "matmul: transB");
  return bind("matmul", [a, b], { transA, transB });
}

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  /** Step of the kernel window: one number for both axes, or [height, width] (default 1). */
  stride?: number | [number, number];
  /** Zeros added on each side: one number for both axes, or [height, width] (default 0). */
  padding?: number | [number, number];
}

/** 2-D convolution (cross-correlation) of x [n, c, h, w] with w [f, c, kh, kw]. */
export function conv2d(x: Tensor, w: Tensor, options: Conv2dOptions = {}): Tensor {
  if (typeof options !== "object" || options === null) {
    throw new SgnError(`conv2d: options must be { stride?, padding? }, got ${showValue(options)}`);
  }
  const [strideH, strideW] = twoInts(options.stride ?? 1, "conv2d: stride", 1);
  const [padH, padW] = twoInts(options.padding ?? 0, "conv2d: padding", 0);
  return bind("conv2d", [x, w], { strideH, strideW, padH, padW });
}

/** 2-D max pooling of x [n, c, h, w] with `size` windows (stride default = size, border dropped). */
export function maxPool2d(
  x: Tensor,
  size: number | [number, number] = 2,
  stride?: number | [number, number],
): Tensor {
  const [kh, kw] = twoInts(size, "maxPool2d: size", 1);
  const [sh, sw] = stride === undefined ? [kh, kw] : twoInts(stride, "maxPool2d: stride", 1);
  return bind("maxPool2d", [x, x], { kh, kw, strideH: sh, strideW: sw });
}

/**
 * 2-D average pooling of x [n, c, h, w] with `size` windows (stride default = size; the border
 * that no whole window covers is dropped, as in {@link maxPool2d}). Windows that tile the map
 * (stride = size) are a reshape and a mean; others a convolution of each channel with a kernel
 * of 1 / (kh kw). Composed of differentiable ops: its derivatives come from theirs.
 *
 * @example
 * ```ts
 * import { init, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [1, 1, 4, 4]);
 * console.log(await ops.avgPool2d(x, 2).data()); // 3.5, 5.5, 11.5, 13.5
 * ```
 */
export function avgPool2d(
  x: Tensor,
  size: number | [number, number] = 2,
  stride?: number | [number, number],
): Tensor {
  checkTensor(x, "avgPool2d: x");
  const [kh, kw] = twoInts(size, "avgPool2d: size", 1);
  const [sh, sw] = stride === undefined ? [kh, kw] : twoInts(stride, "avgPool2d: stride", 1);
  if (x.rank !== 4) {
    throw new SgnError(`avgPool2d: expects x [n, c, h, w], got [${x.shape.join(", ")}]`);
  }
  const [n, c, h, w] = x.shape;
  const ho = Math.floor((h - kh) / sh) + 1;
  const wo = Math.floor((w - kw) / sw) + 1;
  if (ho < 1 || wo < 1) {
    throw new SgnError(
      `avgPool2d: a ${kh}x${kw} window with stride ${sh}x${sw} does not fit an input of ${h}x${w}`,
    );
  }
  return scope(() => {
    if (sh === kh && sw === kw) {
      const covered = ho * kh === h && wo * kw === w
        ? x
        : slice(x, [0, 0, 0, 0], [n, c, ho * kh, wo * kw]);
      return mean(reshape(covered, [n, c, ho, kh, wo, kw]), [3, 5]);
    }
    const kernel = mul(onesLike(x, [1, 1, kh, kw]), 1 / (kh * kw));
    const y = conv2d(reshape(x, [n * c, 1, h, w]), kernel, { stride: [sh, sw] });
    return reshape(y, [n, c, ho, wo]);
  });
}

/** Global average pooling: the mean over height and width, [n, c, h, w] -> [n, c]. */
export function globalAvgPool2d(x: Tensor): Tensor {
  checkTensor(x, "globalAvgPool2d: x");
  if (x.rank !== 4) {
    throw new SgnError(`globalAvgPool2d: expects x [n, c, h, w], got [${x.shape.join(", ")}]`);
  }
  return mean(x, [2, 3]);
}

// --- composites -----------------------------------------------------------------------------

/**
 * GELU in its exact form, x Phi(x) = x (1 + erf(x / sqrt(2))) / 2, as PyTorch's default
 * (`nn.GELU()`; not the tanh approximation). Like PyTorch's, for x below about -5 the sum
 * 1 + erf cancels, so the tiny result there has an absolute, not relative, accuracy.
 */
export function gelu(x: Tensor): Tensor {
  return scope(() => mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1)));
}

/** The epsilon of {@link layerNorm}, as PyTorch's `nn.LayerNorm` (added to the variance). */
export const LAYER_NORM_EPS = 1e-5;

/**
 * Layer normalization without gain and bias: each example (index of the first axis) minus its
 * mean over all its other entries, divided by sqrt(variance + eps) (the biased variance, as in
 * PyTorch's `nn.LayerNorm`). Composed of differentiable ops.
 *
 * @example
 * ```ts
 * import { init, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * console.log(await ops.layerNorm(tensor([[1, 3]])).data()); // about [-1, 1]
 * ```
 */
export function layerNorm(x: Tensor, eps: number = LAYER_NORM_EPS): Tensor {
  checkTensor(x, "layerNorm: x");
  if (x.rank < 2) {
    throw new SgnError(
      `layerNorm: x needs a batch axis and at least one more, got [${x.shape.join(", ")}]`,
    );
  }
  if (typeof eps !== "number" || !(eps >= 0) || !Number.isFinite(eps)) {
    throw new SgnError(`layerNorm: eps must be a finite number >= 0, got ${showValue(eps)}`);
  }
  const axes = x.shape.map((_, i) => i).slice(1);
  return scope(() => {
    const centered = sub(x, mean(x, axes, true));
    const variance = mean(square(centered), axes, true);
    return div(centered, sqrt(add(variance, eps)));
  });
}

/** Inner product of two tensors of one shape, as a scalar. */
export function dot(a: Tensor, b: Tensor): Tensor {
  return scope(() => sum(mul(a, b)));
}
