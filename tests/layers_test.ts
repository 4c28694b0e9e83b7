/**
 * The layers and activations beyond the seed's (softplus, erf and GELU; layer normalization;
 * average and global-average pooling; residual blocks; mlp()'s layerNorm and residual) against
 * computations that share no code with them:
 *
 * - erf against an exact evaluation (tests/erf_reference.ts: its Taylor series in BigInt fixed
 *   point, rounded once): within 2 float64 ulps, within 1 float32 ulp on the CPU backends (the
 *   float64 value rounded) and within 2.5 on WebGPU (llvmpipe: 2.2), with its table checked entry
 *   by entry;
 * - each op on generated shapes and values, on every backend the harness gives: outputs against
 *   a float64 reference written here from the definition; J v and J^T u against the reference's
 *   explicit Jacobian from central differences; H v of <u, f> against central differences of the
 *   library's gradient (float64), or against the float64 oracle's H v (WebGPU, float32);
 * - the networks: parameter shapes, initialization (weights as without the new layers, gains 1),
 *   names and layer sizes, and every spec error of the new fields. The float64 properties of
 *   tests/property_autodiff_test.ts check whole generated networks with these layers.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { hvp, jvp, vjp } from "../autodiff/transforms.ts";
import { erf, ERF_TABLE } from "../kernel/erf.ts";
import { ACTIVATION_NAMES, convNet, type LayerSpec, mlp } from "../models/networks.ts";
import { meanSquaredError } from "../models/losses.ts";
import { SGN } from "../sgn/sgn.ts";
import { backendLabel, backends, cpu, Random } from "./harness.ts";
import { fc, property } from "./property.ts";
import { erfReference, ulp32, ulp64 } from "./erf_reference.ts";

const ALL = await backends();
const dtypeOf = (be: Backend) => (be.dtypes.includes("float64") ? "float64" : "float32");
const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

// --- erf --------------------------------------------------------------------------------------

Deno.test("erf: the table holds erf(k/8) rounded to the nearest float64", () => {
  assert.equal(ERF_TABLE.length, 49);
  ERF_TABLE.forEach((v, k) => assert.equal(v, erfReference(k / 8), `erf(${k}/8)`));
});

/** Points erf must get right: zeros, specials, tiny and subnormal inputs, the scheme's seams. */
const ERF_SPECIAL = [
  0,
  -0,
  Infinity,
  -Infinity,
  NaN,
  5e-324,
  -5e-324,
  2 ** -1022,
  1e-300,
  1e-8,
  0.4999999999999999,
  0.5,
  // Halfway between table points (where |h| is largest), the last point and the cut to 1.
  ...Array.from({ length: 47 }, (_, k) => (k + 4.5) / 8),
  5.9999999999999,
  6,
  6.5,
  30,
];

/** The largest distance of `got[i]` from erf(xs[i]) in ulps of `ulp`, and where. */
function worstUlps(
  xs: ArrayLike<number>,
  got: ArrayLike<number>,
  ulp: (v: number) => number,
): { ulps: number; at: number } {
  let worst = { ulps: 0, at: 0 };
  for (let i = 0; i < xs.length; i++) {
    const e = erfReference(xs[i]);
    if (Number.isNaN(e) || !Number.isFinite(e) || e === 0) {
      assert.ok(Object.is(got[i], e), `erf(${xs[i]}) = ${got[i]}, expected ${e}`);
      continue;
    }
    const ulps = Math.abs(got[i] - e) / ulp(e);
    if (ulps > worst.ulps) worst = { ulps, at: xs[i] };
  }
  return worst;
}

property(
  "erf within 2 float64 ulps of the exact value (the scalar function, and the op on float64 backends)",
  fc.array(
    fc.oneof(
      fc.double({ min: -7, max: 7, noNaN: true }),
      fc.double({ min: -1e-3, max: 1e-3, noNaN: true }),
      fc.constantFrom(...ERF_SPECIAL),
    ),
    { minLength: 1, maxLength: 60 },
  ),
  60,
  async (xs) => {
    const w = worstUlps(xs, xs.map(erf), ulp64);
    assert.ok(w.ulps <= 2, `erf: ${w.ulps} ulps at x = ${w.at}`);
    for (const be of ALL.filter((b) => b.dtypes.includes("float64"))) {
      const got = await o.erf(tensor(xs, [xs.length], { backend: be, dtype: "float64" })).data();
      got.forEach((v, i) => assert.ok(Object.is(v, erf(xs[i])), `${be.name}: erf(${xs[i]})`));
    }
  },
);

Deno.test("erf in float32 on every backend: within 1 ulp on the CPU backends, 2.5 on WebGPU", async () => {
  const rng = new Random(22);
  const xs = [
    ...Array.from({ length: 14001 }, (_, i) => -7 + i / 1000),
    ...Array.from({ length: 2000 }, () => rng.range(-1, 1) * 2 ** -rng.range(0, 120)),
    ...ERF_SPECIAL,
  ].map(Math.fround);
  for (const be of ALL) {
    const got = await o.erf(tensor(xs, [xs.length], { backend: be, dtype: "float32" })).data();
    const w = worstUlps(xs, got, ulp32);
    const bound = be.name === "webgpu" ? 2.5 : 1;
    console.log(`${backendLabel(be)}: erf within ${w.ulps.toFixed(2)} float32 ulps`);
    assert.ok(w.ulps <= bound, `${be.name}: ${w.ulps} float32 ulps at x = ${w.at}`);
  }
});

// --- ops against float64 references -----------------------------------------------------------

/** An op under test: the library's function of one tensor and a float64 reference of it. */
interface OpCase {
  what: string;
  shape: number[];
  outShape: number[];
  x: number[];
  lib: (x: Tensor) => Tensor;
  ref: (x: Float64Array) => Float64Array;
  /** Whether the op is linear (its H v is zero) or smooth enough for H v by differences. */
  curved: boolean;
}

/**
 * |a_i - e_i| <= rtol |e_i| + atol max(max|e|, floor), naming the worst element: a vector's
 * small entries are held to its scale's accuracy.
 */
function near(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  rtol: number,
  atol: number,
  what: string,
  floor = 1e-3,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = floor;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= rtol * Math.abs(want[i]) + atol * scale)) {
      assert.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]} (scale ${scale})`);
    }
  }
}

/** The reference's Jacobian, column by column from central differences (float64). */
function explicitJacobian(c: OpCase): number[][] {
  const h = 1e-5;
  const n = c.x.length;
  const m = prod(c.outShape);
  const J = Array.from({ length: m }, () => new Array<number>(n).fill(0));
  const x = Float64Array.from(c.x);
  for (let j = 0; j < n; j++) {
    x[j] = c.x[j] + h;
    const up = c.ref(x);
    x[j] = c.x[j] - h;
    const down = c.ref(x);
    x[j] = c.x[j];
    for (let i = 0; i < m; i++) J[i][j] = (up[i] - down[i]) / (2 * h);
  }
  return J;
}

/** What the library computes for a case on one backend, as host arrays. */
async function libraryResults(c: OpCase, be: Backend, v: number[], u: number[]) {
  const dtype = dtypeOf(be);
  const t = (d: number[], s: number[]) => tensor(d, s, { backend: be, dtype });
  const x = t(c.x, c.shape);
  const y = await c.lib(x).data();
  const [, [jv]] = jvp(c.lib, [x], [t(v, c.shape)]);
  const [, pullback] = vjp(c.lib, [x]);
  const [jtu] = pullback(t(u, c.outShape));
  const weighted = (z: Tensor) => o.sum(o.mul(c.lib(z), t(u, c.outShape)));
  const [hv] = hvp(weighted, [x], [t(v, c.shape)]);
  const res = {
    y: Array.from(y),
    jv: Array.from(await jv.data()),
    jtu: Array.from(await jtu.data()),
    hv: Array.from(await hv.data()),
  };
  pullback.dispose();
  return res;
}

/** Every check of one op case on every backend; see the module documentation. */
async function checkOp(c: OpCase, seed: number): Promise<void> {
  const rng = new Random(seed);
  const v = c.x.map(() => Math.fround(rng.range(-1, 1)));
  const u = new Array(prod(c.outShape)).fill(0).map(() => Math.fround(rng.range(-1, 1)));
  const want = c.ref(Float64Array.from(c.x));
  const J = explicitJacobian(c);
  const jv = J.map((row) => row.reduce((s, a, j) => s + a * v[j], 0));
  const jtu = c.x.map((_, j) => J.reduce((s, row, i) => s + row[j] * u[i], 0));
  let oracle: Awaited<ReturnType<typeof libraryResults>> | undefined;
  for (const be of ALL) {
    const tag = `${backendLabel(be)}, ${c.what}`;
    const got = await libraryResults(c, be, v, u);
    if (dtypeOf(be) === "float64") {
      near(got.y, want, 1e-12, 1e-12, `${tag}: outputs`);
      // Central differences: truncation h^2 f''' and rounding eps / h, ~1e-10 of the scale.
      near(got.jv, jv, 1e-6, 1e-7, `${tag}: J v`);
      near(got.jtu, jtu, 1e-6, 1e-7, `${tag}: J^T u`);
      // H v of <u, f>: central differences of the library's gradient along v.
      const eps = 1e-5;
      const gradAt = async (s: number) => {
        const x = tensor(c.x.map((a, i) => a + s * v[i]), c.shape, {
          backend: be,
          dtype: "float64",
        });
        const [, pullback] = vjp(c.lib, [x]);
        const [g] = pullback(tensor(u, c.outShape, { backend: be, dtype: "float64" }));
        const out = Array.from(await g.data());
        pullback.dispose();
        return out;
      };
      const [gp, gm] = [await gradAt(eps), await gradAt(-eps)];
      const fd = gp.map((p, i) => (p - gm[i]) / (2 * eps));
      if (!c.curved) assert.ok(got.hv.every((a) => a === 0), `${tag}: H v of a linear op is 0`);
      near(got.hv, fd, 1e-5, 1e-6, `${tag}: H v`);
      if (be === cpu) oracle = got;
    } else {
      // float32: the reference's values, and the oracle's H v, to float32's accuracy through a
      // few roundings of order-1 terms (layer normalization divides by a standard deviation of
      // order 1, so no amplification).
      near(got.y, want, 1e-4, 1e-5, `${tag}: outputs`);
      near(got.jv, jv, 1e-3, 1e-4, `${tag}: J v`);
      near(got.jtu, jtu, 1e-3, 1e-4, `${tag}: J^T u`);
      near(got.hv, oracle!.hv, 1e-3, 1e-4, `${tag}: H v`);
    }
  }
}

/** float32-representable values in [lo, hi]. */
const valuesArb = (n: number, lo: number, hi: number) =>
  fc.array(fc.double({ min: lo, max: hi, noNaN: true }).map(Math.fround), {
    minLength: n,
    maxLength: n,
  });

/** The activations' float64 references, from their definitions (erf: the exact one). */
const ACTIVATION_REF: Record<string, (x: number) => number> = {
  softplus: (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))),
  erf: erfReference,
  gelu: (x) => (x * (1 + erfReference(x / Math.SQRT2))) / 2,
};
const ACTIVATION_OPS: Record<string, (x: Tensor) => Tensor> = {
  softplus: o.softplus,
  erf: o.erf,
  gelu: o.gelu,
};

property(
  "softplus, erf and gelu: values, J v, J^T u and H v against float64 references, every backend",
  fc.record({
    op: fc.constantFrom("softplus", "erf", "gelu"),
    n: fc.integer({ min: 1, max: 12 }),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  }).chain(({ op, n, seed }) => valuesArb(n, -9, 9).map((x) => ({ op, x, seed }))),
  30,
  async ({ op, x, seed }) => {
    const f = ACTIVATION_REF[op];
    await checkOp({
      what: `${op} of [${x.join(", ")}]`,
      shape: [x.length],
      outShape: [x.length],
      x,
      lib: ACTIVATION_OPS[op],
      ref: (a) => a.map(f),
      curved: true,
    }, seed);
  },
);

/** Layer normalization from its definition: per example, (x - mean) / sqrt(var + 1e-5). */
function refLayerNorm(shape: number[]) {
  const [n, ...rest] = shape;
  const m = prod(rest);
  return (x: Float64Array) => {
    const out = new Float64Array(x.length);
    for (let i = 0; i < n; i++) {
      let mean = 0;
      for (let j = 0; j < m; j++) mean += x[i * m + j] / m;
      let variance = 0;
      for (let j = 0; j < m; j++) variance += (x[i * m + j] - mean) ** 2 / m;
      for (let j = 0; j < m; j++) {
        out[i * m + j] = (x[i * m + j] - mean) / Math.sqrt(variance + 1e-5);
      }
    }
    return out;
  };
}

property(
  "layerNorm over each example's features: values, J v, J^T u and H v, every backend",
  fc.record({
    shape: fc.oneof(
      fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 6 })),
      fc.tuple(
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
      ).filter((s) => prod(s.slice(1)) > 1),
    ),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  }).chain(({ shape, seed }) =>
    valuesArb(prod(shape), -2, 2).map((x) => ({ shape: [...shape], x, seed }))
  ),
  30,
  async ({ shape, x, seed }) => {
    // Features nearly equal make the normalization's derivatives huge (1/sqrt(eps)): not the
    // point here, and differences would not resolve them.
    const m = prod(shape.slice(1));
    for (let i = 0; i < shape[0]; i++) {
      const row = x.slice(i * m, (i + 1) * m);
      fc.pre(Math.max(...row) - Math.min(...row) > 0.2);
    }
    await checkOp({
      what: `layerNorm of [${shape}]`,
      shape,
      outShape: shape,
      x,
      lib: (t) => o.layerNorm(t),
      ref: refLayerNorm(shape),
      curved: true,
    }, seed);
  },
);

/** Average pooling from its definition: window means, the uncovered border dropped. */
function refAvgPool(shape: number[], k: number, stride: number) {
  const [n, c, h, w] = shape;
  const ho = Math.floor((h - k) / stride) + 1;
  const wo = Math.floor((w - k) / stride) + 1;
  return {
    outShape: [n, c, ho, wo],
    ref: (x: Float64Array) => {
      const out = new Float64Array(n * c * ho * wo);
      for (let p = 0; p < n * c; p++) {
        for (let i = 0; i < ho; i++) {
          for (let j = 0; j < wo; j++) {
            let s = 0;
            for (let a = 0; a < k; a++) {
              for (let b = 0; b < k; b++) s += x[(p * h + i * stride + a) * w + j * stride + b];
            }
            out[(p * ho + i) * wo + j] = s / (k * k);
          }
        }
      }
      return out;
    },
  };
}

property(
  "avgPool2d (tiling, overlapping and spaced windows) and globalAvgPool2d: values, J v, J^T u, every backend",
  fc.record({
    n: fc.integer({ min: 1, max: 2 }),
    c: fc.integer({ min: 1, max: 2 }),
    h: fc.integer({ min: 1, max: 6 }),
    w: fc.integer({ min: 1, max: 6 }),
    k: fc.integer({ min: 1, max: 3 }),
    stride: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
    global: fc.boolean(),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  }).filter((p) => p.k <= p.h && p.k <= p.w).chain((p) =>
    valuesArb(p.n * p.c * p.h * p.w, -2, 2).map((x) => ({ ...p, x }))
  ),
  40,
  async ({ n, c, h, w, k, stride, global, seed, x }) => {
    const shape = [n, c, h, w];
    if (global) {
      await checkOp({
        what: `globalAvgPool2d of [${shape}]`,
        shape,
        outShape: [n, c],
        x,
        lib: o.globalAvgPool2d,
        ref: (a) =>
          Float64Array.from({ length: n * c }, (_, p) => {
            let s = 0;
            for (let i = 0; i < h * w; i++) s += a[p * h * w + i];
            return s / (h * w);
          }),
        curved: false,
      }, seed);
      return;
    }
    const r = refAvgPool(shape, k, stride ?? k);
    await checkOp({
      what: `avgPool2d of [${shape}], ${k}x${k} windows, stride ${stride ?? k}`,
      shape,
      outShape: r.outShape,
      x,
      lib: (t) => o.avgPool2d(t, k, stride),
      ref: r.ref,
      curved: false,
    }, seed);
  },
);

// --- networks ---------------------------------------------------------------------------------

Deno.test("mlp: layerNorm and residual: parameters in order, weights as without them, gains 1", async () => {
  const plain = mlp({ inputs: 3, hidden: [4, 4, 2], outputs: 2 });
  const net = mlp({ inputs: 3, hidden: [4, 4, 2], outputs: 2, layerNorm: true, residual: true });
  assert.equal(net.name, "MLP 3-4-4-2-2 sigmoid, layer norm, residual");
  assert.deepEqual(net.paramShapes, [
    [3, 4],
    [4],
    [4],
    [4], // W, b, gain, LN bias
    [4, 4],
    [4],
    [4],
    [4],
    [4, 2],
    [2],
    [2],
    [2],
    [2, 2],
    [2],
  ]);
  assert.equal(net.paramCount, plain.paramCount + 2 * (4 + 4 + 2));
  // Hidden outputs, their normalized copies, the one skip's sum (4 -> 4), then the outputs.
  assert.deepEqual(net.layerSizes, [4, 4, 4, 4, 4, 2, 2, 2]);
  const p = net.init({ seed: 7, backend: cpu, dtype: "float64" });
  const q = plain.init({ seed: 7, backend: cpu, dtype: "float64" });
  const weights = [0, 4, 8, 12];
  for (const [i, j] of weights.map((w, k) => [w, 2 * k])) {
    assert.deepEqual(await p[i].data(), await q[j].data(), `weights ${j / 2} as without`);
  }
  for (const i of [2, 6, 10]) assert.ok((await p[i].data()).every((v) => v === 1), `gain ${i}`);
  for (const i of [3, 7, 11]) assert.ok((await p[i].data()).every((v) => v === 0), `bias ${i}`);
  // The forward pass written out with ops: affine, normalize, scale and shift, sigmoid; the
  // second layer (4 -> 4) adds its input.
  const x = tensor([[0.5, -1, 2], [1, 0.25, -0.5]], undefined, { backend: cpu, dtype: "float64" });
  const layer = (h: Tensor, i: number) =>
    o.sigmoid(o.add(o.mul(o.layerNorm(o.add(o.matmul(h, p[i]), p[i + 1])), p[i + 2]), p[i + 3]));
  const h1 = layer(x, 0);
  const h2 = o.add(h1, layer(h1, 4));
  const h3 = layer(h2, 8);
  const want = o.add(o.matmul(h3, p[12]), p[13]);
  assert.deepEqual(await net.forward(p, x).data(), await want.data());
});

Deno.test("convNet: AVGPOOL, GAP, LN and nested RES blocks: shapes, counts, names, outputs", async () => {
  const spec = {
    conv_layers: {
      layer0: { type: "CONV", num_filters: 2, filter_size: 3, padding: 1 },
      layer1: {
        type: "RES",
        layers: {
          layer0: { type: "LN" },
          layer1: { type: "ACT", activation: "relu" },
          layer2: {
            type: "RES",
            layers: { layer0: { type: "CONV", num_filters: 2, filter_size: 1 } },
          },
        },
      },
      layer2: { type: "AVGPOOL", pool_size: 3, stride: 2 },
      layer3: { type: "ACT", activation: "gelu" },
      layer4: { type: "GAP" },
    },
    mlp_layers: {
      layer0: { type: "FC", output_size: 3, activation: "softplus" },
      layer1: { type: "RES", layers: { layer0: { type: "FC", output_size: 3 } } },
      layer2: { type: "LN" },
      layer3: { type: "ACT", activation: "tanh" },
    },
  } as const;
  const net = convNet(spec as never, [1, 6, 6], 2);
  assert.equal(
    net.name,
    "ConvNet 1x6x6: conv2@3x3, res(ln, relu, res(conv2@1x1)), avgpool3/2, gelu, gap, " +
      "fc3 softplus, res(fc3), ln, tanh, fc2",
  );
  assert.deepEqual(net.paramShapes, [
    [2, 1, 3, 3],
    [2], // conv
    [2, 6, 6],
    [2, 6, 6], // LN over c x h x w
    [2, 2, 1, 1],
    [2], // the inner block's conv
    [2, 3],
    [3], // FC from the 2 pooled channels
    [3, 3],
    [3], // the block's FC
    [3],
    [3], // LN
    [3, 2],
    [2], // output
  ]);
  assert.deepEqual(net.layerSizes, [72, 72, 72, 72, 72, 8, 2, 3, 3, 3, 3, 2]);
  const p = net.init({ seed: 2, backend: cpu, dtype: "float64" });
  assert.ok((await p[2].data()).every((v) => v === 1) && (await p[3].data()).every((v) => v === 0));
  const rng = new Random(5);
  const x = tensor(Array.from({ length: 72 }, () => rng.range(-1, 1)), [2, 1, 6, 6], {
    backend: cpu,
    dtype: "float64",
  });
  // The same network with ops, in the spec's order.
  let y = o.add(o.conv2d(x, p[0], { padding: 1 }), o.reshape(p[1], [1, 2, 1, 1]));
  const inner = o.relu(o.add(o.mul(o.layerNorm(y), p[2]), p[3]));
  const innermost = o.add(o.conv2d(inner, p[4]), o.reshape(p[5], [1, 2, 1, 1]));
  y = o.add(y, o.add(inner, innermost));
  y = o.globalAvgPool2d(o.gelu(o.avgPool2d(y, 3, 2)));
  let z = o.softplus(o.add(o.matmul(y, p[6]), p[7]));
  z = o.add(z, o.add(o.matmul(z, p[8]), p[9]));
  z = o.tanh(o.add(o.mul(o.layerNorm(z), p[10]), p[11]));
  const want = o.add(o.matmul(z, p[12]), p[13]);
  const got = await net.forward(p, x).data();
  near(got, await want.data(), 1e-14, 0, "outputs against the ops written out", 0);
});

for (const be of ALL) {
  Deno.test(`SGN (${backendLabel(be)}): steps on a net of every new layer lower the loss`, async () => {
    const net = convNet(
      {
        conv_layers: {
          layer0: { type: "CONV", num_filters: 3, filter_size: 3, padding: 1 },
          layer1: {
            type: "RES",
            layers: {
              layer0: { type: "LN" },
              layer1: { type: "ACT", activation: "gelu" },
              layer2: { type: "CONV", num_filters: 3, filter_size: 3, padding: 1 },
            },
          },
          layer2: { type: "AVGPOOL" },
          layer3: { type: "ACT", activation: "softplus" },
          layer4: { type: "GAP" },
        },
        mlp_layers: { layer0: { type: "FC", output_size: 4, activation: "gelu" } },
      },
      [1, 6, 6],
      2,
    );
    const dtype = dtypeOf(be);
    const rng = new Random(9);
    const x = tensor(Array.from({ length: 8 * 36 }, () => rng.range(-1, 1)), [8, 1, 6, 6], {
      backend: be,
      dtype,
    });
    const targets = tensor(Array.from({ length: 16 }, () => rng.range(-1, 1)), [8, 2], {
      backend: be,
      dtype,
    });
    const opt = new SGN(net.init({ seed: 3, backend: be, dtype }), { cgMaxIters: 5 });
    const loss = meanSquaredError(targets);
    const first = await opt.step((...p) => net.forward(p, x), loss);
    let last = first;
    for (let i = 0; i < 3; i++) last = await opt.step((...p) => net.forward(p, x), loss);
    assert.ok(Number.isFinite(last.loss), `loss ${last.loss}`);
    assert.ok(last.loss < 0.9 * first.loss, `the loss went from ${first.loss} to ${last.loss}`);
    opt.dispose();
    x.dispose();
    targets.dispose();
  });
}

Deno.test("convNet and mlp: the new fields are checked, and errors name the layer and what to do", () => {
  const bad = (conv: unknown, mlpLayers: unknown = undefined) => () =>
    convNet({ conv_layers: conv, mlp_layers: mlpLayers } as never, [2, 6, 6], 3);
  const cases: [() => unknown, RegExp][] = [
    [
      bad({ layer0: { type: "LN", eps: 1e-3 } }),
      /conv_layers\.layer0: unknown field "eps" \(it takes type\)/,
    ],
    [bad({ layer0: { type: "GAP", keepdims: true } }), /layer0: unknown field "keepdims"/],
    [
      bad({ layer0: { type: "AVGPOOL", pool_size: 0 } }),
      /layer0: pool_size must be a positive integer, got 0/,
    ],
    [
      bad({ layer0: { type: "AVGPOOL", stride: 1.5 } }),
      /layer0: stride must be a positive integer/,
    ],
    [
      bad({ layer0: { type: "AVGPOOL", pool_size: 7 } }),
      /a 7x7 pool does not fit the 6x6 feature map/,
    ],
    [
      bad({ layer0: { type: "AVGPOOL", pool_size: 2, padding: 1 } }),
      /unknown field "padding" \(it takes type, pool_size, stride\)/,
    ],
    [bad({ layer0: { type: "RES" } }), /conv_layers\.layer0: a RES block needs its layers/],
    [bad({ layer0: { type: "RES", layers: {} } }), /a RES block needs its layers/],
    [
      bad({ layer0: { type: "RES", layers: { layer0: { type: "POOL" } } } }),
      /conv_layers\.layer0: a RES block's layers must keep the shape of its input, 2x6x6, but give 2x3x3/,
    ],
    [
      bad({
        layer0: {
          type: "RES",
          layers: { layer0: { type: "CONV", num_filters: 4, filter_size: 1 } },
        },
      }),
      /must keep the shape of its input, 2x6x6, but give 4x6x6/,
    ],
    [
      bad({ layer0: { type: "RES", layers: { layer0: { type: "FC", output_size: 2 } } } }),
      /conv_layers\.layer0\.layers\.layer0: unknown layer type "FC" \(conv_layers take CONV, ACT, POOL, AVGPOOL, GAP, LN and RES\)/,
    ],
    [
      bad({ layer0: { type: "RES", layers: { first: { type: "LN" } } } }),
      /conv_layers\.layer0\.layers\.first: layer names must be layer0, layer1/,
    ],
    [
      bad({ layer0: { type: "RES", layers: { layer0: { type: "LN", gain: 2 } } } }),
      /conv_layers\.layer0\.layers\.layer0: unknown field "gain"/,
    ],
    [
      bad({ layer0: { type: "LN" } }, { layer0: { type: "CONV", num_filters: 1, filter_size: 1 } }),
      /mlp_layers\.layer0: unknown layer type "CONV" \(mlp_layers take FC, ACT, LN and RES\)/,
    ],
    [
      bad({ layer0: { type: "GAP" } }, {
        layer0: { type: "RES", layers: { layer0: { type: "FC", output_size: 5 } } },
      }),
      /mlp_layers\.layer0: a RES block's layers must keep the shape of its input, 2, but give 5/,
    ],
    [
      bad({ layer0: { type: "GAP" } }, {
        layer0: { type: "FC", output_size: 2, activation: "elu" },
      }),
      /mlp_layers\.layer0: unknown activation "elu" \(use sigmoid, relu, tanh, softplus or gelu\)/,
    ],
    [
      () => mlp({ inputs: 3, hidden: [4], outputs: 2, layerNorm: "yes" as never }),
      /mlp: layerNorm must be true or false, got "yes"/,
    ],
    [
      () => mlp({ inputs: 3, hidden: [4, 5], outputs: 2, residual: true }),
      /mlp: residual needs a hidden layer as wide as its input, and 3-4-5-2 has none/,
    ],
    [
      () => mlp({ inputs: 3, hidden: [4], outputs: 2, layernorm: true } as never),
      /mlp: unknown field "layernorm" \(it takes inputs, hidden, outputs, activation, layerNorm, residual\)/,
    ],
  ];
  for (const [f, re] of cases) {
    assert.throws(f, (e: Error) => e.name === "SgnError" && re.test(e.message), String(re));
  }
  // Every activation name is taken where activations are.
  for (const a of ACTIVATION_NAMES) {
    mlp({ inputs: 2, hidden: [2], outputs: 1, activation: a });
    const l: LayerSpec = { type: "ACT", activation: a };
    convNet({ conv_layers: { layer0: l }, mlp_layers: { layer0: l } }, [1, 2, 2], 1);
  }
});
