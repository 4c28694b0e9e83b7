/**
 * What the kernel layer's property tests (tests/property_lazy_programs_test.ts,
 * property_routines_test.ts, property_grid_test.ts) check against: the targets (the CPU oracle
 * and the native backend in float32 and float64, and WebGPU) and a tiny float64 ndarray written
 * here with explicit index arithmetic, not the project's interpreter: a bug in how kernel/lazy.ts
 * composes views would be shared by every backend and by the interpreter, so comparing backends
 * with one another cannot see it. Tolerances: each reference value carries a bound on the
 * rounding error a float32 evaluation can make, in units of the unit roundoff u (2^-24 in
 * float32, 2^-53 in float64), propagated op by op (a rounding per op, a sum of n terms up to
 * n u sum |terms|, transcendental functions a few ulps on WebGPU). A backend passes when
 * |got - want| <= 4 u bound + a tiny floor.
 */

import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import { cpu, nativeVariants, webgpu } from "./harness.ts";

const natives = await nativeVariants();
const gpu = await webgpu();

/** A backend and the dtype it is checked in, with its unit roundoff. */
export interface Target {
  label: string;
  be: Backend;
  dtype: DType;
  u: number;
}

const F32 = 2 ** -24;
const F64 = 2 ** -53;
export const TARGETS: Target[] = [
  { label: "cpu float32", be: cpu, dtype: "float32", u: F32 },
  { label: "cpu float64", be: cpu, dtype: "float64", u: F64 },
  ...natives.flatMap(({ label, be }) => [
    { label: `${label} float32`, be: be as Backend, dtype: "float32" as DType, u: F32 },
    { label: `${label} float64`, be: be as Backend, dtype: "float64" as DType, u: F64 },
  ]),
  ...(gpu ? [{ label: "webgpu", be: gpu as Backend, dtype: "float32" as DType, u: F32 }] : []),
];

// --- the reference: shape + flat float64 data + an error bound per element (in units of u) ---

export const stridesOf = (shape: readonly number[]): number[] => {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
};
export const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The multi-index of flat position i in shape. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** The flat position of a multi-index in shape. */
function ravel(idx: readonly number[], shape: readonly number[]): number {
  let at = 0;
  for (let d = 0; d < shape.length; d++) at = at * shape[d] + idx[d];
  return at;
}

/** A reference array: values and their float32 error bounds (units of u). */
export class ND {
  constructor(
    readonly shape: number[],
    readonly data: Float64Array,
    readonly err: Float64Array = new Float64Array(data.length),
  ) {}
  get size(): number {
    return this.data.length;
  }
  /** Whether a float32 evaluation gives exactly these values (argmax may then be compared). */
  get exact(): boolean {
    return this.err.every((e) => e === 0);
  }
}

/** out[i] = x[src(i)] for a gather of x into shape: views copy values and error bounds. */
function gather(x: ND, shape: number[], src: (idx: number[]) => number): ND {
  const n = sizeOf(shape);
  const out = new ND(shape, new Float64Array(n), new Float64Array(n));
  for (let i = 0; i < n; i++) {
    const j = src(unravel(i, shape));
    out.data[i] = x.data[j];
    out.err[i] = x.err[j];
  }
  return out;
}

export const refReshape = (x: ND, shape: number[]) => new ND(shape, x.data, x.err);
export const refTranspose = (x: ND, perm: number[]) =>
  gather(x, perm.map((p) => x.shape[p]), (idx) => {
    const src = new Array<number>(x.shape.length);
    perm.forEach((p, i) => (src[p] = idx[i]));
    return ravel(src, x.shape);
  });
/** The index of x read at an index of the broadcast shape (NumPy rules). */
const bcastIndex = (x: readonly number[], shape: readonly number[], idx: number[]) => {
  const lead = shape.length - x.length;
  return ravel(x.map((d, i) => (d === 1 ? 0 : idx[i + lead])), x);
};
export const refBroadcast = (x: ND, shape: number[]) =>
  gather(x, shape, (idx) => bcastIndex(x.shape, shape, idx));
export const refSlice = (x: ND, starts: number[], sizes: number[]) =>
  gather(x, sizes, (idx) => ravel(idx.map((v, i) => v + starts[i]), x.shape));

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] | undefined {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return undefined;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Unary ops: value, |derivative| (error propagation) and the ulps WebGPU may add. */
const UNARY = {
  neg: { f: (x: number) => -x, d: () => 1, ulps: 0 },
  relu: { f: (x: number) => (x <= 0 ? 0 : x), d: () => 1, ulps: 0 },
  square: { f: (x: number) => x * x, d: (x: number) => 2 * Math.abs(x), ulps: 1 },
  sigmoid: { f: (x: number) => 1 / (1 + Math.exp(-x)), d: () => 0.25, ulps: 8 },
  tanh: { f: Math.tanh, d: () => 1, ulps: 8 },
} as const;
export type UnaryName = keyof typeof UNARY;
export const UNARY_NAMES = Object.keys(UNARY) as UnaryName[];

/** Binary ops: value and error bound from the operands' values and bounds. */
const BINARY = {
  add: {
    f: (a: number, b: number) => a + b,
    e: (_a: number, _b: number, ea: number, eb: number, y: number) => ea + eb + Math.abs(y),
  },
  sub: {
    f: (a: number, b: number) => a - b,
    e: (_a: number, _b: number, ea: number, eb: number, y: number) => ea + eb + Math.abs(y),
  },
  mul: {
    f: (a: number, b: number) => a * b,
    e: (a: number, b: number, ea: number, eb: number, y: number) =>
      Math.abs(b) * ea + Math.abs(a) * eb + ea * eb * F32 + Math.abs(y),
  },
  maximum: {
    f: (a: number, b: number) => Math.max(a, b),
    e: (_a: number, _b: number, ea: number, eb: number) => Math.max(ea, eb),
  },
} as const;
export type BinaryName = keyof typeof BINARY;
export const BINARY_NAMES = Object.keys(BINARY) as BinaryName[];

export function refUnary(x: ND, op: UnaryName): ND {
  const u = UNARY[op];
  const out = new ND([...x.shape], new Float64Array(x.size), new Float64Array(x.size));
  for (let i = 0; i < x.size; i++) {
    const y = u.f(x.data[i]);
    out.data[i] = y;
    out.err[i] = u.d(x.data[i]) * x.err[i] +
      (op === "neg" || op === "relu" ? 0 : (1 + u.ulps) * Math.abs(y) + u.ulps);
  }
  return out;
}

export function refBinary(a: ND, b: ND, op: BinaryName): ND {
  const shape = broadcastShape(a.shape, b.shape)!;
  const n = sizeOf(shape);
  const out = new ND(shape, new Float64Array(n), new Float64Array(n));
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    const ia = bcastIndex(a.shape, shape, idx);
    const ib = bcastIndex(b.shape, shape, idx);
    const y = BINARY[op].f(a.data[ia], b.data[ib]);
    out.data[i] = y;
    out.err[i] = BINARY[op].e(a.data[ia], b.data[ib], a.err[ia], b.err[ib], y);
  }
  return out;
}

export type ReduceName = "sum" | "max" | "mean";

/** Reduces `axes` of x (sorted); keepdims keeps them as 1. */
export function refReduce(x: ND, axes: number[], op: ReduceName, keepdims: boolean): ND {
  const outShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const count = sizeOf(axes.map((a) => x.shape[a]));
  const n = sizeOf(outShape);
  const val = new Float64Array(n).fill(op === "max" ? -Infinity : 0);
  const abs = new Float64Array(n);
  const err = new Float64Array(n);
  for (let i = 0; i < x.size; i++) {
    const idx = unravel(i, x.shape);
    const o = ravel(idx.map((v, d) => (axes.includes(d) ? 0 : v)), outShape);
    if (op === "max") {
      val[o] = Math.max(val[o], x.data[i]);
      err[o] = Math.max(err[o], x.err[i]);
    } else {
      val[o] += x.data[i];
      abs[o] += Math.abs(x.data[i]);
      err[o] += x.err[i];
    }
  }
  for (let o = 0; o < n; o++) {
    if (op === "max") continue;
    // A float32 sum of `count` terms: at most count - 1 roundings of partial sums.
    err[o] += count * abs[o];
    if (op === "mean") {
      val[o] /= count;
      err[o] = err[o] / count + 2 * Math.abs(val[o]);
    }
  }
  const shape = keepdims ? outShape : x.shape.filter((_, i) => !axes.includes(i));
  return new ND(shape, val, err);
}

/** Index of the first maximum along `axis` (x exact). */
export function refArgmax(x: ND, axis: number): ND {
  const outShape = x.shape.filter((_, i) => i !== axis);
  const n = sizeOf(outShape);
  const out = new ND(outShape, new Float64Array(n));
  for (let o = 0; o < n; o++) {
    const base = unravel(o, outShape);
    let best = -Infinity;
    let arg = 0;
    for (let k = 0; k < x.shape[axis]; k++) {
      const idx = [...base.slice(0, axis), k, ...base.slice(axis)];
      const v = x.data[ravel(idx, x.shape)];
      if (v > best) {
        best = v;
        arg = k;
      }
    }
    out.data[o] = arg;
  }
  return out;
}

/** [batch?, m, k] x [batch?, k, n] (a rank-2 operand shared by every batch entry). */
export function refMatmul(a: ND, b: ND): ND {
  const batch = a.shape.length === 3 ? a.shape[0] : b.shape.length === 3 ? b.shape[0] : 0;
  const [m, k] = a.shape.slice(-2);
  const n = b.shape[b.shape.length - 1];
  const shape = batch ? [batch, m, n] : [m, n];
  const out = new ND(shape, new Float64Array(sizeOf(shape)), new Float64Array(sizeOf(shape)));
  for (let t = 0; t < Math.max(batch, 1); t++) {
    const oa = a.shape.length === 3 ? t * m * k : 0;
    const ob = b.shape.length === 3 ? t * k * n : 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0, abs = 0, e = 0;
        for (let p = 0; p < k; p++) {
          const x = a.data[oa + i * k + p], y = b.data[ob + p * n + j];
          s += x * y;
          abs += Math.abs(x * y);
          e += Math.abs(x) * b.err[ob + p * n + j] + Math.abs(y) * a.err[oa + i * k + p];
        }
        out.data[t * m * n + i * n + j] = s;
        out.err[t * m * n + i * n + j] = e + (k + 1) * abs;
      }
    }
  }
  return out;
}

export function refConcat(xs: ND[], axis: number): ND {
  const shape = [...xs[0].shape];
  shape[axis] = xs.reduce((a, x) => a + x.shape[axis], 0);
  const starts = xs.map((_, i) => xs.slice(0, i).reduce((a, x) => a + x.shape[axis], 0));
  return gatherMany(shape, (idx) => {
    let j = xs.length - 1;
    while (starts[j] > idx[axis]) j--;
    const src = [...idx];
    src[axis] -= starts[j];
    return [xs[j], ravel(src, xs[j].shape)];
  });
}

export function refPad(x: ND, before: number[], after: number[]): ND {
  const shape = x.shape.map((d, i) => d + before[i] + after[i]);
  const zero = new ND([1], new Float64Array(1));
  return gatherMany(shape, (idx) => {
    const src = idx.map((v, i) => v - before[i]);
    return src.every((v, i) => v >= 0 && v < x.shape[i]) ? [x, ravel(src, x.shape)] : [zero, 0];
  });
}

function gatherMany(shape: number[], src: (idx: number[]) => [ND, number]): ND {
  const n = sizeOf(shape);
  const out = new ND(shape, new Float64Array(n), new Float64Array(n));
  for (let i = 0; i < n; i++) {
    const [x, j] = src(unravel(i, shape));
    out.data[i] = x.data[j];
    out.err[i] = x.err[j];
  }
  return out;
}

/** Values exact in float32: multiples of 1/4 in [-2, 2], from a seed (ties happen). */
export function leafData(n: number, seed: number): Float64Array {
  const out = new Float64Array(n);
  let s = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = ((s >>> 16) % 17 - 8) / 4;
  }
  return out;
}

/** Checks a backend's values against the reference within the propagated bound. */
export function check(got: ArrayLike<number>, want: ND, t: Target, what: string): void {
  assert.equal(got.length, want.size, `${t.label} ${what}: length`);
  for (let i = 0; i < want.size; i++) {
    const tol = 4 * t.u * want.err[i] + 1e-30;
    const g = got[i], w = want.data[i];
    if (!(Math.abs(g - w) <= tol)) {
      throw new Error(
        `${t.label} ${what}: element ${i} (index [${unravel(i, want.shape)}] of [${want.shape}]) ` +
          `is ${g}, expected ${w} (tolerance ${tol.toExponential(2)})`,
      );
    }
  }
}

/** Deterministic small choices from a step's numbers (each call a new digit). */
export function digits(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n: number) => {
    const v = s % n;
    s = Math.floor(s / n) + ((s % 7) * 131);
    return v;
  };
}
