/**
 * The derivative part of each primitive: its JVP rule and its VJP rule, in one table row
 * ({@link DERIVATIVES}) named as the primitive's forward row in primitives.ts. The table is typed
 * over the primitive names, so a primitive without derivative rules does not compile.
 *
 * Rules are written with the differentiable ops of ops.ts, so they can themselves be
 * differentiated (the JVP of a VJP rule is what a Hessian-vector product runs). A JVP rule gets
 * null for the tangent of an argument that does not depend on the differentiated inputs and
 * returns null when the output does not either; a VJP rule is told which cotangents are needed.
 *
 * This module sits above ops.ts and below the transformations (traces.ts), which are the only
 * readers of the table: the module graph itself, and no registration call, puts the rules within
 * reach of tracing whatever order a program imports modules in.
 *
 * @module
 */

import { TWO_OVER_SQRT_PI } from "../kernel/erf.ts";
import type { UnaryOp } from "../kernel/ir.ts";
import { bind } from "./core.ts";
import * as o from "./ops.ts";
import {
  type ConvParams,
  type ParamsOf,
  type PoolParams,
  type PrimName,
  reducedShape,
} from "./primitives.ts";
import type { Tensor } from "./tensor.ts";

type Shape = readonly number[];
type Tangents = (Tensor | null)[];

/**
 * Caches a value derived from primal values only (a derivative factor such as s (1 - s)) under
 * a key, for as long as the recorded forward pass lives; outside a tape it just computes it.
 */
export type Memo = (key: string, make: () => Tensor) => Tensor;

/** A Memo that caches nothing. */
export const noMemo: Memo = (_key, make) => make();

/** One primitive's derivative rules. */
export interface Derivative<P> {
  /** Output tangent from input tangents (null = zero). */
  jvp(primals: Tensor[], tangents: Tangents, params: P, out: Tensor, memo: Memo): Tensor | null;
  /** Input cotangents from the output cotangent (null where not needed). */
  vjp(
    ct: Tensor,
    primals: Tensor[],
    params: P,
    out: Tensor,
    needs: boolean[],
    memo: Memo,
  ): Tangents;
}

// --- helpers --------------------------------------------------------------------------------

/** a + b where null means zero. */
function addT(a: Tensor | null, b: Tensor | null): Tensor | null {
  return a && b ? o.add(a, b) : a ?? b;
}

/** Sums a broadcast cotangent back to `shape`. */
function unbroadcast(ct: Tensor, shape: Shape): Tensor {
  if (ct.rank === shape.length && ct.shape.every((d, i) => d === shape[i])) return ct;
  const lead = ct.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < ct.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && ct.shape[i] !== 1)) axes.push(i);
  }
  return o.reshape(axes.length ? o.sum(ct, axes) : ct, shape);
}

/**
 * An element-wise unary primitive's rules: the tangent and the cotangent times its derivative
 * `factor` (of the input x and the output), or zero when `factor` is null.
 */
function unary(factor: ((x: Tensor, out: Tensor) => Tensor) | null): Derivative<undefined> {
  return {
    jvp: ([x], [t], _, out, memo) =>
      factor && t ? o.mul(t, memo("factor", () => factor(x, out))) : null,
    vjp: (ct, [x], _, out, __, memo) => [
      factor ? o.mul(ct, memo("factor", () => factor(x, out))) : null,
    ],
  };
}

/** Broadcasts a tangent to the output shape when it is the only one. */
const toOut = (t: Tensor, out: Tensor) => o.broadcastTo(t, out.shape);

const cig = (dy: Tensor, w: Tensor, p: ParamsOf["conv2dInputGrad"]) =>
  bind("conv2dInputGrad", [dy, w], p);
const cwg = (x: Tensor, dy: Tensor, p: ParamsOf["conv2dWeightGrad"]) =>
  bind("conv2dWeightGrad", [x, dy], p);
const convOf = (p: ConvParams): ConvParams => ({
  strideH: p.strideH,
  strideW: p.strideW,
  padH: p.padH,
  padW: p.padW,
});
const poolOf = (p: PoolParams): PoolParams => ({
  kh: p.kh,
  kw: p.kw,
  strideH: p.strideH,
  strideW: p.strideW,
});

/** Sums a cotangent over the batch axis when the operand was shared by the batch. */
const unbatch = (g: Tensor, rank: number) => (rank === 2 && g.rank === 3 ? o.sum(g, [0]) : g);

// --- the tables -----------------------------------------------------------------------------

/** The element-wise unary primitives' rules: one row per op of the IR's table (kernel/ir.ts). */
const UNARY_DERIVATIVES: { [K in UnaryOp]: Derivative<undefined> } = {
  neg: {
    jvp: (_, [t]) => t && o.neg(t),
    vjp: (ct) => [o.neg(ct)],
  },
  exp: unary((_, out) => out),
  log: unary((x) => o.reciprocal(x)),
  sigmoid: unary((_, s) => o.mul(s, o.sub(1, s))),
  tanh: unary((_, t) => o.sub(1, o.square(t))),
  // step(relu(x)) = step(x): the mask reads the output, so the input (often a matmul fused into
  // this relu) is not needed again.
  relu: unary((_, out) => o.step(out)),
  square: unary((x) => o.mul(x, 2)),
  sqrt: unary((_, out) => o.div(0.5, out)),
  reciprocal: unary((_, out) => o.neg(o.square(out))),
  // |x|' = sign(x), 0 at 0 (as relu's derivative there); sign is piecewise constant.
  abs: unary((x) => o.sign(x)),
  sign: unary(null),
  step: unary(null),
  // softplus' = sigmoid; erf' = 2/sqrt(pi) e^(-x^2).
  softplus: unary((x) => o.sigmoid(x)),
  erf: unary((x) => o.mul(o.exp(o.neg(o.square(x))), TWO_OVER_SQRT_PI)),
};

/** The derivative rules of every primitive. */
export const DERIVATIVES: { [K in PrimName]: Derivative<ParamsOf[K]> } = {
  ...UNARY_DERIVATIVES,
  add: {
    jvp: (
      _,
      [ta, tb],
      __,
      out,
    ) => (ta && tb ? o.add(ta, tb) : ta ? toOut(ta, out) : tb ? toOut(tb, out) : null),
    vjp: (ct, [a, b]) => [unbroadcast(ct, a.shape), unbroadcast(ct, b.shape)],
  },
  sub: {
    jvp: (_, [ta, tb], __, out) =>
      ta && tb ? o.sub(ta, tb) : ta ? toOut(ta, out) : tb ? toOut(o.neg(tb), out) : null,
    vjp: (ct, [a, b], _, __, needs) => [
      unbroadcast(ct, a.shape),
      needs[1] ? unbroadcast(o.neg(ct), b.shape) : null,
    ],
  },
  mul: {
    jvp: ([a, b], [ta, tb], _, out) => {
      const t = addT(ta && o.mul(ta, b), tb && o.mul(a, tb));
      return t && toOut(t, out);
    },
    vjp: (ct, [a, b], _, __, needs) => [
      needs[0] ? unbroadcast(o.mul(ct, b), a.shape) : null,
      needs[1] ? unbroadcast(o.mul(ct, a), b.shape) : null,
    ],
  },
  div: {
    jvp: ([_, b], [ta, tb], __, out) => {
      const t = addT(ta, tb && o.neg(o.mul(tb, out)));
      return t && toOut(o.div(t, b), out);
    },
    vjp: (ct, [a, b], _, out, needs) => {
      const q = o.div(ct, b);
      return [
        needs[0] ? unbroadcast(q, a.shape) : null,
        needs[1] ? unbroadcast(o.neg(o.mul(q, out)), b.shape) : null,
      ];
    },
  },
  maximum: {
    jvp: ([a, b], [ta, tb], _, out) => {
      const m = o.greaterEqual(a, b);
      const t = addT(ta && o.mul(ta, m), tb && o.mul(tb, o.sub(1, m)));
      return t && toOut(t, out);
    },
    vjp: (ct, [a, b], _, __, needs) => {
      const m = o.greaterEqual(a, b);
      return [
        needs[0] ? unbroadcast(o.mul(ct, m), a.shape) : null,
        needs[1] ? unbroadcast(o.mul(ct, o.sub(1, m)), b.shape) : null,
      ];
    },
  },
  compare: {
    jvp: () => null,
    vjp: () => [null, null],
  },
  where: {
    jvp: ([c, a], [_, ta, tb]) =>
      ta || tb ? o.where(c, ta ?? o.zerosLike(a), tb ?? o.zerosLike(a)) : null,
    vjp: (ct, [c], _, __, needs) => {
      const z = o.zerosLike(ct);
      return [null, needs[1] ? o.where(c, ct, z) : null, needs[2] ? o.where(c, z, ct) : null];
    },
  },
  reshape: {
    jvp: (_, [t], p) => t && o.reshape(t, p.shape),
    vjp: (ct, [x]) => [o.reshape(ct, x.shape)],
  },
  transpose: {
    jvp: (_, [t], p) => t && o.transpose(t, p.perm),
    vjp: (ct, _, p) => {
      const inv = new Array<number>(p.perm.length);
      p.perm.forEach((v, i) => (inv[v] = i));
      return [o.transpose(ct, inv)];
    },
  },
  broadcastTo: {
    jvp: (_, [t], p) => t && o.broadcastTo(t, p.shape),
    vjp: (ct, [x]) => [unbroadcast(ct, x.shape)],
  },
  sum: {
    jvp: (_, [t], p) => t && o.sum(t, p.axes, p.keepdims),
    vjp: (
      ct,
      [x],
      p,
    ) => [o.broadcastTo(o.reshape(ct, reducedShape(x.shape, p.axes, true)), x.shape)],
  },
  max: {
    jvp: ([x], [t], p, out) => {
      if (!t) return null;
      const keep = reducedShape(x.shape, p.axes, true);
      const mask = o.equal(x, o.reshape(out, keep));
      const count = o.sum(mask, p.axes, p.keepdims);
      return o.div(o.sum(o.mul(t, mask), p.axes, p.keepdims), count);
    },
    vjp: (ct, [x], p, out) => {
      const keep = reducedShape(x.shape, p.axes, true);
      const mask = o.equal(x, o.reshape(out, keep));
      const count = o.sum(mask, p.axes, true);
      return [o.mul(mask, o.div(o.reshape(ct, keep), count))];
    },
  },
  argmax: {
    jvp: () => null,
    vjp: () => [null],
  },
  softmax: {
    jvp: (_, [t], __, s) => t && o.mul(s, o.sub(t, o.sum(o.mul(s, t), -1, true))),
    vjp: (ct, _, __, s) => [o.mul(s, o.sub(ct, o.sum(o.mul(s, ct), -1, true)))],
  },
  logSoftmax: {
    jvp: (_, [t], __, out) => t && o.sub(t, o.sum(o.mul(o.exp(out), t), -1, true)),
    vjp: (ct, _, __, out) => [o.sub(ct, o.mul(o.exp(out), o.sum(ct, -1, true)))],
  },
  slice: {
    jvp: (_, [t], p) => t && o.slice(t, p.starts, p.sizes),
    vjp: (ct, [x], p) => [
      o.pad(ct, p.starts, x.shape.map((d, i) => d - p.starts[i] - p.sizes[i])),
    ],
  },
  concat: {
    jvp: (primals, tangents, p) =>
      tangents.some((t) => t)
        ? o.concat(tangents.map((t, i) => t ?? o.zerosLike(primals[i])), p.axis)
        : null,
    vjp: (ct, primals, p, _, needs) => {
      let start = 0;
      return primals.map((x, i) => {
        const starts = ct.shape.map((_, j) => (j === p.axis ? start : 0));
        start += x.shape[p.axis];
        return needs[i] ? o.slice(ct, starts, x.shape) : null;
      });
    },
  },
  matmul: {
    jvp: ([a, b], [ta, tb], p) => addT(ta && o.matmul(ta, b, p), tb && o.matmul(a, tb, p)),
    vjp: (ct, [a, b], { transA, transB }, _, needs) => {
      // dA = ct B^T (B ct^T when A is read transposed), dB = A^T ct (ct^T A when B is).
      const da = () =>
        transA
          ? o.matmul(b, ct, { transA: transB, transB: true })
          : o.matmul(ct, b, { transB: !transB });
      const db = () =>
        transB
          ? o.matmul(ct, a, { transA: true, transB: transA })
          : o.matmul(a, ct, { transA: !transA });
      return [needs[0] ? unbatch(da(), a.rank) : null, needs[1] ? unbatch(db(), b.rank) : null];
    },
  },
  conv2d: {
    jvp: ([x, w], [tx, tw], p) =>
      addT(tx && bind("conv2d", [tx, w], p), tw && bind("conv2d", [x, tw], p)),
    vjp: (ct, [x, w], p, _, needs) => [
      needs[0] ? cig(ct, w, { ...convOf(p), h: x.shape[2], w: x.shape[3] }) : null,
      needs[1] ? cwg(x, ct, { ...convOf(p), kh: w.shape[2], kw: w.shape[3] }) : null,
    ],
  },
  conv2dInputGrad: {
    jvp: ([dy, w], [tdy, tw], p) => addT(tdy && cig(tdy, w, p), tw && cig(dy, tw, p)),
    vjp: (ct, [dy, w], p, _, needs) => [
      needs[0] ? bind("conv2d", [ct, w], convOf(p)) : null,
      needs[1] ? cwg(ct, dy, { ...convOf(p), kh: w.shape[2], kw: w.shape[3] }) : null,
    ],
  },
  conv2dWeightGrad: {
    jvp: ([x, dy], [tx, tdy], p) => addT(tx && cwg(tx, dy, p), tdy && cwg(x, tdy, p)),
    vjp: (ct, [x, dy], p, _, needs) => [
      needs[0] ? cig(dy, ct, { ...convOf(p), h: x.shape[2], w: x.shape[3] }) : null,
      needs[1] ? bind("conv2d", [x, ct], convOf(p)) : null,
    ],
  },
  maxPool2d: {
    // The window's argmax is piecewise constant in x: only the values operand has a derivative.
    jvp: ([x], [_, tv], p) => tv && bind("maxPool2d", [x, tv], poolOf(p)),
    vjp: (
      ct,
      [x],
      p,
      _,
      needs,
    ) => [null, needs[1] ? bind("maxPool2dBackward", [x, ct], poolOf(p)) : null],
  },
  maxPool2dBackward: {
    jvp: ([x], [_, tdy], p) => tdy && bind("maxPool2dBackward", [x, tdy], poolOf(p)),
    vjp: (ct, [x], p, _, needs) => [null, needs[1] ? bind("maxPool2d", [x, ct], poolOf(p)) : null],
  },
};
