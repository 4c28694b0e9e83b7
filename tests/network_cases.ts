/**
 * Generated networks for tests/property_networks_test.ts: fast-check arbitraries of MLPs (also
 * with layer normalization and skips) and conv nets (max and average pooling, global average
 * pooling, layer normalization and residual blocks in both parts; every activation; both
 * losses), each built twice, as the library's network and as the float64 reference's layers
 * (tests/network_reference.ts), with the explicit finite-difference Jacobian of the reference and
 * the derivatives the library computes on a backend.
 */

import type { Backend } from "../kernel/backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import { ggnLinearize, ggnvp, hvp, jvp, linearize, valueAndGrad } from "../autodiff/transforms.ts";
import type { OutputLoss } from "../autodiff/transforms.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import {
  ACTIVATION_NAMES,
  convNet,
  type ConvNetSpec,
  type LayerSpec,
  mlp,
  type Network,
} from "../models/networks.ts";
import { fc } from "./property.ts";
import { Random } from "./harness.ts";
import { dtypeOf, host, hostAll, prod } from "./autodiff_checks.ts";
import {
  type Act,
  type Kinks,
  refForward,
  type RefLayer,
  type RefLoss,
  refParamShapes,
  refShapeAfter,
  refSoftmaxCE,
  refSquaredError,
} from "./network_reference.ts";

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

export interface NetCase {
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

export const mlpArb = fc.record({
  kind: fc.constant("mlp" as const),
  inputs: fc.integer({ min: 1, max: 5 }),
  hidden: fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 3 }),
  act: actArb,
});

/** MLPs with layer normalization and skips (narrow widths, so that equal ones are common). */
export const mlpOptionsArb = fc.record({
  kind: fc.constant("mlp" as const),
  inputs: fc.integer({ min: 2, max: 3 }),
  hidden: fc.array(fc.integer({ min: 2, max: 3 }), { minLength: 1, maxLength: 3 }),
  act: actArb,
  layerNorm: fc.boolean(),
  residual: fc.boolean(),
});

export const convArb = fc.record({
  kind: fc.constant("conv" as const),
  input: fc.tuple(
    fc.integer({ min: 1, max: 2 }),
    fc.integer({ min: 3, max: 7 }),
    fc.integer({ min: 3, max: 7 }),
  ),
  conv: fc.array(convLayerArb, { minLength: 1, maxLength: 5 }),
  fc: fc.array(fcLayerArb, { maxLength: 2 }),
});

export const newConvArb = fc.record({
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
export const seedStyleArb = fc.record({
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

export function caseArb(net: fc.Arbitrary<NetCase["net"]>): fc.Arbitrary<NetCase> {
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
export function build(c: NetCase): Built {
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
export function onBackend(b: Built, be: Backend) {
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
export function refAt(
  b: Built,
  d: ArrayLike<number> | null,
  h: number,
  kinks?: Kinks,
): Float64Array {
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
export function patternAt(b: Built, d: ArrayLike<number> | null, h: number): string {
  const k: Kinks = { pattern: [], margin: Infinity };
  refAt(b, d, h, k);
  return k.pattern.join(",");
}

const FD_H = 1e-5;

/**
 * The explicit Jacobian of the reference outputs in the parameters, column by column from
 * central differences at steps h and 2h combined by Richardson's extrapolation, (4 D(h) - D(2h))
 * / 3: truncation h^4 rather than h^2, which a layer norm over nearly equal features needs (its
 * derivatives grow like powers of 1 / sqrt(variance + eps); one such J v was 1e-4 off with h^2);
 * null when some column's differences cross a kink (another relu sign or window argmax than at
 * the base point).
 */
export function explicitJacobian(b: Built, base: string): number[][] | null {
  const total = b.params.reduce((s, p) => s + p.length, 0);
  const outs = b.n * b.classes;
  const J = Array.from({ length: outs }, () => new Array(total).fill(0));
  const e = new Float64Array(total);
  for (let j = 0; j < total; j++) {
    e[j] = 1;
    const at = (h: number) => {
      const k: Kinks = { pattern: [], margin: Infinity };
      const z = refAt(b, e, h, k);
      return k.pattern.join(",") === base ? z : null;
    };
    const [zp, zm, zp2, zm2] = [at(FD_H), at(-FD_H), at(2 * FD_H), at(-2 * FD_H)];
    e[j] = 0;
    if (!zp || !zm || !zp2 || !zm2) return null;
    for (let i = 0; i < outs; i++) {
      const d1 = (zp[i] - zm[i]) / (2 * FD_H);
      const d2 = (zp2[i] - zm2[i]) / (4 * FD_H);
      J[i][j] = (4 * d1 - d2) / 3;
    }
  }
  return J;
}

/** A random direction of the parameter space (float32 values, reproducible from the case). */
export const direction = (rng: Random, size: number) =>
  Array.from({ length: size }, () => Math.fround(rng.range(-1, 1)));

/** The derivatives the library computes for a case on one backend, as host arrays. */
export async function libraryDerivatives(b: Built, be: Backend, vs: number[][], u: number[]) {
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
