/**
 * Property tests of the autodiff and the networks against computations that share no code with
 * them: a float64 reference of every network written here with explicit index arithmetic, the
 * explicit Jacobian of that reference built column by column from central differences, closed
 * forms of the losses' gradients and output Hessians, and reference derivative rules at tied and
 * non-smooth points.
 *
 * Why: hand-picked cases missed realistic one-line bugs (a tie broken the other way in one rule,
 * a Hessian product scaled wrongly, a layer's nonlinearity dropped). Generated networks (MLPs,
 * also with layer normalization and skips; conv nets with max and average pooling, global
 * average pooling, layer normalization and residual blocks in both parts; every activation; both
 * losses) and generated tie-heavy inputs (small integers) reach the corners, and fast-check
 * shrinks a failure to a small case.
 *
 * - Networks (float64, CPU oracle and native): outputs and loss equal the reference; J v, J^T u,
 *   the gradient, G v (one-shot, and a linearized G applied several times) equal the explicit
 *   finite-difference J and the closed-form H_L; H v equals central differences of the gradient;
 *   <u, J v> = <J^T u, v> to rounding. Points near a kink are rejected: the reference records
 *   every relu's sign and every pooling window's argmax, and a case is skipped when any
 *   finite-difference evaluation sees another pattern than the base point.
 * - Networks on WebGPU (float32): the same quantities against the float64 results, when no relu
 *   input or pooling window is within 1e-4 of a kink (float32 rounding could flip it).
 * - Ties (every backend): relu and step at 0, maximum with equal operands (also broadcast), max
 *   reductions and argmax with ties, max pooling (overlapping windows too) with ties, softmax with
 *   equal logits: J v and J^T u equal the documented rules computed here (first maximum for
 *   pooling and argmax, shared among ties for max, the first operand for maximum, 0 for relu at
 *   0), lie between the one-sided differences of the reference, and are transposes of each other.
 * - Programs: random compositions of the primitives (values reused, operands broadcast, then a
 *   reduction, softmax, transposed matmul, slice or concat) and convolutions of any kernel, stride
 *   and padding, against float64 references: J v, J^T u, and H v of <u, f> (which runs the
 *   derivative rules' own derivatives).
 * - A linearized conv net with tanh after the convolution frees every buffer once (it threw).
 */
import type { Backend } from "../kernel/backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { ggnLinearize, ggnvp, hvp, jvp, linearize, valueAndGrad } from "../autodiff/transforms.ts";
import type { OutputLoss } from "../autodiff/transforms.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import {
  type Activation,
  ACTIVATION_NAMES,
  convNet,
  type ConvNetSpec,
  type LayerSpec,
  mlp,
  type Network,
} from "../models/networks.ts";
import { fc, property } from "./property.ts";
import { cpu, native, Random, webgpu } from "./harness.ts";
import { erfQuadrature } from "./erf_reference.ts";

const nat = await native();
const gpu = await webgpu();
/** The float64 backends: the oracle and the native one. */
const F64: Backend[] = [cpu, ...(nat ? [nat] : [])];
/** Every backend, each in its widest type. */
const ALL: Backend[] = [...F64, ...(gpu ? [gpu] : [])];
const dtypeOf = (be: Backend) => (be.dtypes.includes("float64") ? "float64" : "float32");

// --- small helpers ------------------------------------------------------------------------------

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const absDot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] * b[i]);
  return s;
};
const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};
const flat = (xs: ArrayLike<number>[]) => xs.flatMap((x) => Array.from(x));

async function host(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}
async function hostAll(ts: Tensor[]): Promise<number[]> {
  return flat(await Promise.all(ts.map((t) => t.data())));
}

/**
 * |a_i - e_i| <= rtol |e_i| + atol max(max|e|, floor): the atol term is relative to the vector's
 * scale, so that a tiny entry of a large vector is held to the accuracy its computation can have
 * (`floor`: the scale of the inputs, for a vector that may be all zeros).
 */
function near(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
  what: string,
  floor = 0,
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  const scale = Math.max(maxAbs(expected), floor);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= rtol * Math.abs(expected[i]) + atol * scale + 1e-300)) {
      throw new Error(
        `${what}: element ${i} is ${actual[i]}, expected ${expected[i]} ` +
          `(rtol ${rtol}, atol ${atol} x ${scale})`,
      );
    }
  }
}

/** A matrix (rows of plain arrays) times a vector. */
const matVec = (m: number[][], v: ArrayLike<number>) => m.map((row) => dot(row, v));
/** The transpose of a matrix times a vector. */
function matTVec(m: number[][], u: ArrayLike<number>): number[] {
  const out = new Array(m[0]?.length ?? 0).fill(0);
  m.forEach((row, i) => row.forEach((v, j) => (out[j] += v * u[i])));
  return out;
}

// --- a float64 reference of the networks ----------------------------------------------------------

type Act = Activation;
/** The reference's layers: what the spec says, in order, with explicit sizes. */
type RefLayer =
  | { kind: "conv"; f: number; k: number; stride: number; pad: number }
  | { kind: "act"; act: Act }
  | { kind: "pool"; size: number; stride: number }
  | { kind: "avgpool"; size: number; stride: number }
  | { kind: "gap" }
  | { kind: "ln" }
  | { kind: "res"; layers: RefLayer[] }
  | { kind: "flatten" }
  | { kind: "fc"; out: number; act?: Act };

/** What a reference pass records: relu signs and window argmaxes, and how near a kink it is. */
interface Kinks {
  pattern: number[];
  margin: number;
}

const ACTS: Record<Act, (x: number) => number> = {
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  tanh: Math.tanh,
  relu: (x) => (x > 0 ? x : 0),
  softplus: (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))),
  gelu: (x) => (x * (1 + erfQuadrature(x / Math.SQRT2))) / 2,
};

/** The layer normalization's epsilon, as PyTorch's nn.LayerNorm. */
const LN_EPS = 1e-5;

/** The feature shape after a layer (RES blocks keep it). */
function refShapeAfter(l: RefLayer, s: number[]): number[] {
  const [c, h, w] = s;
  switch (l.kind) {
    case "conv":
      return [
        l.f,
        Math.floor((h + 2 * l.pad - l.k) / l.stride) + 1,
        Math.floor((w + 2 * l.pad - l.k) / l.stride) + 1,
      ];
    case "pool":
    case "avgpool":
      return [c, Math.floor((h - l.size) / l.stride) + 1, Math.floor((w - l.size) / l.stride) + 1];
    case "gap":
      return [c, 1, 1];
    case "flatten":
      return [prod(s)];
    case "fc":
      return [l.out];
    default:
      return s;
  }
}

/**
 * Parameter shapes of the reference, in the seed's order (weights, then bias, per layer; gain,
 * then bias, per layer normalization).
 */
function refParamShapes(layers: RefLayer[], inShape: number[]): number[][] {
  const shapes: number[][] = [];
  let s = [...inShape];
  for (const l of layers) {
    if (l.kind === "conv") shapes.push([l.f, s[0], l.k, l.k], [l.f]);
    else if (l.kind === "fc") shapes.push([prod(s), l.out], [l.out]);
    else if (l.kind === "ln") shapes.push([...s], [...s]);
    else if (l.kind === "res") shapes.push(...refParamShapes(l.layers, s));
    s = refShapeAfter(l, s);
  }
  return shapes;
}

/**
 * The network's outputs [n, classes] for inputs x [n, ...inShape], computed one scalar at a time
 * in float64 from the definitions (cross-correlation with zero padding, windows with the border
 * dropped, x W + b, normalization by the biased variance, x + f(x)), never from the library.
 */
function refForward(
  layers: RefLayer[],
  params: Float64Array[],
  x: Float64Array,
  n: number,
  inShape: number[],
  kinks?: Kinks,
): Float64Array {
  let pi = 0;
  const run = (group: RefLayer[], input: Float64Array, inS: number[]): Float64Array => {
    let s = [...inS];
    let a = input;
    let afterRelu = false;
    for (const l of group) {
      const [c, h, w] = s;
      const next = refShapeAfter(l, s);
      if (l.kind === "conv") {
        const [, ho, wo] = next;
        const wt = params[pi++];
        const b = params[pi++];
        const out = new Float64Array(n * l.f * ho * wo);
        for (let ni = 0; ni < n; ni++) {
          for (let f = 0; f < l.f; f++) {
            for (let oy = 0; oy < ho; oy++) {
              for (let ox = 0; ox < wo; ox++) {
                let acc = b[f];
                for (let ci = 0; ci < c; ci++) {
                  for (let ky = 0; ky < l.k; ky++) {
                    const iy = oy * l.stride + ky - l.pad;
                    if (iy < 0 || iy >= h) continue;
                    for (let kx = 0; kx < l.k; kx++) {
                      const ix = ox * l.stride + kx - l.pad;
                      if (ix < 0 || ix >= w) continue;
                      acc += a[((ni * c + ci) * h + iy) * w + ix] *
                        wt[((f * c + ci) * l.k + ky) * l.k + kx];
                    }
                  }
                }
                out[((ni * l.f + f) * ho + oy) * wo + ox] = acc;
              }
            }
          }
        }
        a = out;
        afterRelu = false;
      } else if (l.kind === "pool" || l.kind === "avgpool") {
        const [, ho, wo] = next;
        const out = new Float64Array(n * c * ho * wo);
        for (let plane = 0; plane < n * c; plane++) {
          for (let oy = 0; oy < ho; oy++) {
            for (let ox = 0; ox < wo; ox++) {
              let best = -Infinity;
              let second = -Infinity;
              let at = -1;
              let total = 0;
              for (let ky = 0; ky < l.size; ky++) {
                for (let kx = 0; kx < l.size; kx++) {
                  const v = a[(plane * h + oy * l.stride + ky) * w + ox * l.stride + kx];
                  total += v;
                  if (v > best) {
                    second = best;
                    best = v;
                    at = ky * l.size + kx;
                  } else if (v > second) second = v;
                }
              }
              out[(plane * ho + oy) * wo + ox] = l.kind === "pool" ? best : total / l.size ** 2;
              if (kinks && l.kind === "pool") {
                // A window of relu outputs whose maximum is 0 has a zero derivative whichever
                // element is chosen: no kink that matters.
                const flatZero = afterRelu && best === 0;
                kinks.pattern.push(flatZero ? -1 : at);
                if (!flatZero) kinks.margin = Math.min(kinks.margin, best - second);
              }
            }
          }
        }
        a = out;
        if (l.kind === "avgpool") afterRelu = false;
      } else if (l.kind === "gap") {
        const out = new Float64Array(n * c);
        for (let plane = 0; plane < n * c; plane++) {
          let total = 0;
          for (let i = 0; i < h * w; i++) total += a[plane * h * w + i];
          out[plane] = total / (h * w);
        }
        a = out;
        afterRelu = false;
      } else if (l.kind === "ln") {
        const g = params[pi++];
        const b = params[pi++];
        const m = prod(s);
        const out = new Float64Array(n * m);
        for (let ni = 0; ni < n; ni++) {
          const row = a.subarray(ni * m, (ni + 1) * m);
          const mean = row.reduce((p, v) => p + v, 0) / m;
          const variance = row.reduce((p, v) => p + (v - mean) ** 2, 0) / m;
          // float32 rounding of values this close to their mean is amplified by 1/sqrt(eps).
          if (kinks && m > 1) kinks.margin = Math.min(kinks.margin, variance);
          for (let i = 0; i < m; i++) {
            out[ni * m + i] = ((row[i] - mean) / Math.sqrt(variance + LN_EPS)) * g[i] + b[i];
          }
        }
        a = out;
        afterRelu = false;
      } else if (l.kind === "res") {
        const f = run(l.layers, a, s);
        a = a.map((v, i) => v + f[i]);
        afterRelu = false;
      } else if (l.kind === "act") {
        a = applyAct(a, l.act, kinks);
        afterRelu = l.act === "relu";
      } else if (l.kind === "fc") {
        const inF = prod(s);
        const wt = params[pi++];
        const b = params[pi++];
        const out = new Float64Array(n * l.out);
        for (let ni = 0; ni < n; ni++) {
          for (let j = 0; j < l.out; j++) {
            let acc = b[j];
            for (let i = 0; i < inF; i++) acc += a[ni * inF + i] * wt[i * l.out + j];
            out[ni * l.out + j] = acc;
          }
        }
        a = l.act ? applyAct(out, l.act, kinks) : out;
        afterRelu = l.act === "relu";
      }
      s = next;
    }
    return a;
  };
  return run(layers, x, inShape);
}

function applyAct(a: Float64Array, act: Act, kinks?: Kinks): Float64Array {
  if (kinks && act === "relu") {
    for (const v of a) {
      kinks.pattern.push(v > 0 ? 1 : 0);
      kinks.margin = Math.min(kinks.margin, Math.abs(v));
    }
  }
  return a.map(ACTS[act]);
}

/** The reference losses: value, gradient in z and the output Hessian, from their definitions. */
interface RefLoss {
  value(z: Float64Array): number;
  grad(z: Float64Array): number[];
  hessian(z: Float64Array): number[][];
}

function refSoftmaxCE(labels: number[], classes: number): RefLoss {
  const n = labels.length;
  const probs = (z: Float64Array, r: number) => {
    const row = Array.from(z.subarray(r * classes, (r + 1) * classes));
    const m = Math.max(...row);
    const e = row.map((t) => Math.exp(t - m));
    const sum = e.reduce((p, q) => p + q, 0);
    return { s: e.map((t) => t / sum), lse: m + Math.log(sum) };
  };
  return {
    value: (z) => labels.reduce((acc, y, r) => acc + probs(z, r).lse - z[r * classes + y], 0) / n,
    grad: (z) => labels.flatMap((y, r) => probs(z, r).s.map((p, i) => (p - (i === y ? 1 : 0)) / n)),
    hessian: (z) => {
      const size = n * classes;
      const hm = Array.from({ length: size }, () => new Array(size).fill(0));
      for (let r = 0; r < n; r++) {
        const { s } = probs(z, r);
        for (let i = 0; i < classes; i++) {
          for (let j = 0; j < classes; j++) {
            hm[r * classes + i][r * classes + j] = ((i === j ? s[i] : 0) - s[i] * s[j]) / n;
          }
        }
      }
      return hm;
    },
  };
}

function refSquaredError(targets: number[]): RefLoss {
  const size = targets.length;
  return {
    value: (z) => targets.reduce((acc, t, i) => acc + (z[i] - t) ** 2, 0) / size,
    grad: (z) => targets.map((t, i) => (2 * (z[i] - t)) / size),
    hessian: () =>
      Array.from({ length: size }, (_, i) => {
        const row = new Array(size).fill(0);
        row[i] = 2 / size;
        return row;
      }),
  };
}

// --- generated networks -------------------------------------------------------------------------

const actArb = fc.constantFrom<Act>(...ACTIVATION_NAMES);
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

/** A conv-layer group as the generator draws it; layers that do not fit are dropped later. */
const convLayerArb: fc.Arbitrary<LayerSpec> = fc.oneof(
  fc.record({
    type: fc.constant("CONV" as const),
    num_filters: fc.integer({ min: 1, max: 3 }),
    filter_size: fc.integer({ min: 1, max: 3 }),
    padding: opt(fc.integer({ min: 0, max: 1 })),
    stride: opt(fc.integer({ min: 1, max: 2 })),
  }, { requiredKeys: ["type", "num_filters", "filter_size"] }),
  fc.record({ type: fc.constant("ACT" as const), activation: actArb }),
  fc.record({
    type: fc.constant("POOL" as const),
    pool_size: opt(fc.integer({ min: 1, max: 3 })),
    stride: opt(fc.integer({ min: 1, max: 3 })),
  }, { requiredKeys: ["type"] }),
);

const fcLayerArb: fc.Arbitrary<LayerSpec> = fc.record({
  type: fc.constant("FC" as const),
  output_size: fc.integer({ min: 1, max: 4 }),
  activation: opt(actArb),
}, { requiredKeys: ["type", "output_size"] });

/** Layers keyed layer0, layer1, ... */
const groupOf = (layers: LayerSpec[]) =>
  Object.fromEntries(layers.map((l, i) => [`layer${i}`, l])) as Record<string, LayerSpec>;
const blockArb = (inner: fc.Arbitrary<LayerSpec>) =>
  fc.record({
    type: fc.constant("RES" as const),
    layers: fc.array(inner, { minLength: 1, maxLength: 3 }).map(groupOf),
  });
const lnArb = fc.constant({ type: "LN" as const });
const actLayerArb = fc.record({ type: fc.constant("ACT" as const), activation: actArb });

/**
 * The convolutional part with the layers beyond the seed's: average and global-average pooling,
 * layer normalization and residual blocks (of convolutions, nonlinearities and normalization;
 * a block's convolutions get its channels and the padding that keeps the map when built).
 */
const newConvLayerArb: fc.Arbitrary<LayerSpec> = fc.oneof(
  convLayerArb,
  fc.record({
    type: fc.constant("AVGPOOL" as const),
    pool_size: opt(fc.integer({ min: 1, max: 3 })),
    stride: opt(fc.integer({ min: 1, max: 3 })),
  }, { requiredKeys: ["type"] }),
  fc.constant({ type: "GAP" as const }),
  lnArb,
  blockArb(fc.oneof(
    fc.record({
      type: fc.constant("CONV" as const),
      num_filters: fc.constant(1),
      filter_size: fc.constantFrom(1, 3),
    }),
    actLayerArb,
    lnArb,
  )),
);

/** The dense part with normalization, nonlinearities and residual blocks (FC width set when built). */
const newFcLayerArb: fc.Arbitrary<LayerSpec> = fc.oneof(
  fcLayerArb,
  lnArb,
  actLayerArb,
  blockArb(fc.oneof(
    fc.record({
      type: fc.constant("FC" as const),
      output_size: fc.constant(1),
      activation: opt(actArb),
    }, {
      requiredKeys: ["type", "output_size"],
    }),
    actLayerArb,
    lnArb,
  )),
);

interface NetCase {
  net: {
    kind: "mlp";
    inputs: number;
    hidden: number[];
    act: Act;
    layerNorm?: boolean;
    residual?: boolean;
  } | {
    kind: "conv";
    input: [number, number, number];
    conv: LayerSpec[];
    fc: LayerSpec[];
  };
  classes: number;
  batch: number;
  loss: "sce" | "mse";
  seed: number;
}

const mlpArb = fc.record({
  kind: fc.constant("mlp" as const),
  inputs: fc.integer({ min: 1, max: 5 }),
  hidden: fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 3 }),
  act: actArb,
});

/** MLPs with layer normalization and skips (narrow widths, so that equal ones are common). */
const mlpOptionsArb = fc.record({
  kind: fc.constant("mlp" as const),
  inputs: fc.integer({ min: 2, max: 3 }),
  hidden: fc.array(fc.integer({ min: 2, max: 3 }), { minLength: 1, maxLength: 3 }),
  act: actArb,
  layerNorm: fc.boolean(),
  residual: fc.boolean(),
});

const convArb = fc.record({
  kind: fc.constant("conv" as const),
  input: fc.tuple(
    fc.integer({ min: 1, max: 2 }),
    fc.integer({ min: 3, max: 7 }),
    fc.integer({ min: 3, max: 7 }),
  ),
  conv: fc.array(convLayerArb, { minLength: 1, maxLength: 5 }),
  fc: fc.array(fcLayerArb, { maxLength: 2 }),
});

const newConvArb = fc.record({
  kind: fc.constant("conv" as const),
  input: fc.tuple(
    fc.integer({ min: 1, max: 2 }),
    fc.integer({ min: 3, max: 5 }),
    fc.integer({ min: 3, max: 5 }),
  ),
  conv: fc.array(newConvLayerArb, { minLength: 1, maxLength: 4 }),
  fc: fc.array(newFcLayerArb, { maxLength: 3 }),
});

/** The seed's Fashion/CIFAR style: conv, relu, pool, conv, relu, pool, FC relu, dense. */
const seedStyleArb = fc.record({
  kind: fc.constant("conv" as const),
  input: fc.tuple(
    fc.integer({ min: 1, max: 2 }),
    fc.integer({ min: 8, max: 10 }),
    fc.integer({ min: 8, max: 10 }),
  ),
  f1: fc.integer({ min: 1, max: 3 }),
  f2: fc.integer({ min: 1, max: 3 }),
  k: fc.integer({ min: 2, max: 3 }),
  act: actArb,
  hidden: fc.integer({ min: 1, max: 4 }),
}).map(({ input, f1, f2, k, act, hidden }) => ({
  kind: "conv" as const,
  input,
  conv: [
    { type: "CONV", num_filters: f1, filter_size: k },
    { type: "ACT", activation: act },
    { type: "POOL" },
    { type: "CONV", num_filters: f2, filter_size: 2 },
    { type: "ACT", activation: act },
    { type: "POOL", pool_size: 2, stride: 1 },
  ] as LayerSpec[],
  fc: [{ type: "FC", output_size: hidden, activation: act }] as LayerSpec[],
}));

function caseArb(net: fc.Arbitrary<NetCase["net"]>): fc.Arbitrary<NetCase> {
  return fc.record({
    net,
    classes: fc.integer({ min: 1, max: 4 }),
    batch: fc.integer({ min: 1, max: 3 }),
    loss: fc.constantFrom<"sce" | "mse">("sce", "mse"),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  });
}

/** A built case: the library's network, the reference's layers, data and parameters. */
interface Built {
  net: Network;
  layers: RefLayer[];
  inShape: number[];
  n: number;
  classes: number;
  x: Float64Array;
  params: Float64Array[];
  labels: number[];
  targets: number[];
  ref: RefLoss;
  loss: "sce" | "mse";
}

/**
 * The spec group of the generated layers that fit the feature `shape` (which it updates), and
 * the reference's reading of them (pushed onto `layers`). A residual block's CONV and FC layers
 * are given the block's channels or width (and the padding that keeps the map), so that blocks
 * always fit.
 */
function specGroup(
  list: LayerSpec[],
  shape: number[],
  layers: RefLayer[],
): Record<string, LayerSpec> {
  const out: LayerSpec[] = [];
  for (const l of list) {
    const [c, h, w] = shape;
    let ref: RefLayer;
    let spec = l;
    if (l.type === "CONV") {
      const pad = l.padding ?? 0;
      const stride = l.stride ?? 1;
      const ho = Math.floor((h + 2 * pad - l.filter_size) / stride) + 1;
      const wo = Math.floor((w + 2 * pad - l.filter_size) / stride) + 1;
      if (ho < 1 || wo < 1) continue;
      ref = { kind: "conv", f: l.num_filters, k: l.filter_size, stride, pad };
    } else if (l.type === "POOL" || l.type === "AVGPOOL") {
      const size = l.pool_size ?? 2;
      const stride = l.stride ?? size;
      if (Math.floor((h - size) / stride) < 0 || Math.floor((w - size) / stride) < 0) continue;
      ref = { kind: l.type === "POOL" ? "pool" : "avgpool", size, stride };
    } else if (l.type === "ACT") {
      ref = { kind: "act", act: l.activation };
    } else if (l.type === "GAP") {
      ref = { kind: "gap" };
    } else if (l.type === "LN") {
      ref = { kind: "ln" };
    } else if (l.type === "FC") {
      ref = { kind: "fc", out: l.output_size, act: l.activation };
    } else {
      // A RES block: its CONV and FC layers keep the shape.
      const inner = Object.values(l.layers).map((m): LayerSpec =>
        m.type === "CONV"
          ? {
            type: "CONV",
            num_filters: c,
            filter_size: m.filter_size,
            padding: (m.filter_size - 1) / 2,
          }
          : m.type === "FC"
          ? { ...m, output_size: c }
          : m
      );
      const refs: RefLayer[] = [];
      const layersSpec = specGroup(inner, [...shape], refs);
      spec = { type: "RES", layers: layersSpec };
      ref = { kind: "res", layers: refs };
    }
    shape.splice(0, shape.length, ...refShapeAfter(ref, shape));
    layers.push(ref);
    out.push(spec);
  }
  return groupOf(out);
}

/**
 * Builds the library's network from the generated spec (dropping layers that do not fit the
 * feature map, as a spec author would) and the reference's reading of the same spec. Values are
 * float32-representable so that WebGPU sees exactly the float64 case's inputs.
 */
function build(c: NetCase): Built {
  const rng = new Random(c.seed);
  const f32 = (lo: number, hi: number) => Math.fround(rng.range(lo, hi));
  const classes = c.classes;
  let net: Network;
  const layers: RefLayer[] = [];
  let inShape: number[];
  if (c.net.kind === "mlp") {
    const m = c.net;
    const sizes = [m.inputs, ...m.hidden];
    const skips = sizes.slice(1).map((h, i) => !!m.residual && sizes[i] === h);
    // residual: true needs a layer that can take it (mlp() says so otherwise).
    const residual = skips.some((s) => s);
    net = mlp({
      inputs: c.net.inputs,
      hidden: c.net.hidden,
      outputs: classes,
      activation: c.net.act,
      ...(c.net.layerNorm ? { layerNorm: true } : {}),
      ...(residual ? { residual } : {}),
    });
    inShape = [c.net.inputs];
    m.hidden.forEach((h, i) => {
      const block: RefLayer[] = m.layerNorm
        ? [{ kind: "fc", out: h }, { kind: "ln" }, { kind: "act", act: m.act }]
        : [{ kind: "fc", out: h, act: m.act }];
      layers.push(...(skips[i] ? [{ kind: "res" as const, layers: block }] : block));
    });
  } else {
    inShape = [...c.net.input];
    const shape = [...inShape];
    let conv = specGroup(c.net.conv, shape, layers);
    if (Object.keys(conv).length === 0) {
      conv = { layer0: { type: "ACT", activation: "tanh" } };
      layers.push({ kind: "act", act: "tanh" });
    }
    layers.push({ kind: "flatten" });
    const mlpLayers = specGroup(c.net.fc, [prod(shape)], layers);
    const spec: ConvNetSpec = { conv_layers: conv, mlp_layers: mlpLayers };
    net = convNet(spec, inShape, classes);
  }
  layers.push({ kind: "fc", out: classes });
  const shapes = refParamShapes(layers, inShape);
  const libShapes = net.paramShapes.map((s) => [...s]);
  if (JSON.stringify(shapes) !== JSON.stringify(libShapes)) {
    throw new Error(
      `parameter shapes ${JSON.stringify(libShapes)}, expected ${JSON.stringify(shapes)}`,
    );
  }
  // Weights scaled by 1/sqrt(fan-in) keep every layer's pre-activations of order 1.
  const params = shapes.map((s) => {
    const fanIn = s.length === 4 ? s[1] * s[2] * s[3] : s.length === 2 ? s[0] : 1;
    const b = 1.5 / Math.sqrt(fanIn);
    return Float64Array.from({ length: prod(s) }, () => f32(-b, b));
  });
  const n = c.batch;
  const x = Float64Array.from({ length: n * prod(inShape) }, () => f32(-1, 1));
  const labels = Array.from({ length: n }, () => rng.int(classes));
  const targets = Array.from({ length: n * classes }, () => f32(-1, 1));
  const ref = c.loss === "sce" ? refSoftmaxCE(labels, classes) : refSquaredError(targets);
  return { net, layers, inShape, n, classes, x, params, labels, targets, ref, loss: c.loss };
}

/** The library's view of a built case on one backend. */
function onBackend(b: Built, be: Backend) {
  const dtype = dtypeOf(be);
  const t = (data: ArrayLike<number>, shape: number[]) =>
    tensor(Float64Array.from(data), shape, { backend: be, dtype });
  const x = t(b.x, [b.n, ...b.inShape]);
  const params = b.params.map((p, i) => t(p, [...b.net.paramShapes[i]]));
  const loss: OutputLoss = b.loss === "sce"
    ? softmaxCrossEntropy(oneHot(b.labels, b.classes, { backend: be, dtype }))
    : meanSquaredError(t(b.targets, [b.n, b.classes]));
  const model = (...p: Tensor[]) => b.net.forward(p, x);
  const objective = (...p: Tensor[]) => loss.value(model(...p));
  const split = (v: ArrayLike<number>) => {
    let at = 0;
    return params.map((p) => {
      const part = Array.from(v).slice(at, at + p.size);
      at += p.size;
      return t(part, [...p.shape]);
    });
  };
  return { t, x, params, loss, model, objective, split };
}

/** The reference outputs at parameters shifted by h along direction d (flat). */
function refAt(b: Built, d: ArrayLike<number> | null, h: number, kinks?: Kinks): Float64Array {
  let at = 0;
  const ps = b.params.map((p) => {
    const q = Float64Array.from(p);
    if (d) { for (let i = 0; i < q.length; i++) q[i] += h * d[at + i]; }
    at += p.length;
    return q;
  });
  return refForward(b.layers, ps, b.x, b.n, b.inShape, kinks);
}

/** The kink pattern of the reference at a point, as a string to compare. */
function patternAt(b: Built, d: ArrayLike<number> | null, h: number): string {
  const k: Kinks = { pattern: [], margin: Infinity };
  refAt(b, d, h, k);
  return k.pattern.join(",");
}

const FD_H = 1e-5;

/**
 * The explicit Jacobian of the reference outputs in the parameters, column by column from
 * central differences; null when some column's differences cross a kink (another relu sign or
 * window argmax than at the base point).
 */
function explicitJacobian(b: Built, base: string): number[][] | null {
  const total = b.params.reduce((s, p) => s + p.length, 0);
  const outs = b.n * b.classes;
  const J = Array.from({ length: outs }, () => new Array(total).fill(0));
  const e = new Float64Array(total);
  for (let j = 0; j < total; j++) {
    e[j] = 1;
    const kp: Kinks = { pattern: [], margin: Infinity };
    const km: Kinks = { pattern: [], margin: Infinity };
    const zp = refAt(b, e, FD_H, kp);
    const zm = refAt(b, e, -FD_H, km);
    e[j] = 0;
    if (kp.pattern.join(",") !== base || km.pattern.join(",") !== base) return null;
    for (let i = 0; i < outs; i++) J[i][j] = (zp[i] - zm[i]) / (2 * FD_H);
  }
  return J;
}

/** A random direction of the parameter space (float32 values, reproducible from the case). */
const direction = (rng: Random, size: number) =>
  Array.from({ length: size }, () => Math.fround(rng.range(-1, 1)));

/** The derivatives the library computes for a case on one backend, as host arrays. */
async function libraryDerivatives(b: Built, be: Backend, vs: number[][], u: number[]) {
  const L = onBackend(b, be);
  const [vT, vT2] = [L.split(vs[0]), L.split(vs[1])];
  const z = await host(L.model(...L.params));
  const [value, grads] = valueAndGrad(L.objective)(...L.params);
  const [, [jvT]] = jvp(L.model, L.params, vT);
  const lin = linearize(L.model, L.params);
  const jtu = lin.vjp(L.t(u, [b.n, b.classes]));
  const linJv = lin.jvp(...vT)[0];
  const G = ggnLinearize(L.model, L.loss, L.params);
  const gv1 = await hostAll(G.apply(...vT));
  const gv2 = await hostAll(G.apply(...vT2));
  const gv1again = await hostAll(G.apply(...vT));
  const gJv = await host(G.jvp(...vT2));
  const gJtu = await hostAll(G.vjp(L.t(u, [b.n, b.classes])));
  G.dispose();
  const once = await hostAll(ggnvp(L.model, L.loss, L.params, vT2));
  const hv = await hostAll(hvp(L.objective, L.params, vT));
  const res = {
    z,
    value: (await host(value))[0],
    grad: await hostAll(grads),
    jv: await host(jvT),
    linJv: await host(linJv),
    jtu: await hostAll(jtu),
    gv1,
    gv2,
    gv1again,
    gJv,
    gJtu,
    once,
    hv,
  };
  lin.dispose();
  return res;
}

/** Every check of one network case on the float64 backends; false when it sits on a kink. */
async function checkNetworkFloat64(c: NetCase): Promise<boolean> {
  const b = build(c);
  const base: Kinks = { pattern: [], margin: Infinity };
  const z0 = refAt(b, null, 0, base);
  const baseP = base.pattern.join(",");
  const J = explicitJacobian(b, baseP);
  if (!J) return false;
  const rng = new Random(c.seed ^ 0x5bd1e995);
  const total = J[0].length;
  const vs = [direction(rng, total), direction(rng, total)];
  const u = direction(rng, b.n * b.classes);
  // H v by central differences of the gradient needs the same kink pattern at x +- eps v.
  const EPS = 1e-5;
  if (patternAt(b, vs[0], EPS) !== baseP || patternAt(b, vs[0], -EPS) !== baseP) return false;
  const HL = b.ref.hessian(z0);
  const ggn = (v: number[]) => matTVec(J, matVec(HL, matVec(J, v)));
  const want = {
    jv: matVec(J, vs[0]),
    jv2: matVec(J, vs[1]),
    jtu: matTVec(J, u),
    grad: matTVec(J, b.ref.grad(z0)),
    gv1: ggn(vs[0]),
    gv2: ggn(vs[1]),
  };
  for (const be of F64) {
    const tag = `${be.name}, ${b.net.name}, ${c.loss}`;
    const got = await libraryDerivatives(b, be, vs, u);
    // The forward pass and the loss against the reference: rounding only.
    near(got.z, z0, 1e-12, 1e-12, `${tag}: outputs`);
    // The loss can be tiny after cancellation (squared error near a fit): absolute 1e-12, the
    // rounding of order-1 outputs.
    near([got.value], [b.ref.value(z0)], 1e-10, 1e-12, `${tag}: loss value`, 1);
    // Finite differences of the reference: truncation h^2 and rounding eps / h, both ~1e-10 of
    // the outputs' size, so a vector that is nearly zero is held to 1e-10 absolute (floor 1e-3).
    const [R, A] = [1e-6, 1e-7];
    near(got.jv, want.jv, R, A, `${tag}: J v`, 1e-3);
    near(got.linJv, want.jv, R, A, `${tag}: linearized J v`, 1e-3);
    near(got.gJv, want.jv2, R, A, `${tag}: GGN operator's J v`, 1e-3);
    near(got.jtu, want.jtu, R, A, `${tag}: J^T u`, 1e-3);
    near(got.gJtu, want.jtu, R, A, `${tag}: GGN operator's J^T u`, 1e-3);
    near(got.grad, want.grad, R, A, `${tag}: gradient`, 1e-3);
    near(got.gv1, want.gv1, R, A, `${tag}: G v`, 1e-3);
    near(got.gv2, want.gv2, R, A, `${tag}: G v (second vector)`, 1e-3);
    near(got.gv1again, want.gv1, R, A, `${tag}: G v (again)`, 1e-3);
    near(got.once, want.gv2, R, A, `${tag}: ggnvp`, 1e-3);
    // The adjoint identity of the library's own products holds to rounding.
    const lhs = dot(u, got.jv);
    const rhs = dot(got.jtu, vs[0]);
    const scale = absDot(u, got.jv) + absDot(got.jtu, vs[0]);
    // Where J is nearly zero, the products are rounding noise of order-1 terms: |u|_1 max|v|.
    const noise = 1e-12 * (absDot(u, u.map(() => 1)) * maxAbs(vs[0]));
    if (!(Math.abs(lhs - rhs) <= 1e-12 * scale + noise)) {
      throw new Error(`${tag}: <u, J v> = ${lhs} but <J^T u, v> = ${rhs}`);
    }
    // H v against central differences of the gradient along v.
    const L = onBackend(b, be);
    const g = async (s: number) => {
      const shifted = L.split(vs[0]).map((d, i) => o.add(L.params[i], o.mul(d, s)));
      return await hostAll(valueAndGrad(L.objective)(...shifted)[1]);
    };
    const [gp, gm] = [await g(EPS), await g(-EPS)];
    near(got.hv, gp.map((p, i) => (p - gm[i]) / (2 * EPS)), 1e-5, 1e-6, `${tag}: H v`, 1e-3);
  }
  return true;
}

const NETWORK = "networks: outputs, J v, J^T u, gradient, G v and H v against a float64 reference";
property(
  `${NETWORK} (MLPs, cpu and native)`,
  caseArb(mlpArb),
  40,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);
property(
  `${NETWORK} (conv nets with pooling, cpu and native)`,
  caseArb(convArb),
  40,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);
property(
  `${NETWORK} (seed-style conv nets: conv, pool, conv, pool, dense, cpu and native)`,
  caseArb(seedStyleArb),
  12,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);

property(
  `${NETWORK} (MLPs with layer normalization and skips, cpu and native)`,
  caseArb(mlpOptionsArb),
  20,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);
property(
  `${NETWORK} (conv nets with average pooling, layer normalization, residual blocks, cpu and native)`,
  caseArb(newConvArb),
  30,
  async (c) => {
    fc.pre(await checkNetworkFloat64(c));
  },
);

property(
  "networks on WebGPU (float32): outputs and every derivative against the float64 oracle's",
  caseArb(fc.oneof(mlpArb, convArb, seedStyleArb, mlpOptionsArb, newConvArb)),
  24,
  async (c) => {
    const b = build(c);
    const base: Kinks = { pattern: [], margin: Infinity };
    refAt(b, null, 0, base);
    // float32 rounding moves a pre-activation (order 1, sums of tens of terms) by ~1e-6: a kink
    // closer than 1e-4 could flip, so those cases are left to the float64 properties.
    fc.pre(base.margin > 1e-4);
    const rng = new Random(c.seed ^ 0x5bd1e995);
    const total = b.params.reduce((s, p) => s + p.length, 0);
    const vs = [direction(rng, total), direction(rng, total)];
    const u = direction(rng, b.n * b.classes);
    // The oracle's float64 results are checked against the reference by the properties above.
    const want = await libraryDerivatives(b, cpu, vs, u);
    const got = await libraryDerivatives(b, gpu!, vs, u);
    const tag = `webgpu, ${b.net.name}, ${c.loss}`;
    // Sums of at most a few hundred float32 products of order-1 terms, through a few layers:
    // errors of ~1e-5 of the vector's scale; 1e-3 leaves room and still catches a wrong rule,
    // which moves entries by their own size. A vector nearly zero by cancellation is held to
    // 1e-6 absolute (floor 1e-2), float32 rounding of order-1 terms.
    const [R, A] = [1e-3, 1e-4];
    for (const key of Object.keys(want) as (keyof typeof want)[]) {
      const w = want[key];
      const g = got[key];
      near(
        typeof g === "number" ? [g] : g,
        typeof w === "number" ? [w] : w,
        R,
        A,
        `${tag}: ${key}`,
        1e-2,
      );
    }
  },
  { ignore: !gpu },
);

// A consumer fused into a convolution (tanh of conv) was unfused by its own operands' realization
// while it ran, and its recipe's references were then dropped twice: disposing a linearization
// of a conv net with tanh or sigmoid after J^T (J v) threw "an array was released twice".
Deno.test("linearize: conv then tanh, J^T (J v) read, then disposed: every buffer freed once", async () => {
  for (const be of ALL) {
    const dtype = dtypeOf(be);
    const t = (d: number[], s: number[]) => tensor(Float64Array.from(d), s, { backend: be, dtype });
    const x = t(Array.from({ length: 16 }, (_, i) => Math.sin(i)), [1, 1, 4, 4]);
    const w = t([0.1, 0.2, 0.3, 0.4], [4, 1]);
    const v = t([1, 0, 0, 0], [4, 1]);
    // The first round warms caches that live on (scalar constants); the second must leave none.
    for (const round of [0, 1]) {
      const start = be.liveBuffers();
      const lin = linearize(
        (w) => o.reshape(o.tanh(o.conv2d(x, o.reshape(w, [1, 1, 2, 2]))), [1, 9]),
        [w],
      );
      const [jv] = lin.jvp(v);
      const [g] = lin.vjp(jv);
      const values = await g.data();
      if (!values.every(Number.isFinite)) throw new Error(`${be.name}: J^T J v is ${values}`);
      jv.dispose();
      g.dispose();
      lin.dispose();
      lin.outputs[0].dispose();
      if (round === 1 && be.liveBuffers() !== start) {
        throw new Error(`${be.name}: ${be.liveBuffers() - start} buffers left behind`);
      }
    }
  }
});

// --- ties and kinks -------------------------------------------------------------------------------

/**
 * An op at tied or non-smooth points with its reference: forward values, the documented
 * derivative rule as J v and J^T u, written with explicit index arithmetic.
 */
interface TieCase {
  name: string;
  shapes: number[][];
  f: (...xs: Tensor[]) => Tensor;
  forward: (xs: number[][]) => number[];
  jv: (xs: number[][], vs: number[][]) => number[];
  jtu: (xs: number[][], u: number[]) => number[][];
  /** Smooth at every point (softmax): central differences must match J v. */
  smooth?: boolean;
  /** The rule takes one of the one-sided derivatives (relu, maximum), not just a value between. */
  oneSided?: boolean;
  /** Not differentiable at all (argmax): zero derivatives, the forward value is what counts. */
  constant?: boolean;
  xs: number[][];
  vs: number[][];
  u: number[];
}

/** Row-major strides of a shape. */
const stridesOf = (s: readonly number[]) => s.map((_, i) => prod(s.slice(i + 1)));
/** The multi-index of flat index i in shape s. */
const unravel = (i: number, s: readonly number[]) =>
  s.map((d, k) => Math.floor(i / stridesOf(s)[k]) % d);

const small = (n: number, lo: number, hi: number) =>
  fc.array(fc.integer({ min: lo, max: hi }), { minLength: n, maxLength: n });

/** Inputs from {-2..2} (ties everywhere), tangents and cotangents from {-3..3}. */
function withData<T extends { shapes: number[][]; outSize: number }>(
  spec: fc.Arbitrary<T>,
): fc.Arbitrary<T & { xs: number[][]; vs: number[][]; u: number[] }> {
  return spec.chain((s) =>
    fc.record({
      xs: fc.tuple(...s.shapes.map((sh) => small(prod(sh), -2, 2))),
      vs: fc.tuple(...s.shapes.map((sh) => small(prod(sh), -3, 3))),
      u: small(s.outSize, -3, 3),
    }).map((d) => ({ ...s, ...d }))
  );
}

const dims = (maxRank: number, maxDim: number) =>
  fc.array(fc.integer({ min: 1, max: maxDim }), { minLength: 1, maxLength: maxRank });

const reluCase = withData(
  fc.record({ shape: dims(2, 5), which: fc.constantFrom("relu", "step") }).map((s) => ({
    ...s,
    shapes: [s.shape],
    outSize: prod(s.shape),
  })),
).map((s): TieCase => {
  const relu = s.which === "relu";
  return {
    name: s.which,
    ...s,
    f: relu ? o.relu : o.step,
    forward: ([x]) => x.map((t) => (relu ? Math.max(t, 0) : t > 0 ? 1 : 0)),
    // The documented rule: relu'(0) = 0; step has derivative 0 everywhere.
    jv: ([x], [v]) => x.map((t, i) => (relu && t > 0 ? v[i] : 0)),
    jtu: ([x], u) => [x.map((t, i) => (relu && t > 0 ? u[i] : 0))],
    oneSided: true,
  };
});

const maximumCase = withData(
  fc.record({
    rows: fc.integer({ min: 1, max: 3 }),
    cols: fc.integer({ min: 1, max: 4 }),
    bShape: fc.constantFrom("same", "row", "vector"),
  }).map((s) => {
    const b = s.bShape === "same" ? [s.rows, s.cols] : s.bShape === "row" ? [1, s.cols] : [s.cols];
    return { ...s, shapes: [[s.rows, s.cols], b], outSize: s.rows * s.cols };
  }),
).map((s): TieCase => {
  const bAt = (i: number) => (s.shapes[1].length === 2 && s.shapes[1][0] > 1 ? i : i % s.cols);
  return {
    name: `maximum [${s.shapes[0]}] with [${s.shapes[1]}]`,
    ...s,
    f: (a, b) => o.maximum(a, b),
    forward: ([a, b]) => a.map((t, i) => Math.max(t, b[bAt(i)])),
    // Ties go to the first operand (a >= b).
    jv: ([a, b], [va, vb]) => a.map((t, i) => (t >= b[bAt(i)] ? va[i] : vb[bAt(i)])),
    jtu: ([a, b], u) => {
      const gb = new Array(b.length).fill(0);
      a.forEach((t, i) => {
        if (!(t >= b[bAt(i)])) gb[bAt(i)] += u[i];
      });
      return [a.map((t, i) => (t >= b[bAt(i)] ? u[i] : 0)), gb];
    },
    oneSided: true,
  };
});

/** Max over `axes` shares the derivative equally among the tied maxima (documented in ops.ts). */
const maxCase = withData(
  dims(3, 4).chain((shape) =>
    fc.record({
      shape: fc.constant(shape),
      axes: fc.subarray(shape.map((_, i) => i), { minLength: 1 }),
      keepdims: fc.boolean(),
    })
  ).map((s) => ({
    ...s,
    shapes: [s.shape],
    outSize: prod(s.shape.filter((_, i) => !s.axes.includes(i))),
  })),
).map((s): TieCase => {
  const outShape = s.shape.map((d, i) => (s.axes.includes(i) ? 1 : d));
  const outIndex = (i: number) => {
    const idx = unravel(i, s.shape).map((v, k) => (s.axes.includes(k) ? 0 : v));
    return dot(idx, stridesOf(outShape));
  };
  const groups = (x: number[]) => {
    const best = new Array(prod(outShape)).fill(-Infinity);
    x.forEach((t, i) => (best[outIndex(i)] = Math.max(best[outIndex(i)], t)));
    const count = new Array(best.length).fill(0);
    x.forEach((t, i) => t === best[outIndex(i)] && count[outIndex(i)]++);
    return { best, count };
  };
  return {
    name: `max over [${s.axes}] of [${s.shape}]${s.keepdims ? " keepdims" : ""}`,
    ...s,
    f: (x) => o.max(x, s.axes, s.keepdims),
    forward: ([x]) => groups(x).best,
    jv: ([x], [v]) => {
      const { best, count } = groups(x);
      const out = new Array(best.length).fill(0);
      x.forEach((t, i) => {
        if (t === best[outIndex(i)]) out[outIndex(i)] += v[i] / count[outIndex(i)];
      });
      return out;
    },
    jtu: ([x], u) => {
      const { best, count } = groups(x);
      return [x.map((t, i) => (t === best[outIndex(i)] ? u[outIndex(i)] / count[outIndex(i)] : 0))];
    },
  };
});

/** argmax: the index of the first maximum; no derivative. */
const argmaxCase = withData(
  fc.record({
    rows: fc.integer({ min: 1, max: 3 }),
    cols: fc.integer({ min: 1, max: 5 }),
    axis: fc.constantFrom(0, 1),
  })
    .map((s) => ({ ...s, shapes: [[s.rows, s.cols]], outSize: s.axis === 0 ? s.cols : s.rows })),
).map((s): TieCase => ({
  name: `argmax axis ${s.axis} of [${s.rows}, ${s.cols}]`,
  ...s,
  // Added to a smooth function of x so that the output has a tangent at all.
  f: (x) => o.add(o.argmax(x, s.axis), o.sum(o.mul(x, 0), s.axis)),
  forward: ([x]) => {
    const [n, m] = s.axis === 0 ? [s.cols, s.rows] : [s.rows, s.cols];
    const at = (j: number, k: number) => (s.axis === 0 ? x[k * s.cols + j] : x[j * s.cols + k]);
    return Array.from({ length: n }, (_, j) => {
      let best = 0;
      for (let k = 1; k < m; k++) if (at(j, k) > at(j, best)) best = k;
      return best;
    });
  },
  jv: () => new Array(s.outSize).fill(0),
  jtu: ([x]) => [x.map(() => 0)],
  constant: true,
}));

/** Max pooling: the derivative goes to the first maximum of each window (row-major). */
const poolCase = withData(
  fc.record({
    n: fc.integer({ min: 1, max: 2 }),
    c: fc.integer({ min: 1, max: 2 }),
    h: fc.integer({ min: 1, max: 5 }),
    w: fc.integer({ min: 1, max: 5 }),
    kh: fc.integer({ min: 1, max: 3 }),
    kw: fc.integer({ min: 1, max: 3 }),
    sh: fc.integer({ min: 1, max: 3 }),
    sw: fc.integer({ min: 1, max: 3 }),
  }).filter((s) => s.kh <= s.h && s.kw <= s.w).map((s) => {
    const ho = Math.floor((s.h - s.kh) / s.sh) + 1;
    const wo = Math.floor((s.w - s.kw) / s.sw) + 1;
    return { ...s, ho, wo, shapes: [[s.n, s.c, s.h, s.w]], outSize: s.n * s.c * ho * wo };
  }),
).map((s): TieCase => {
  const argmaxes = (x: number[]) => {
    const out: number[] = [];
    for (let p = 0; p < s.n * s.c; p++) {
      for (let oy = 0; oy < s.ho; oy++) {
        for (let ox = 0; ox < s.wo; ox++) {
          let best = -1;
          for (let ky = 0; ky < s.kh; ky++) {
            for (let kx = 0; kx < s.kw; kx++) {
              const i = (p * s.h + oy * s.sh + ky) * s.w + ox * s.sw + kx;
              if (best < 0 || x[i] > x[best]) best = i;
            }
          }
          out.push(best);
        }
      }
    }
    return out;
  };
  return {
    name: `maxPool2d ${s.kh}x${s.kw} stride ${s.sh}x${s.sw} of [${s.shapes[0]}]`,
    ...s,
    f: (x) => o.maxPool2d(x, [s.kh, s.kw], [s.sh, s.sw]),
    forward: ([x]) => argmaxes(x).map((i) => x[i]),
    jv: ([x], [v]) => argmaxes(x).map((i) => v[i]),
    jtu: ([x], u) => {
      const g = new Array(x.length).fill(0);
      argmaxes(x).forEach((i, k) => (g[i] += u[k]));
      return [g];
    },
  };
});

/** softmax and log-softmax of rows with equal logits: smooth, J = diag(s) - s s^T per row. */
const softmaxCase = withData(
  fc.record({
    rows: fc.integer({ min: 1, max: 3 }),
    cols: fc.integer({ min: 1, max: 4 }),
    log: fc.boolean(),
  })
    .map((s) => ({ ...s, shapes: [[s.rows, s.cols]], outSize: s.rows * s.cols })),
).map((s): TieCase => {
  const probs = (x: number[]) =>
    Array.from({ length: s.rows }, (_, r) => {
      const row = x.slice(r * s.cols, (r + 1) * s.cols);
      const e = row.map((t) => Math.exp(t));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((t) => t / z);
    }).flat();
  const rowDot = (p: number[], v: number[], r: number) =>
    dot(p.slice(r * s.cols, (r + 1) * s.cols), v.slice(r * s.cols, (r + 1) * s.cols));
  const rowSum = (v: number[], r: number) =>
    v.slice(r * s.cols, (r + 1) * s.cols).reduce((a, b) => a + b, 0);
  const row = (i: number) => Math.floor(i / s.cols);
  return {
    name: `${s.log ? "logSoftmax" : "softmax"} of [${s.rows}, ${s.cols}]`,
    ...s,
    f: s.log ? o.logSoftmax : o.softmax,
    forward: ([x]) => (s.log ? probs(x).map(Math.log) : probs(x)),
    jv: ([x], [v]) => {
      const p = probs(x);
      return s.log
        ? v.map((t, i) => t - rowDot(p, v, row(i)))
        : p.map((pi, i) => pi * (v[i] - rowDot(p, v, row(i))));
    },
    jtu: ([x], u) => {
      const p = probs(x);
      return [
        s.log
          ? u.map((t, i) => t - p[i] * rowSum(u, row(i)))
          : p.map((pi, i) => pi * (u[i] - rowDot(p, u, row(i)))),
      ];
    },
    smooth: true,
  };
});

/**
 * One tie case on every backend: the forward value, J v and J^T u equal the reference rule (so
 * every backend gives the same subgradient), <u, J v> = <J^T u, v>, and J v agrees with the
 * one-sided differences of the reference function: between them, or equal to one of them where
 * the rule says so, or equal to the central difference where the function is smooth.
 */
async function checkTie(c: TieCase): Promise<void> {
  const h = c.smooth ? 1e-6 : 1e-3;
  const shifted = (s: number) => c.forward(c.xs.map((x, k) => x.map((t, i) => t + s * c.vs[k][i])));
  const f0 = c.forward(c.xs);
  const [fp, fm] = [shifted(h), shifted(-h)];
  const want = c.jv(c.xs, c.vs);
  if (!c.constant) {
    want.forEach((j, i) => {
      const [dp, dm] = [(fp[i] - f0[i]) / h, (f0[i] - fm[i]) / h];
      const ok = c.smooth
        ? Math.abs(j - (fp[i] - fm[i]) / (2 * h)) <= 1e-7
        : c.oneSided
        ? Math.abs(j - dp) <= 1e-9 || Math.abs(j - dm) <= 1e-9
        : j >= Math.min(dp, dm) - 1e-9 && j <= Math.max(dp, dm) + 1e-9;
      if (!ok) {
        throw new Error(
          `${c.name}: the reference rule's J v[${i}] = ${j} but one-sided ${dp}, ${dm}`,
        );
      }
    });
  }
  const wantT = c.jtu(c.xs, c.u);
  for (const be of ALL) {
    const dtype = dtypeOf(be);
    // Integers are exact in float32; only softmax's exp and the shared maxima's 1/count round.
    const tol = dtype === "float64" ? 1e-12 : 1e-6;
    const t = (d: number[], s: number[]) => tensor(Float64Array.from(d), s, { backend: be, dtype });
    const xs = c.xs.map((x, k) => t(x, c.shapes[k]));
    const vs = c.vs.map((v, k) => t(v, c.shapes[k]));
    const tag = `${be.name}: ${c.name}, x ${JSON.stringify(c.xs)}, v ${JSON.stringify(c.vs)}`;
    const [[y], [jv]] = jvp(c.f, xs, vs);
    near(await host(y), f0, tol, tol, `${tag}: forward`, 1);
    near(await host(jv), want, tol, tol, `${tag}: J v`, 1);
    const lin = linearize(c.f, xs);
    const cts = lin.vjp(t(c.u, [...lin.outputs[0].shape]));
    const got = await Promise.all(cts.map(host));
    got.forEach((g, k) => near(g, wantT[k], tol, tol, `${tag}: J^T u (operand ${k})`, 1));
    const [linJv] = lin.jvp(...vs);
    const ljv = await host(linJv);
    near(ljv, want, tol, tol, `${tag}: linearized J v`, 1);
    const lhs = dot(c.u, ljv);
    const rhs = got.reduce((acc, g, k) => acc + dot(g, c.vs[k]), 0);
    const scale = absDot(c.u, ljv) + got.reduce((acc, g, k) => acc + absDot(g, c.vs[k]), 0);
    if (!(Math.abs(lhs - rhs) <= tol * (scale + 1))) {
      throw new Error(`${tag}: <u, J v> = ${lhs} but <J^T u, v> = ${rhs}`);
    }
    lin.dispose();
  }
}

const TIES = "ties: J v and J^T u at tied points equal the documented rule on every backend";
property(`${TIES} (relu and step at 0)`, reluCase, 20, checkTie);
property(`${TIES} (maximum with equal operands, broadcast)`, maximumCase, 20, checkTie);
property(`${TIES} (max reductions shared among tied maxima)`, maxCase, 20, checkTie);
property(`${TIES} (argmax picks the first maximum)`, argmaxCase, 15, checkTie);
property(
  `${TIES} (max pooling routes to the first maximum, overlapping windows)`,
  poolCase,
  25,
  checkTie,
);
property(`${TIES} (softmax and log-softmax with equal logits)`, softmaxCase, 15, checkTie);

// --- generated programs of primitives ---------------------------------------------------------------

/**
 * A dense 2-D value of the reference evaluator; `rs`/`cs` are its strides, 0 on a broadcast axis
 * (so one operand can stand for a [1, c], [c] or [r, 1] tensor read as [r, c]).
 */
interface Mat {
  r: number;
  c: number;
  d: number[];
  rs: number;
  cs: number;
}
const mat = (r: number, c: number, d: number[]): Mat => ({ r, c, d, rs: c, cs: 1 });
const at = (m: Mat, i: number, j: number) => m.d[i * m.rs + j * m.cs];
const mapMat = (r: number, c: number, f: (i: number, j: number) => number): Mat =>
  mat(r, c, Array.from({ length: r * c }, (_, k) => f(Math.floor(k / c), k % c)));

const UNARY = ["neg", "exp", "log1p2", "sqrt1p2", "recip1p2", "sigmoid", "tanh", "square", "relu"];
const BINARY = ["add", "sub", "mul", "div1p2", "maximum", "where"];
const FINAL = [
  "none",
  "sum0",
  "sum1",
  "mean",
  "max1",
  "softmax",
  "logSoftmax",
  "transpose",
  "matmulT",
  "matmulTA",
  "slice",
  "concat",
] as const;

interface Program {
  r: number;
  c: number;
  /** How y is shaped: [r, c], [1, c], [c] or [r, 1]. */
  y: "full" | "row" | "vector" | "column";
  steps: { op: string; a: number; b: number }[];
  final: (typeof FINAL)[number];
  seed: number;
}

const programArb: fc.Arbitrary<Program> = fc.record({
  r: fc.integer({ min: 1, max: 3 }),
  c: fc.integer({ min: 1, max: 4 }),
  y: fc.constantFrom("full", "row", "vector", "column"),
  steps: fc.array(
    fc.record({
      op: fc.constantFrom(...UNARY, ...BINARY),
      a: fc.nat(),
      b: fc.nat(),
    }),
    { minLength: 1, maxLength: 5 },
  ),
  final: fc.constantFrom(...FINAL),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
});

const yShape = (p: Program) =>
  p.y === "full" ? [p.r, p.c] : p.y === "row" ? [1, p.c] : p.y === "vector" ? [p.c] : [p.r, 1];

/**
 * The program in the library's ops: each step's first operand is x or an earlier step (so has
 * the full shape), its second any earlier value (y broadcasts); values are reused (fan-out).
 */
function programOps(p: Program) {
  return (x: Tensor, y: Tensor): Tensor => {
    const vals: Tensor[] = [x, y];
    const full = (
      k: number,
    ) => (k % (vals.length - 1) === 0 ? vals[0] : vals[1 + (k % (vals.length - 1))]);
    for (const s of p.steps) {
      const a = full(s.a);
      const b = vals[s.b % vals.length];
      const one = (t: Tensor) => o.add(o.square(t), 1);
      const v: Record<string, () => Tensor> = {
        neg: () => o.neg(a),
        exp: () => o.exp(a),
        log1p2: () => o.log(one(a)),
        sqrt1p2: () => o.sqrt(one(a)),
        recip1p2: () => o.reciprocal(one(a)),
        sigmoid: () => o.sigmoid(a),
        tanh: () => o.tanh(a),
        square: () => o.square(a),
        relu: () => o.relu(a),
        add: () => o.add(a, b),
        sub: () => o.sub(a, b),
        mul: () => o.mul(a, b),
        div1p2: () => o.div(a, one(b)),
        maximum: () => o.maximum(a, b),
        where: () => o.where(o.greater(a, 0), a, o.broadcastTo(b, [p.r, p.c])),
      };
      vals.push(v[s.op]());
    }
    const z = vals[vals.length - 1].rank === 2 && vals.length > 2 ? vals[vals.length - 1] : x;
    switch (p.final) {
      case "none":
        return z;
      case "sum0":
        return o.sum(z, 0, true);
      case "sum1":
        return o.sum(z, 1);
      case "mean":
        return o.mean(z);
      case "max1":
        return o.max(z, 1);
      case "softmax":
        return o.softmax(z);
      case "logSoftmax":
        return o.logSoftmax(z);
      case "transpose":
        return o.transpose(z);
      case "matmulT":
        return o.matmul(z, x, { transB: true });
      case "matmulTA":
        return o.matmul(z, x, { transA: true });
      case "slice":
        return o.slice(z, [p.r > 1 ? 1 : 0, 0], [p.r > 1 ? p.r - 1 : 1, p.c]);
      case "concat":
        return o.concat([z, x], 1);
    }
  };
}

/** The same program in float64 from the definitions, recording kinks (relu, maximum, where, max). */
function programRef(p: Program, xd: number[], yd: number[], kinks?: Kinks): number[] {
  const { r, c } = p;
  const x = mat(r, c, xd);
  const y: Mat = p.y === "full"
    ? mat(r, c, yd)
    : { r, c, d: yd, rs: p.y === "column" ? 1 : 0, cs: p.y === "column" ? 0 : 1 };
  const vals: Mat[] = [x, y];
  const kink = (v: number, choice: number) => {
    if (!kinks) return;
    kinks.pattern.push(choice);
    kinks.margin = Math.min(kinks.margin, Math.abs(v));
  };
  for (const s of p.steps) {
    const a = s.a % (vals.length - 1) === 0 ? vals[0] : vals[1 + (s.a % (vals.length - 1))];
    const b = vals[s.b % vals.length];
    const un = (f: (t: number) => number) => mapMat(r, c, (i, j) => f(at(a, i, j)));
    const bin = (f: (u: number, w: number) => number) =>
      mapMat(r, c, (i, j) => f(at(a, i, j), at(b, i, j)));
    const table: Record<string, () => Mat> = {
      neg: () => un((t) => -t),
      exp: () => un(Math.exp),
      log1p2: () => un((t) => Math.log(1 + t * t)),
      sqrt1p2: () => un((t) => Math.sqrt(1 + t * t)),
      recip1p2: () => un((t) => 1 / (1 + t * t)),
      sigmoid: () => un((t) => 1 / (1 + Math.exp(-t))),
      tanh: () => un(Math.tanh),
      square: () => un((t) => t * t),
      relu: () =>
        un((t) => {
          kink(t, t > 0 ? 1 : 0);
          return t > 0 ? t : 0;
        }),
      add: () => bin((u, w) => u + w),
      sub: () => bin((u, w) => u - w),
      mul: () => bin((u, w) => u * w),
      div1p2: () => bin((u, w) => u / (1 + w * w)),
      maximum: () =>
        bin((u, w) => {
          kink(u - w, u >= w ? 1 : 0);
          return u >= w ? u : w;
        }),
      where: () =>
        bin((u, w) => {
          kink(u, u > 0 ? 1 : 0);
          return u > 0 ? u : w;
        }),
    };
    vals.push(table[s.op]());
  }
  const z = vals.length > 2 ? vals[vals.length - 1] : x;
  const rows = (f: (row: number[]) => number[]) =>
    Array.from({ length: r }, (_, i) => f(Array.from({ length: c }, (_, j) => at(z, i, j)))).flat();
  switch (p.final) {
    case "none":
      return mapMat(r, c, (i, j) => at(z, i, j)).d;
    case "sum0":
      return Array.from({ length: c }, (_, j) => {
        let s = 0;
        for (let i = 0; i < r; i++) s += at(z, i, j);
        return s;
      });
    case "sum1":
      return rows((row) => [row.reduce((a, b) => a + b, 0)]);
    case "mean":
      return [rows((row) => row).reduce((a, b) => a + b, 0) / (r * c)];
    case "max1":
      return rows((row) => {
        const sorted = [...row].sort((a, b) => b - a);
        let best = 0;
        row.forEach((t, j) => t > row[best] && (best = j));
        kink(sorted.length > 1 ? sorted[0] - sorted[1] : Infinity, best);
        return [sorted[0]];
      });
    case "softmax":
    case "logSoftmax":
      return rows((row) => {
        const m = Math.max(...row);
        const e = row.map((t) => Math.exp(t - m));
        const sum = e.reduce((a, b) => a + b, 0);
        return p.final === "softmax"
          ? e.map((t) => t / sum)
          : row.map((t) => t - m - Math.log(sum));
      });
    case "transpose":
      return mapMat(c, r, (j, i) => at(z, i, j)).d;
    case "matmulT":
      // z x^T: [r, r]
      return mapMat(r, r, (i, k) => {
        let s = 0;
        for (let j = 0; j < c; j++) s += at(z, i, j) * at(x, k, j);
        return s;
      }).d;
    case "matmulTA":
      // z^T x: [c, c]
      return mapMat(c, c, (j, l) => {
        let s = 0;
        for (let i = 0; i < r; i++) s += at(z, i, j) * at(x, i, l);
        return s;
      }).d;
    case "slice":
      return mapMat(r > 1 ? r - 1 : 1, c, (i, j) => at(z, i + (r > 1 ? 1 : 0), j)).d;
    case "concat":
      return mapMat(r, 2 * c, (i, j) => (j < c ? at(z, i, j) : at(x, i, j - c))).d;
  }
}

/**
 * A generated program on the float64 backends: forward values, J v and J^T u against the explicit
 * finite-difference Jacobian of the reference, <u, J v> = <J^T u, v>, and the Hessian of <u, f>
 * along v against central differences of its gradient. Points near a kink are rejected as in the
 * network properties (another relu sign, maximum or where choice, or max position at any
 * evaluation than at the base point).
 */
async function checkProgram(p: Program): Promise<boolean> {
  const rng = new Random(p.seed);
  const ys = yShape(p);
  const xd = Array.from({ length: p.r * p.c }, () => rng.range(-1, 1));
  const yd = Array.from({ length: prod(ys) }, () => rng.range(-1, 1));
  const n = xd.length + yd.length;
  const split = (
    w: ArrayLike<number>,
  ) => [Array.from(w).slice(0, xd.length), Array.from(w).slice(xd.length)];
  const refAtW = (w: ArrayLike<number>, kinks?: Kinks) => {
    const [a, b] = split(w);
    return programRef(p, a, b, kinks);
  };
  const w0 = [...xd, ...yd];
  const base: Kinks = { pattern: [], margin: Infinity };
  const f0 = refAtW(w0, base);
  const baseP = base.pattern.join(",");
  const h = 1e-6;
  const J: number[][] = f0.map(() => new Array(n).fill(0));
  for (let j = 0; j < n; j++) {
    const shift = (s: number) => {
      const k: Kinks = { pattern: [], margin: Infinity };
      const w = [...w0];
      w[j] += s;
      const out = refAtW(w, k);
      return { out, same: k.pattern.join(",") === baseP };
    };
    const [fp, fm] = [shift(h), shift(-h)];
    if (!fp.same || !fm.same) return false;
    f0.forEach((_, i) => (J[i][j] = (fp.out[i] - fm.out[i]) / (2 * h)));
  }
  const v = Array.from({ length: n }, () => rng.range(-1, 1));
  const u = Array.from({ length: f0.length }, () => rng.range(-1, 1));
  const EPS = 1e-5;
  for (const s of [EPS, -EPS]) {
    const k: Kinks = { pattern: [], margin: Infinity };
    refAtW(w0.map((t, i) => t + s * v[i]), k);
    if (k.pattern.join(",") !== baseP) return false;
  }
  const f = programOps(p);
  for (const be of F64) {
    const tag = `${be.name}: ${JSON.stringify({ ...p, seed: undefined })}`;
    const t = (d: number[], s: number[]) =>
      tensor(Float64Array.from(d), s, { backend: be, dtype: "float64" });
    const [xv, yv] = split(v);
    const [x, y] = [t(xd, [p.r, p.c]), t(yd, ys)];
    const [[out], [jv]] = jvp(f, [x, y], [t(xv, [p.r, p.c]), t(yv, ys)]);
    near(await host(out), f0, 1e-12, 1e-12, `${tag}: forward`, 1);
    const [R, A] = [1e-6, 1e-7];
    near(await host(jv), matVec(J, v), R, A, `${tag}: J v`, 1e-3);
    const lin = linearize(f, [x, y]);
    const jtu = await hostAll(lin.vjp(t(u, [...out.shape])));
    near(jtu, matTVec(J, u), R, A, `${tag}: J^T u`, 1e-3);
    const ljv = await host(lin.jvp(t(xv, [p.r, p.c]), t(yv, ys))[0]);
    const [lhs, rhs] = [dot(u, ljv), dot(jtu, v)];
    // Where J is nearly zero, the products are rounding noise of order-1 terms: |u|_1 max|v|.
    const noise = 1e-12 * (absDot(u, u.map(() => 1)) * maxAbs(v));
    if (!(Math.abs(lhs - rhs) <= 1e-12 * (absDot(u, ljv) + absDot(jtu, v)) + noise)) {
      throw new Error(`${tag}: <u, J v> = ${lhs} but <J^T u, v> = ${rhs}`);
    }
    lin.dispose();
    // Second order: the Hessian of <u, f> along v, against differences of its gradient.
    const uT = t(u, [...out.shape]);
    const g = (a: Tensor, b: Tensor) => o.sum(o.mul(f(a, b), uT));
    const hv = await hostAll(hvp(g, [x, y], [t(xv, [p.r, p.c]), t(yv, ys)]));
    const gradAt = async (s: number) => {
      const [a, b] = split(w0.map((q, i) => q + s * v[i]));
      return await hostAll(valueAndGrad(g)(t(a, [p.r, p.c]), t(b, ys))[1]);
    };
    const [gp, gm] = [await gradAt(EPS), await gradAt(-EPS)];
    near(hv, gp.map((q, i) => (q - gm[i]) / (2 * EPS)), 1e-5, 1e-6, `${tag}: H v`, 1e-3);
  }
  return true;
}

property(
  "programs: random compositions of primitives (fan-out, broadcasting) against a float64 reference",
  programArb,
  100,
  async (p) => {
    fc.pre(await checkProgram(p));
  },
);

// --- convolutions of any shape ------------------------------------------------------------------

const convArgsArb = fc.record({
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 2 }),
  f: fc.integer({ min: 1, max: 2 }),
  h: fc.integer({ min: 1, max: 5 }),
  w: fc.integer({ min: 1, max: 5 }),
  kh: fc.integer({ min: 1, max: 3 }),
  kw: fc.integer({ min: 1, max: 3 }),
  sh: fc.integer({ min: 1, max: 3 }),
  sw: fc.integer({ min: 1, max: 3 }),
  ph: fc.integer({ min: 0, max: 2 }),
  pw: fc.integer({ min: 0, max: 2 }),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
}).filter((s) => s.h + 2 * s.ph >= s.kh && s.w + 2 * s.pw >= s.kw);

/**
 * tanh(conv2d(x, w)) with any kernel, stride and padding (not only the square ones the networks
 * use): forward against a reference convolution, J v and J^T u in (x, w) against the explicit
 * finite-difference Jacobian, and the Hessian of <u, f> along v against differences of its
 * gradient (which runs the input- and weight-gradient rules' own derivatives).
 */
property(
  "conv2d: any kernel, stride and padding against a float64 reference",
  convArgsArb,
  40,
  async (s) => {
    const ho = Math.floor((s.h + 2 * s.ph - s.kh) / s.sh) + 1;
    const wo = Math.floor((s.w + 2 * s.pw - s.kw) / s.sw) + 1;
    const xs = [s.n, s.c, s.h, s.w];
    const ws = [s.f, s.c, s.kh, s.kw];
    const ref = (x: number[], w: number[]) => {
      const out: number[] = [];
      for (let n = 0; n < s.n; n++) {
        for (let f = 0; f < s.f; f++) {
          for (let oy = 0; oy < ho; oy++) {
            for (let ox = 0; ox < wo; ox++) {
              let acc = 0;
              for (let c = 0; c < s.c; c++) {
                for (let ky = 0; ky < s.kh; ky++) {
                  for (let kx = 0; kx < s.kw; kx++) {
                    const iy = oy * s.sh + ky - s.ph;
                    const ix = ox * s.sw + kx - s.pw;
                    if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                    acc += x[((n * s.c + c) * s.h + iy) * s.w + ix] *
                      w[((f * s.c + c) * s.kh + ky) * s.kw + kx];
                  }
                }
              }
              out.push(Math.tanh(acc));
            }
          }
        }
      }
      return out;
    };
    const rng = new Random(s.seed);
    const r = (k: number) => Array.from({ length: k }, () => rng.range(-1, 1));
    const [x0, w0] = [r(prod(xs)), r(prod(ws))];
    const nx = x0.length;
    const all = [...x0, ...w0];
    const refAll = (q: number[]) => ref(q.slice(0, nx), q.slice(nx));
    const f0 = refAll(all);
    const h = 1e-6;
    const J: number[][] = f0.map(() => new Array(all.length).fill(0));
    for (let j = 0; j < all.length; j++) {
      const p = [...all];
      p[j] += h;
      const m = [...all];
      m[j] -= h;
      const [fp, fm] = [refAll(p), refAll(m)];
      f0.forEach((_, i) => (J[i][j] = (fp[i] - fm[i]) / (2 * h)));
    }
    const v = r(all.length);
    const u = r(f0.length);
    const model = (x: Tensor, w: Tensor) =>
      o.tanh(o.conv2d(x, w, { stride: [s.sh, s.sw], padding: [s.ph, s.pw] }));
    const EPS = 1e-5;
    for (const be of F64) {
      const tag = `${be.name}: ${JSON.stringify({ ...s, seed: undefined })}`;
      const t = (d: number[], sh: number[]) =>
        tensor(Float64Array.from(d), sh, { backend: be, dtype: "float64" });
      const [x, w] = [t(x0, xs), t(w0, ws)];
      const vT = [t(v.slice(0, nx), xs), t(v.slice(nx), ws)];
      const [[out], [jv]] = jvp(model, [x, w], vT);
      near(await host(out), f0, 1e-12, 1e-12, `${tag}: forward`, 1);
      near(await host(jv), matVec(J, v), 1e-6, 1e-7, `${tag}: J v`, 1e-3);
      const lin = linearize(model, [x, w]);
      const uT = t(u, [...out.shape]);
      near(await hostAll(lin.vjp(uT)), matTVec(J, u), 1e-6, 1e-7, `${tag}: J^T u`, 1e-3);
      lin.dispose();
      const g = (a: Tensor, b: Tensor) => o.sum(o.mul(model(a, b), uT));
      const hv = await hostAll(hvp(g, [x, w], vT));
      const gradAt = async (sg: number) => {
        const q = all.map((a, i) => a + sg * v[i]);
        return await hostAll(valueAndGrad(g)(t(q.slice(0, nx), xs), t(q.slice(nx), ws))[1]);
      };
      const [gp, gm] = [await gradAt(EPS), await gradAt(-EPS)];
      near(hv, gp.map((q, i) => (q - gm[i]) / (2 * EPS)), 1e-5, 1e-6, `${tag}: H v`, 1e-3);
    }
  },
);
