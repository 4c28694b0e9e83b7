/**
 * The layers and activations beyond the seed's (softplus, erf and GELU; layer normalization;
 * average pooling) against computations that share no code with them:
 *
 * - erf against an exact evaluation (tests/erf_reference.ts: its Taylor series in BigInt fixed
 *   point, rounded once): within 2 float64 ulps, within 1 float32 ulp on the CPU backends (the
 *   float64 value rounded) and within 2.5 on WebGPU (llvmpipe: 2.2), with its table checked entry
 *   by entry;
 * - each op on generated shapes and values, on every backend the harness gives: outputs against
 *   a float64 reference written here from the definition; J v and J^T u against the reference's
 *   explicit Jacobian from central differences; H v of <u, f> against central differences of the
 *   library's gradient (float64), or against the float64 oracle's H v (WebGPU, float32).
 *
 * The networks built from these layers are tested in tests/layers_networks_test.ts.
 */

import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { hvp, jvp, vjp } from "../autodiff/transforms.ts";
import { erf, ERF_TABLE } from "../kernel/erf.ts";
import { backendLabel, cpu, Random } from "./harness.ts";
import { fc, property } from "./property.ts";
import { erfReference, ulp32, ulp64 } from "./erf_reference.ts";
import { ALL, dtypeOf, near, prod } from "./layers_checks.ts";

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
  /**
   * Whether the float32 outputs are accurate to the inputs' scale rather than their own: gelu's
   * 1 + erf cancels in the left tail (ops.gelu says so), an error of about |x| float32 ulps.
   */
  inputScale?: boolean;
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
      const floor = c.inputScale ? Math.max(1e-3, ...c.x.map(Math.abs)) : undefined;
      near(got.y, want, 1e-4, 1e-5, `${tag}: outputs`, floor);
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
      inputScale: op === "gelu",
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
