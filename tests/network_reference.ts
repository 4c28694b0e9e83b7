/**
 * A float64 reference of the library's networks for the property tests, sharing no code with
 * them: every layer (dense, convolution, max and average pooling, global average pooling, layer
 * normalization, residual blocks, every activation) written with explicit index arithmetic,
 * recording each relu's sign and each pooling window's argmax and how near a kink the point is;
 * and the two losses' values, gradients and output Hessians from their definitions.
 */

import type { Activation } from "../models/networks.ts";
import { erfQuadrature } from "./erf_reference.ts";
import { prod } from "./autodiff_checks.ts";

export type Act = Activation;
/** The reference's layers: what the spec says, in order, with explicit sizes. */
export type RefLayer =
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
export interface Kinks {
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
export function refShapeAfter(l: RefLayer, s: number[]): number[] {
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
export function refParamShapes(layers: RefLayer[], inShape: number[]): number[][] {
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
export function refForward(
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
export interface RefLoss {
  value(z: Float64Array): number;
  grad(z: Float64Array): number[];
  hessian(z: Float64Array): number[][];
}

export function refSoftmaxCE(labels: number[], classes: number): RefLoss {
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

export function refSquaredError(targets: number[]): RefLoss {
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
