/**
 * The primitives: for each one, in one table row, its shape rule (which also validates the
 * arguments), its backend call, its JVP rule and its VJP rule. The table is typed over the
 * primitive names, so a primitive without a rule does not compile.
 *
 * Rules are written with differentiable ops, so they can themselves be differentiated (the JVP
 * of a VJP rule is what a Hessian-vector product runs). A JVP rule gets null for the tangent of
 * an argument that does not depend on the differentiated inputs and returns null when the output
 * does not either; a VJP rule is told which cotangents are needed.
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

import type { UnaryOp } from "../kernel/ir.ts";
import * as k from "../kernel/lazy.ts";
import { matmulRoutine } from "../kernel/matmul.ts";
import { TWO_OVER_SQRT_PI } from "../kernel/erf.ts";
import type { Lazy } from "../kernel/lazy.ts";
import { Tensor } from "./tensor.ts";
import { bind, noMemo, registerRules } from "./core.ts";
import type * as Ops from "./ops.ts";

/** The differentiable ops the rules are written with. */
type RuleOps = Pick<
  typeof Ops,
  | "add"
  | "broadcastTo"
  | "concat"
  | "div"
  | "equal"
  | "exp"
  | "greaterEqual"
  | "matmul"
  | "mul"
  | "neg"
  | "pad"
  | "reciprocal"
  | "reshape"
  | "sigmoid"
  | "slice"
  | "square"
  | "step"
  | "sub"
  | "sum"
  | "transpose"
  | "where"
  | "zerosLike"
>;

/**
 * The rules are written with ops.ts's differentiable ops, which dispatch through these rules:
 * ops.ts hands itself over with {@link useOps} when it loads, so that neither module imports the
 * other both ways.
 */
let o: RuleOps;

/** Gives the rules the ops they are written with (ops.ts calls it once, when it loads). */
export function useOps(ops: RuleOps): void {
  o = ops;
}

type Shape = readonly number[];
type Tangents = (Tensor | null)[];

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

/** The parameters of each primitive; its keys are the primitive names. */
export interface ParamsOf {
  add: undefined;
  sub: undefined;
  mul: undefined;
  div: undefined;
  maximum: undefined;
  neg: undefined;
  exp: undefined;
  log: undefined;
  sigmoid: undefined;
  tanh: undefined;
  relu: undefined;
  square: undefined;
  sqrt: undefined;
  reciprocal: undefined;
  step: undefined;
  softplus: undefined;
  erf: undefined;
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

/**
 * Caches a value derived from primal values only (a derivative factor such as s (1 - s)) under
 * a key, for as long as the recorded forward pass lives; outside a tape it just computes it.
 */
export type Memo = (key: string, make: () => Tensor) => Tensor;

export { noMemo };

/** One primitive's rules. */
export interface Rule<P> {
  /** The output shape; throws an SgnError naming the op when the arguments do not fit. */
  shape(shapes: Shape[], params: P): number[];
  /**
   * The lowering: the output as a lazy array of the kernel layer (an IR expression, a view, a
   * reduction or a routine) over the operands' arrays.
   */
  lower(xs: Lazy[], shapes: Shape[], params: P, out: Shape): Lazy;
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
  const rule = RULES[prim] as Rule<ParamsOf[K]>;
  const shapes = args.map((a) => a.shape);
  const out = rule.shape(shapes, params);
  return new Tensor(be, rule.lower(args.map((a) => a.lazy), shapes, params, out), out, dtype);
}

// --- helpers --------------------------------------------------------------------------------

/** a + b where null means zero. */
function addT(a: Tensor | null, b: Tensor | null): Tensor | null {
  return a && b ? o.add(a, b) : a ?? b;
}

/** Sums a broadcast cotangent back to `shape`. */
export function unbroadcast(ct: Tensor, shape: Shape): Tensor {
  if (ct.rank === shape.length && ct.shape.every((d, i) => d === shape[i])) return ct;
  const lead = ct.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < ct.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && ct.shape[i] !== 1)) axes.push(i);
  }
  return o.reshape(axes.length ? o.sum(ct, axes) : ct, shape);
}

function sameShape(op: string, shapes: Shape[]): number[] {
  for (const s of shapes) {
    if (s.length !== shapes[0].length || s.some((d, i) => d !== shapes[0][i])) {
      throw new SgnError(`${op}: shapes ${shapes.map(fmt).join(" and ")} must be equal`);
    }
  }
  return [...shapes[0]];
}

/** The shape with `axes` removed (or kept as 1). */
function reducedShape(shape: Shape, axes: number[], keepdims: boolean): number[] {
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

function unary(op: UnaryOp, factor: ((x: Tensor, out: Tensor) => Tensor) | null): Rule<undefined> {
  return {
    shape: ([s]) => [...s],
    lower: ([x]) => k.unary(op, x),
    jvp: ([x], [t], _, out, memo) =>
      factor && t ? o.mul(t, memo("factor", () => factor(x, out))) : null,
    vjp: (ct, [x], _, out, __, memo) => [
      factor ? o.mul(ct, memo("factor", () => factor(x, out))) : null,
    ],
  };
}

function binaryShape(op: string) {
  return ([a, b]: Shape[]) => {
    const s = broadcastShapes(a, b);
    if (!s) throw new SgnError(`${op}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    return s;
  };
}

/** Broadcasts a tangent to the output shape when it is the only one. */
const toOut = (t: Tensor, out: Tensor) => o.broadcastTo(t, out.shape);

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

/** Softmax or log-softmax along the last axis, one routine over rows. */
function softmaxRoutine(x: Lazy, s: Shape, out: Shape, log: boolean): Lazy {
  const rows = sizeOf(s.slice(0, -1));
  const cols = s[s.length - 1];
  return k.routine(
    log ? "logSoftmax" : "softmax",
    [x],
    out,
    ([a]) => x.backend.softmax(a, rows, cols, log),
  );
}

/** Sums a cotangent over the batch axis when the operand was shared by the batch. */
const unbatch = (g: Tensor, rank: number) => (rank === 2 && g.rank === 3 ? o.sum(g, [0]) : g);

// --- the table ------------------------------------------------------------------------------

/** The rules of every primitive. */
export const RULES: { [K in PrimName]: Rule<ParamsOf[K]> } = {
  add: {
    shape: binaryShape("add"),
    lower: ([a, b]) => k.binary("add", a, b),
    jvp: (
      _,
      [ta, tb],
      __,
      out,
    ) => (ta && tb ? o.add(ta, tb) : ta ? toOut(ta, out) : tb ? toOut(tb, out) : null),
    vjp: (ct, [a, b]) => [unbroadcast(ct, a.shape), unbroadcast(ct, b.shape)],
  },
  sub: {
    shape: binaryShape("sub"),
    lower: ([a, b]) => k.binary("sub", a, b),
    jvp: (_, [ta, tb], __, out) =>
      ta && tb ? o.sub(ta, tb) : ta ? toOut(ta, out) : tb ? toOut(o.neg(tb), out) : null,
    vjp: (ct, [a, b], _, __, needs) => [
      unbroadcast(ct, a.shape),
      needs[1] ? unbroadcast(o.neg(ct), b.shape) : null,
    ],
  },
  mul: {
    shape: binaryShape("mul"),
    lower: ([a, b]) => k.binary("mul", a, b),
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
    shape: binaryShape("div"),
    lower: ([a, b]) => k.binary("div", a, b),
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
    shape: binaryShape("maximum"),
    lower: ([a, b]) => k.binary("max", a, b),
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
  neg: {
    shape: ([s]) => [...s],
    lower: ([x]) => k.unary("neg", x),
    jvp: (_, [t]) => t && o.neg(t),
    vjp: (ct) => [o.neg(ct)],
  },
  exp: unary("exp", (_, out) => out),
  log: unary("log", (x) => o.reciprocal(x)),
  sigmoid: unary("sigmoid", (_, s) => o.mul(s, o.sub(1, s))),
  tanh: unary("tanh", (_, t) => o.sub(1, o.square(t))),
  // step(relu(x)) = step(x): the mask reads the output, so the input (often a matmul fused into
  // this relu) is not needed again.
  relu: unary("relu", (_, out) => o.step(out)),
  square: unary("square", (x) => o.mul(x, 2)),
  sqrt: unary("sqrt", (_, out) => o.div(0.5, out)),
  reciprocal: unary("reciprocal", (_, out) => o.neg(o.square(out))),
  step: unary("step", null),
  // softplus' = sigmoid; erf' = 2/sqrt(pi) e^(-x^2).
  softplus: unary("softplus", (x) => o.sigmoid(x)),
  erf: unary("erf", (x) => o.mul(o.exp(o.neg(o.square(x))), TWO_OVER_SQRT_PI)),
  compare: {
    shape: binaryShape("compare"),
    lower: ([a, b], _, p) => k.binary(p.op, a, b),
    jvp: () => null,
    vjp: () => [null, null],
  },
  where: {
    shape: (s) => sameShape("where", s),
    lower: ([c, a, b]) => k.where(c, a, b),
    jvp: ([c, a], [_, ta, tb]) =>
      ta || tb ? o.where(c, ta ?? o.zerosLike(a), tb ?? o.zerosLike(a)) : null,
    vjp: (ct, [c], _, __, needs) => {
      const z = o.zerosLike(ct);
      return [null, needs[1] ? o.where(c, ct, z) : null, needs[2] ? o.where(c, z, ct) : null];
    },
  },
  reshape: {
    shape: ([s], p) => {
      if (sizeOf(s) !== sizeOf(p.shape)) {
        throw new SgnError(`reshape: cannot reshape ${fmt(s)} to ${fmt(p.shape)}`);
      }
      return [...p.shape];
    },
    lower: ([x], _, p) => k.reshape(x, p.shape),
    jvp: (_, [t], p) => t && o.reshape(t, p.shape),
    vjp: (ct, [x]) => [o.reshape(ct, x.shape)],
  },
  transpose: {
    shape: ([s], p) => p.perm.map((i) => s[i]),
    lower: ([x], _, p) => k.permute(x, p.perm),
    jvp: (_, [t], p) => t && o.transpose(t, p.perm),
    vjp: (ct, _, p) => {
      const inv = new Array<number>(p.perm.length);
      p.perm.forEach((v, i) => (inv[v] = i));
      return [o.transpose(ct, inv)];
    },
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
    jvp: (_, [t], p) => t && o.broadcastTo(t, p.shape),
    vjp: (ct, [x]) => [unbroadcast(ct, x.shape)],
  },
  sum: {
    shape: ([s], p) => reducedShape(s, p.axes, p.keepdims),
    lower: ([x], _, p, out) => reduceTo("sum", x, p.axes, out),
    jvp: (_, [t], p) => t && o.sum(t, p.axes, p.keepdims),
    vjp: (
      ct,
      [x],
      p,
    ) => [o.broadcastTo(o.reshape(ct, reducedShape(x.shape, p.axes, true)), x.shape)],
  },
  max: {
    shape: ([s], p) => reducedShape(s, p.axes, p.keepdims),
    lower: ([x], _, p, out) => reduceTo("max", x, p.axes, out),
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
    shape: ([s], p) => reducedShape(s, [p.axis], false),
    lower: ([x], _, p) => k.reduce("argmax", x, [p.axis]),
    jvp: () => null,
    vjp: () => [null],
  },
  softmax: {
    shape: ([s]) => {
      if (s.length === 0) throw new SgnError("softmax: needs at least one axis");
      return [...s];
    },
    lower: ([x], [s], _, out) => softmaxRoutine(x, s, out, false),
    jvp: (_, [t], __, s) => t && o.mul(s, o.sub(t, o.sum(o.mul(s, t), -1, true))),
    vjp: (ct, _, __, s) => [o.mul(s, o.sub(ct, o.sum(o.mul(s, ct), -1, true)))],
  },
  logSoftmax: {
    shape: ([s]) => {
      if (s.length === 0) throw new SgnError("logSoftmax: needs at least one axis");
      return [...s];
    },
    lower: ([x], [s], _, out) => softmaxRoutine(x, s, out, true),
    jvp: (_, [t], __, out) => t && o.sub(t, o.sum(o.mul(o.exp(out), t), -1, true)),
    vjp: (ct, _, __, out) => [o.sub(ct, o.mul(o.exp(out), o.sum(ct, -1, true)))],
  },
  slice: {
    shape: (_, p) => [...p.sizes],
    lower: ([x], _, p) => k.slice(x, p.starts, p.sizes),
    jvp: (_, [t], p) => t && o.slice(t, p.starts, p.sizes),
    vjp: (ct, [x], p) => [
      o.pad(ct, p.starts, x.shape.map((d, i) => d - p.starts[i] - p.sizes[i])),
    ],
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
      const be = xs[0].backend;
      return k.routine("concat", xs, out, (bufs) => be.concat(bufs, outer, widths));
    },
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
      return matmulRoutine(a, b, spec, out);
    },
    jvp: ([a, b], [ta, tb], p) => addT(ta && o.matmul(ta, b, p), tb && o.matmul(a, tb, p)),
    vjp: (ct, [a, b], { transA, transB }, _, needs) => [
      needs[0]
        ? unbatch(
          transA
            ? o.matmul(b, ct, { transA: transB, transB: true })
            : o.matmul(ct, b, { transB: !transB }),
          a.rank,
        )
        : null,
      needs[1]
        ? unbatch(
          transB
            ? o.matmul(ct, a, { transA: true, transB: transA })
            : o.matmul(a, ct, { transA: !transA }),
          b.rank,
        )
        : null,
    ],
  },
  conv2d: {
    shape: ([x, w], p) => {
      const s = convSpec(x, w, p, "conv2d");
      return [s.n, s.f, ...conv2dOutSize(s)];
    },
    lower: ([x, w], [xs, ws], p, out) => {
      const spec = convSpec(xs, ws, p, "conv2d");
      return k.routine(
        "conv2d",
        [x, w],
        out,
        ([a, b], epi) => x.backend.conv2d(a, b, spec, epi),
        { fusable: true },
      );
    },
    jvp: ([x, w], [tx, tw], p) =>
      addT(tx && bind("conv2d", [tx, w], p), tw && bind("conv2d", [x, tw], p)),
    vjp: (ct, [x, w], p, _, needs) => [
      needs[0] ? cig(ct, w, { ...convOf(p), h: x.shape[2], w: x.shape[3] }) : null,
      needs[1] ? cwg(x, ct, { ...convOf(p), kh: w.shape[2], kw: w.shape[3] }) : null,
    ],
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
      return k.routine(
        "conv2dInputGrad",
        [dy, w],
        out,
        ([a, b]) => dy.backend.conv2dInputGrad(a, b, spec),
      );
    },
    jvp: ([dy, w], [tdy, tw], p) => addT(tdy && cig(tdy, w, p), tw && cig(dy, tw, p)),
    vjp: (ct, [dy, w], p, _, needs) => [
      needs[0] ? bind("conv2d", [ct, w], convOf(p)) : null,
      needs[1] ? cwg(ct, dy, { ...convOf(p), kh: w.shape[2], kw: w.shape[3] }) : null,
    ],
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
      return k.routine(
        "conv2dWeightGrad",
        [x, dy],
        out,
        ([a, b]) => x.backend.conv2dWeightGrad(a, b, spec),
      );
    },
    jvp: ([x, dy], [tx, tdy], p) => addT(tx && cwg(tx, dy, p), tdy && cwg(x, tdy, p)),
    vjp: (ct, [x, dy], p, _, needs) => [
      needs[0] ? cig(dy, ct, { ...convOf(p), h: x.shape[2], w: x.shape[3] }) : null,
      needs[1] ? bind("conv2d", [x, ct], convOf(p)) : null,
    ],
  },
  maxPool2d: {
    shape: ([x, v], p) => {
      const s = poolSpec(x, p, "maxPool2d");
      sameShape("maxPool2d", [x, v]);
      return [s.n, s.c, ...pool2dOutSize(s)];
    },
    lower: ([x, v], [xs], p, out) => {
      const spec = poolSpec(xs, p, "maxPool2d");
      return k.routine(
        "maxPool2d",
        v === x ? [x] : [x, v],
        out,
        ([a, b]) => x.backend.maxPool2d(a, spec, b),
      );
    },
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
      return k.routine(
        "maxPool2dBackward",
        [x, dy],
        out,
        ([a, b]) => x.backend.maxPool2dBackward(a, b, spec),
      );
    },
    jvp: ([x], [_, tdy], p) => tdy && bind("maxPool2dBackward", [x, tdy], poolOf(p)),
    vjp: (ct, [x], p, _, needs) => [null, needs[1] ? bind("maxPool2d", [x, ct], poolOf(p)) : null],
  },
};

registerRules(RULES, evaluate);
