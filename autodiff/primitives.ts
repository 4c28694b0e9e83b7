/**
 * The primitives and their forward part: for each one, in one table row ({@link FORWARD}), its
 * shape rule (which also validates the arguments) and its lowering to the kernel layer. The
 * derivative part of each primitive (its JVP and VJP rules, written with the differentiable ops)
 * is the row of the same name in derivatives.ts; both tables are typed over the primitive names,
 * so a primitive without either row does not compile.
 *
 * The element-wise unary primitives are the IR's op table: one primitive per {@link UnaryOp}
 * (kernel/ir.ts's `UNARY`), its row generated here, so that a new unary op is one row of that
 * table plus its derivative row.
 *
 * This module sits below the ops and the transformations: it imports only errors.ts, kernel/ and
 * tensor.ts, and {@link evaluate} is what `bind` (core.ts) does with a primitive no
 * transformation traces.
 *
 * @module
 */

import { broadcastShapes, sizeOf } from "../kernel/shape.ts";
import {
  conv2dOutSize,
  type Conv2dSpec,
  pool2dOutSize,
  type Pool2dSpec,
} from "../kernel/backend.ts";
import { SgnError } from "../errors.ts";
import { type BinaryOp, UNARY_OPS, type UnaryOp } from "../kernel/ir.ts";
import * as k from "../kernel/graph.ts";
import { PICK_MAX, poolBackwardKernels, poolForwardKernel } from "../kernel/pool.ts";
import type { Lazy } from "../kernel/lazy.ts";
import { Tensor } from "./tensor.ts";

type Shape = readonly number[];

/** Convolution hyperparameters (the sizes come from the operands). */
export interface ConvParams {
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
}

/** Pooling hyperparameters. */
export interface PoolParams {
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
}

/** The element-wise unary primitives: one per op of the IR's table, without parameters. */
export type UnaryParams = { [K in UnaryOp]: undefined };

/** The parameters of each primitive; its keys are the primitive names. */
export interface ParamsOf extends UnaryParams {
  add: undefined;
  sub: undefined;
  mul: undefined;
  div: undefined;
  maximum: undefined;
  compare: { op: "gt" | "ge" | "eq" };
  where: undefined;
  reshape: { shape: number[] };
  transpose: { perm: number[] };
  broadcastTo: { shape: number[] };
  sum: { axes: number[]; keepdims: boolean };
  max: { axes: number[]; keepdims: boolean };
  argmax: { axis: number };
  softmax: undefined;
  logSoftmax: undefined;
  slice: { starts: number[]; sizes: number[] };
  concat: { axis: number };
  matmul: { transA: boolean; transB: boolean };
  conv2d: ConvParams;
  conv2dInputGrad: ConvParams & { h: number; w: number };
  conv2dWeightGrad: ConvParams & { kh: number; kw: number };
  maxPool2d: PoolParams;
  maxPool2dBackward: PoolParams;
}

/** Every primitive's name. */
export type PrimName = keyof ParamsOf;

/** One primitive's forward part. */
export interface Forward<P> {
  /** The output shape; throws an SgnError naming the op when the arguments do not fit. */
  shape(shapes: Shape[], params: P): number[];
  /**
   * The lowering: the output as a lazy array of the kernel layer (an IR expression, a view, a
   * reduction or a routine) over the operands' arrays.
   */
  lower(xs: Lazy[], shapes: Shape[], params: P, out: Shape): Lazy;
}

const fmt = (s: Shape) => `[${s.join(", ")}]`;

/** Evaluates a primitive on concrete tensors (level 0). */
export function evaluate<K extends PrimName>(prim: K, args: Tensor[], params: ParamsOf[K]): Tensor {
  const be = args[0].backend;
  const dtype = args[0].dtype;
  for (const a of args) {
    if (a.backend !== be) {
      throw new SgnError(
        `${prim}: operands live on different backends (${be.name} and ${a.backend.name}); ` +
          "create them on one backend",
      );
    }
    if (a.dtype !== dtype) {
      throw new SgnError(`${prim}: operands have different dtypes (${dtype} and ${a.dtype})`);
    }
  }
  const rule = FORWARD[prim] as Forward<ParamsOf[K]>;
  const shapes = args.map((a) => a.shape);
  const out = rule.shape(shapes, params);
  return new Tensor(be, rule.lower(args.map((a) => a.lazy), shapes, params, out), out, dtype);
}

// --- helpers --------------------------------------------------------------------------------

function sameShape(op: string, shapes: Shape[]): number[] {
  for (const s of shapes) {
    if (s.length !== shapes[0].length || s.some((d, i) => d !== shapes[0][i])) {
      throw new SgnError(`${op}: shapes ${shapes.map(fmt).join(" and ")} must be equal`);
    }
  }
  return [...shapes[0]];
}

/** The shape with `axes` removed (or kept as 1). */
export function reducedShape(shape: Shape, axes: number[], keepdims: boolean): number[] {
  return keepdims
    ? shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : shape.filter((_, i) => !axes.includes(i));
}

/** A reduction over `axes` (sorted), keeping them as size 1 when the output shape asks. */
function reduceTo(op: "sum" | "max", x: Lazy, axes: number[], out: Shape): Lazy {
  if (axes.length === 0) return k.reshape(x, out);
  const r = k.reduce(op, x, axes);
  if (r.shape.length === out.length) return r;
  const v = k.reshape(r, out);
  r.release();
  return v;
}

function binaryShape(op: string) {
  return ([a, b]: Shape[]) => {
    const s = broadcastShapes(a, b);
    if (!s) throw new SgnError(`${op}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    return s;
  };
}

/** An element-wise binary primitive: the IR's `op`, operands broadcast. */
const binary = (name: string, op: BinaryOp): Forward<undefined> => ({
  shape: binaryShape(name),
  lower: ([a, b]) => k.binary(op, a, b),
});

function convSpec(x: Shape, w: Shape, p: ConvParams, op: string): Conv2dSpec {
  if (x.length !== 4 || w.length !== 4) {
    throw new SgnError(
      `${op}: expects x [n, c, h, w] and w [f, c, kh, kw], got ${fmt(x)} and ${fmt(w)}`,
    );
  }
  if (x[1] !== w[1]) {
    throw new SgnError(
      `${op}: x has ${x[1]} channels but the kernel expects ${w[1]} (${fmt(x)}, ${fmt(w)})`,
    );
  }
  const spec: Conv2dSpec = {
    n: x[0],
    c: x[1],
    h: x[2],
    w: x[3],
    f: w[0],
    kh: w[2],
    kw: w[3],
    ...p,
  };
  const [ho, wo] = conv2dOutSize(spec);
  if (!(p.strideH >= 1 && p.strideW >= 1 && p.padH >= 0 && p.padW >= 0) || ho < 1 || wo < 1) {
    throw new SgnError(
      `${op}: a ${w[2]}x${w[3]} kernel with stride ${p.strideH}x${p.strideW} and padding ` +
        `${p.padH}x${p.padW} does not fit an input of ${x[2]}x${x[3]}`,
    );
  }
  return spec;
}

function poolSpec(x: Shape, p: PoolParams, op: string): Pool2dSpec {
  if (x.length !== 4) throw new SgnError(`${op}: expects x [n, c, h, w], got ${fmt(x)}`);
  const spec: Pool2dSpec = { n: x[0], c: x[1], h: x[2], w: x[3], ...p };
  const [ho, wo] = pool2dOutSize(spec);
  if (!(p.kh >= 1 && p.kw >= 1 && p.strideH >= 1 && p.strideW >= 1) || ho < 1 || wo < 1) {
    throw new SgnError(
      `${op}: a ${p.kh}x${p.kw} window with stride ${p.strideH}x${p.strideW} does not fit ` +
        `an input of ${x[2]}x${x[3]}`,
    );
  }
  return spec;
}

/** Softmax or log-softmax along the last axis, one routine over rows. */
function softmaxRoutine(x: Lazy, s: Shape, out: Shape, log: boolean): Lazy {
  const rows = sizeOf(s.slice(0, -1));
  const cols = s[s.length - 1];
  return k.routine({ op: "softmax", rows, cols, log }, [x], out);
}

/** The unary primitives' rows: the IR's op applied element-wise, one per row of its table. */
const UNARY_FORWARD = Object.fromEntries(
  UNARY_OPS.map((op): [UnaryOp, Forward<undefined>] => [op, {
    shape: ([s]) => [...s],
    lower: ([x]) => k.unary(op, x),
  }]),
) as { [K in UnaryOp]: Forward<undefined> };

// --- the table ------------------------------------------------------------------------------

/** The forward part of every primitive. */
export const FORWARD: { [K in PrimName]: Forward<ParamsOf[K]> } = {
  ...UNARY_FORWARD,
  add: binary("add", "add"),
  sub: binary("sub", "sub"),
  mul: binary("mul", "mul"),
  div: binary("div", "div"),
  maximum: binary("maximum", "max"),
  compare: {
    shape: binaryShape("compare"),
    lower: ([a, b], _, p) => k.binary(p.op, a, b),
  },
  where: {
    shape: (s) => sameShape("where", s),
    lower: ([c, a, b]) => k.where(c, a, b),
  },
  reshape: {
    shape: ([s], p) => {
      if (sizeOf(s) !== sizeOf(p.shape)) {
        throw new SgnError(`reshape: cannot reshape ${fmt(s)} to ${fmt(p.shape)}`);
      }
      return [...p.shape];
    },
    lower: ([x], _, p) => k.reshape(x, p.shape),
  },
  transpose: {
    shape: ([s], p) => p.perm.map((i) => s[i]),
    lower: ([x], _, p) => k.permute(x, p.perm),
  },
  broadcastTo: {
    shape: ([s], p) => {
      const b = broadcastShapes(s, p.shape);
      if (!b || b.length !== p.shape.length || b.some((d, i) => d !== p.shape[i])) {
        throw new SgnError(`broadcastTo: ${fmt(s)} does not broadcast to ${fmt(p.shape)}`);
      }
      return [...p.shape];
    },
    lower: ([x], _, p) => k.expand(x, p.shape),
  },
  sum: {
    shape: ([s], p) => reducedShape(s, p.axes, p.keepdims),
    lower: ([x], _, p, out) => reduceTo("sum", x, p.axes, out),
  },
  max: {
    shape: ([s], p) => reducedShape(s, p.axes, p.keepdims),
    lower: ([x], _, p, out) => reduceTo("max", x, p.axes, out),
  },
  argmax: {
    shape: ([s], p) => reducedShape(s, [p.axis], false),
    lower: ([x], _, p) => k.reduce("argmax", x, [p.axis]),
  },
  softmax: {
    shape: ([s]) => {
      if (s.length === 0) throw new SgnError("softmax: needs at least one axis");
      return [...s];
    },
    lower: ([x], [s], _, out) => softmaxRoutine(x, s, out, false),
  },
  logSoftmax: {
    shape: ([s]) => {
      if (s.length === 0) throw new SgnError("logSoftmax: needs at least one axis");
      return [...s];
    },
    lower: ([x], [s], _, out) => softmaxRoutine(x, s, out, true),
  },
  slice: {
    shape: (_, p) => [...p.sizes],
    lower: ([x], _, p) => k.slice(x, p.starts, p.sizes),
  },
  concat: {
    shape: (shapes, p) => {
      const out = [...shapes[0]];
      out[p.axis] = 0;
      for (const s of shapes) {
        if (s.length !== out.length || s.some((d, i) => i !== p.axis && d !== shapes[0][i])) {
          throw new SgnError(
            `concat: shapes ${shapes.map(fmt).join(", ")} differ outside axis ${p.axis}`,
          );
        }
        out[p.axis] += s[p.axis];
      }
      return out;
    },
    lower: (xs, shapes, p, out) => {
      const inner = sizeOf(shapes[0].slice(p.axis + 1));
      const outer = sizeOf(shapes[0].slice(0, p.axis));
      const widths = shapes.map((s) => s[p.axis] * inner);
      return k.routine({ op: "concat", outer, widths }, xs, out);
    },
  },
  matmul: {
    shape: ([a, b], p) => {
      if (a.length < 2 || a.length > 3 || b.length < 2 || b.length > 3) {
        throw new SgnError(`matmul: operands must have rank 2 or 3, got ${fmt(a)} and ${fmt(b)}`);
      }
      const [m, k] = p.transA ? [a.at(-1)!, a.at(-2)!] : [a.at(-2)!, a.at(-1)!];
      const [k2, n] = p.transB ? [b.at(-1)!, b.at(-2)!] : [b.at(-2)!, b.at(-1)!];
      if (k !== k2 || (a.length === 3 && b.length === 3 && a[0] !== b[0])) {
        throw new SgnError(
          `matmul: shapes ${fmt(a)}${p.transA ? "^T" : ""} and ${fmt(b)}${p.transB ? "^T" : ""} ` +
            "do not fit (inner dimensions or batch sizes differ)",
        );
      }
      const batch = a.length === 3 ? a[0] : b.length === 3 ? b[0] : 0;
      return batch ? [batch, m, n] : [m, n];
    },
    lower: ([a, b], [as, bs], p, out) => {
      const spec = {
        m: out.at(-2)!,
        n: out.at(-1)!,
        k: p.transA ? as.at(-2)! : as.at(-1)!,
        transA: p.transA,
        transB: p.transB,
        batch: out.length === 3 ? out[0] : 1,
        batchA: as.length === 3,
        batchB: bs.length === 3,
      };
      return k.routine({ op: "matmul", spec }, [a, b], out);
    },
  },
  conv2d: {
    shape: ([x, w], p) => {
      const s = convSpec(x, w, p, "conv2d");
      return [s.n, s.f, ...conv2dOutSize(s)];
    },
    lower: ([x, w], [xs, ws], p, out) => {
      const spec = convSpec(xs, ws, p, "conv2d");
      return k.routine({ op: "conv2d", spec }, [x, w], out);
    },
  },
  conv2dInputGrad: {
    shape: ([dy, w], p) => {
      const s = convSpec([dy[0], w[1], p.h, p.w], w, p, "conv2dInputGrad");
      const [ho, wo] = conv2dOutSize(s);
      if (dy.length !== 4 || dy[1] !== s.f || dy[2] !== ho || dy[3] !== wo) {
        throw new SgnError(
          `conv2dInputGrad: dy ${fmt(dy)} should be [${s.n}, ${s.f}, ${ho}, ${wo}]`,
        );
      }
      return [s.n, s.c, s.h, s.w];
    },
    lower: ([dy, w], [ds, ws], p, out) => {
      const spec = convSpec([ds[0], ws[1], p.h, p.w], ws, p, "conv2dInputGrad");
      return k.routine({ op: "conv2dInputGrad", spec }, [dy, w], out);
    },
  },
  conv2dWeightGrad: {
    shape: ([x, dy], p) => {
      const s = convSpec(x, [dy[1], x[1], p.kh, p.kw], p, "conv2dWeightGrad");
      const [ho, wo] = conv2dOutSize(s);
      if (dy.length !== 4 || dy[0] !== s.n || dy[2] !== ho || dy[3] !== wo) {
        throw new SgnError(
          `conv2dWeightGrad: dy ${fmt(dy)} should be [${s.n}, ${s.f}, ${ho}, ${wo}]`,
        );
      }
      return [s.f, s.c, s.kh, s.kw];
    },
    lower: ([x, dy], [xs, ds], p, out) => {
      const spec = convSpec(xs, [ds[1], xs[1], p.kh, p.kw], p, "conv2dWeightGrad");
      return k.routine({ op: "conv2dWeightGrad", spec }, [x, dy], out);
    },
  },
  maxPool2d: {
    shape: ([x, v], p) => {
      const s = poolSpec(x, p, "maxPool2d");
      sameShape("maxPool2d", [x, v]);
      return [s.n, s.c, ...pool2dOutSize(s)];
    },
    lower: ([x, v], [xs], p, out) => {
      const spec = poolSpec(xs, p, "maxPool2d");
      const [ho, wo] = pool2dOutSize(spec);
      const srcs = v === x ? [x] : [x, v];
      if (x.backend.poolInIr && spec.n * spec.c > 0 && (v === x || spec.kh * spec.kw <= PICK_MAX)) {
        // A kernel of the graph: x's element-wise work fuses into it, consumers into its epilogue.
        return k.kernelNode(poolForwardKernel(spec, ho, wo, v !== x), srcs);
      }
      return k.routine({ op: "maxPool2d", spec }, srcs, out);
    },
  },
  maxPool2dBackward: {
    shape: ([x, dy], p) => {
      const s = poolSpec(x, p, "maxPool2dBackward");
      const [ho, wo] = pool2dOutSize(s);
      if (dy.length !== 4 || dy[0] !== s.n || dy[1] !== s.c || dy[2] !== ho || dy[3] !== wo) {
        throw new SgnError(
          `maxPool2dBackward: dy ${fmt(dy)} should be [${s.n}, ${s.c}, ${ho}, ${wo}]`,
        );
      }
      return [...x];
    },
    lower: ([x, dy], [xs], p, out) => {
      const spec = poolSpec(xs, p, "maxPool2dBackward");
      const [ho, wo] = pool2dOutSize(spec);
      if (x.backend.poolInIr && spec.n * spec.c > 0) {
        // Kernels of the graph: dy's element-wise work fuses into them, consumers into the
        // gather's epilogue where dx is its whole plane (else they read dx's corner in place).
        const once = x.backend.poolArgmaxOnce;
        const { argmax, gather, plane, fits } = poolBackwardKernels(spec, ho, wo, once);
        const index = argmax && k.kernelNode(argmax, [x]);
        const cells = k.kernelNode(gather, [index ?? x, dy]);
        index?.release();
        const whole = k.reshape(cells, plane);
        cells.release();
        if (fits) return whole;
        const dx = k.slice(whole, [0, 0, 0, 0], out);
        whole.release();
        return dx;
      }
      return k.routine({ op: "maxPool2dBackward", spec }, [x, dy], out);
    },
  },
};
