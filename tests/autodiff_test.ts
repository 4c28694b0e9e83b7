/**
 * Autodiff against independent computations: each op's JVP and VJP against central finite
 * differences in float64 on the CPU backend (tests/autodiff_support.ts) and the adjoint identity
 * <u, J v> = <J^T u, v> on WebGPU in float32; Hessian-vector products against closed-form
 * Hessians and differences of the gradient; Gauss-Newton-vector products against explicit
 * Jacobians built column by column; nested transformations; clear errors for misuse; and a flat
 * live buffer count over many products. Whole networks are in tests/autodiff_networks_test.ts.
 */

import assert from "node:assert/strict";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import {
  ggnLinearize,
  ggnvp,
  grad,
  hvp,
  jvp,
  linearize,
  valueAndGrad,
  vjp,
} from "../autodiff/transforms.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { cpu, Random } from "./harness.ts";
import {
  assertNear,
  CONV,
  dotHost,
  fd,
  gpu,
  host,
  mlp,
  mlpParams,
  rand,
} from "./autodiff_support.ts";

interface OpCase {
  name: string;
  shapes: number[][];
  f: (...xs: Tensor[]) => Tensor;
  /** Input range, to stay inside the domain and away from kinks. */
  range?: [number, number];
}

const CASES: OpCase[] = [
  { name: "add (broadcast)", shapes: [[3, 4], [4]], f: (a, b) => o.add(a, b) },
  { name: "sub (broadcast)", shapes: [[3, 1], [1, 4]], f: (a, b) => o.sub(a, b) },
  { name: "mul (broadcast)", shapes: [[2, 3, 4], [3, 1]], f: (a, b) => o.mul(a, b) },
  { name: "div", shapes: [[3, 4], [3, 4]], f: (a, b) => o.div(a, o.add(o.square(b), 0.5)) },
  { name: "maximum", shapes: [[5, 3], [5, 3]], f: (a, b) => o.maximum(a, b) },
  { name: "neg", shapes: [[7]], f: (a) => o.neg(a) },
  { name: "exp", shapes: [[7]], f: (a) => o.exp(a) },
  { name: "log", shapes: [[7]], f: (a) => o.log(a), range: [0.5, 2] },
  { name: "sigmoid", shapes: [[7]], f: (a) => o.sigmoid(a), range: [-4, 4] },
  { name: "tanh", shapes: [[7]], f: (a) => o.tanh(a), range: [-2, 2] },
  { name: "relu", shapes: [[9]], f: (a) => o.relu(a) },
  { name: "square", shapes: [[7]], f: (a) => o.square(a) },
  { name: "sqrt", shapes: [[7]], f: (a) => o.sqrt(a), range: [0.5, 2] },
  { name: "reciprocal", shapes: [[7]], f: (a) => o.reciprocal(a), range: [0.5, 2] },
  { name: "matmul", shapes: [[3, 4], [4, 5]], f: (a, b) => o.matmul(a, b) },
  { name: "matmul A^T B", shapes: [[4, 3], [4, 5]], f: (a, b) => o.matmul(a, b, { transA: true }) },
  { name: "matmul A B^T", shapes: [[3, 4], [5, 4]], f: (a, b) => o.matmul(a, b, { transB: true }) },
  {
    name: "matmul A^T B^T",
    shapes: [[4, 3], [5, 4]],
    f: (a, b) => o.matmul(a, b, { transA: true, transB: true }),
  },
  { name: "matmul batched, B shared", shapes: [[2, 3, 4], [4, 5]], f: (a, b) => o.matmul(a, b) },
  { name: "matmul batched, A shared", shapes: [[3, 4], [2, 4, 5]], f: (a, b) => o.matmul(a, b) },
  { name: "transpose", shapes: [[2, 3, 4]], f: (a) => o.transpose(a, [2, 0, 1]) },
  { name: "reshape", shapes: [[2, 6]], f: (a) => o.reshape(a, [3, -1]) },
  { name: "broadcastTo", shapes: [[3, 1]], f: (a) => o.broadcastTo(a, [2, 3, 4]) },
  { name: "sum axes", shapes: [[2, 3, 4]], f: (a) => o.sum(a, [0, 2]) },
  { name: "sum all", shapes: [[2, 3, 4]], f: (a) => o.sum(a) },
  { name: "mean keepdims", shapes: [[2, 3, 4]], f: (a) => o.mean(a, 1, true) },
  { name: "max", shapes: [[3, 5]], f: (a) => o.max(a, 1) },
  { name: "softmax", shapes: [[3, 5]], f: (a) => o.softmax(a) },
  { name: "logSoftmax", shapes: [[3, 5]], f: (a) => o.logSoftmax(a) },
  { name: "slice", shapes: [[4, 5]], f: (a) => o.slice(a, [1, 2], [2, 3]) },
  { name: "concat", shapes: [[2, 3], [2, 2]], f: (a, b) => o.concat([a, b], 1) },
  { name: "flatten", shapes: [[2, 3, 2]], f: (a) => o.flatten(a) },
  { name: "where", shapes: [[6], [6]], f: (a, b) => o.where(o.greater(a, 0), a, b) },
  { name: "conv2d", shapes: [[2, 3, 6, 5], [4, 3, 3, 2]], f: (x, w) => o.conv2d(x, w, CONV) },
  { name: "maxPool2d", shapes: [[2, 3, 6, 5]], f: (x) => o.maxPool2d(x, 2) },
  { name: "maxPool2d overlapping", shapes: [[1, 2, 7, 7]], f: (x) => o.maxPool2d(x, 3, 2) },
];

for (const c of CASES) {
  Deno.test(`autodiff: ${c.name}: JVP and VJP match central differences (float64)`, async () => {
    const rng = new Random(11);
    const [lo, hi] = c.range ?? [-1, 1];
    const xs = c.shapes.map((s) => rand(cpu, s, rng, "float64", lo, hi));
    const vs = c.shapes.map((s) => rand(cpu, s, rng));
    const vHost = await Promise.all(vs.map(host));
    const [[y], [ty]] = jvp(c.f, xs, vs);
    const want = await fd(c.f, xs, vHost);
    assertNear(await host(ty), want, 1e-6, 1e-8, `${c.name} JVP`);
    // VJP: <J^T u, v> must equal <u, J v> with J v from finite differences.
    const u = rand(cpu, [...y.shape], rng);
    const [, pullback] = vjp(c.f, xs);
    const cts = pullback(u);
    let lhs = 0;
    for (let i = 0; i < xs.length; i++) lhs += dotHost(await host(cts[i]), vHost[i]);
    const rhs = dotHost(await host(u), want);
    assert.ok(Math.abs(lhs - rhs) <= 1e-6 * (Math.abs(rhs) + 1), `${c.name} VJP: ${lhs} vs ${rhs}`);
    pullback.dispose();
  });
}

for (const c of CASES) {
  Deno.test({
    name: `autodiff: ${c.name}: adjoint identity <u, J v> = <J^T u, v> on WebGPU (float32)`,
    ignore: !gpu,
    fn: async () => {
      const rng = new Random(12);
      const [lo, hi] = c.range ?? [-1, 1];
      const xs = c.shapes.map((s) => rand(gpu!, s, rng, "float32", lo, hi));
      const vs = c.shapes.map((s) => rand(gpu!, s, rng, "float32"));
      const lin = linearize(c.f, xs);
      const u = rand(gpu!, [...lin.outputs[0].shape], rng, "float32");
      const [jv] = lin.jvp(...vs);
      const jtu = lin.vjp(u);
      const lhs = dotHost(await host(u), await host(jv));
      let rhs = 0;
      let scale = 0;
      for (let i = 0; i < xs.length; i++) {
        const a = await host(jtu[i]);
        const b = await host(vs[i]);
        rhs += dotHost(a, b);
        scale += a.reduce((s, v, j) => s + Math.abs(v * b[j]), 0);
      }
      assert.ok(
        Math.abs(lhs - rhs) <= 1e-5 * scale + 1e-6,
        `${c.name}: <u,Jv>=${lhs} <J^T u,v>=${rhs}`,
      );
      lin.dispose();
    },
  });
}

// --- Hessian-vector products -----------------------------------------------------------------

Deno.test("hvp: quadratic form x^T A x has Hessian A + A^T exactly", async () => {
  const rng = new Random(30);
  const n = 5;
  const A = rand(cpu, [n, n], rng);
  const x = rand(cpu, [n, 1], rng);
  const v = rand(cpu, [n, 1], rng);
  const f = (x: Tensor) => o.sum(o.mul(x, o.matmul(A, x)));
  const [hv] = hvp(f, [x], [v]);
  const a = await host(A);
  const vv = await host(v);
  const want = Array.from(
    { length: n },
    (_, i) =>
      Array.from({ length: n }, (_, j) => (a[i * n + j] + a[j * n + i]) * vv[j]).reduce(
        (s, t) => s + t,
        0,
      ),
  );
  assertNear(await host(hv), want, 1e-12, 1e-12, "x^T A x");
});

Deno.test("hvp: log-sum-exp has Hessian diag(s) - s s^T", async () => {
  const rng = new Random(31);
  const x = rand(cpu, [6], rng, "float64", -2, 2);
  const v = rand(cpu, [6], rng);
  const f = (x: Tensor) => o.log(o.sum(o.exp(x)));
  const [hv] = hvp(f, [x], [v]);
  const xs = await host(x);
  const vv = await host(v);
  const z = xs.reduce((s, t) => s + Math.exp(t), 0);
  const s = xs.map((t) => Math.exp(t) / z);
  const sv = dotHost(s, vv);
  assertNear(await host(hv), s.map((si, i) => si * vv[i] - si * sv), 1e-12, 1e-14, "log-sum-exp");
});

Deno.test("hvp: symmetric and equal to finite differences of the gradient, on an MLP loss", async () => {
  const rng = new Random(32);
  const x = rand(cpu, [7, 4], rng);
  const y = oneHot([0, 1, 2, 0, 1, 2, 0], 3, { backend: cpu, dtype: "float64" });
  const params = mlpParams(cpu, [4, 5, 3], rng, "float64");
  const loss = (...p: Tensor[]) => softmaxCrossEntropy(y).value(mlp(x, "tanh")(...p));
  const u = params.map((p) => rand(cpu, [...p.shape], rng));
  const v = params.map((p) => rand(cpu, [...p.shape], rng));
  const hu = hvp(loss, params, u);
  const hv = hvp(loss, params, v);
  let uhv = 0;
  let vhu = 0;
  for (let i = 0; i < params.length; i++) {
    uhv += dotHost(await host(u[i]), await host(hv[i]));
    vhu += dotHost(await host(v[i]), await host(hu[i]));
  }
  assert.ok(Math.abs(uhv - vhu) <= 1e-12 * (Math.abs(uhv) + 1), `<u,Hv>=${uhv} <Hu,v>=${vhu}`);
  // H v against central differences of the gradient.
  const vHost = await Promise.all(v.map(host));
  for (let i = 0; i < params.length; i++) {
    const gi = (...p: Tensor[]) => grad(loss)(...p)[i];
    const want = await fd(gi, params, vHost, 1e-5);
    assertNear(await host(hv[i]), want, 1e-6, 1e-9, `H v block ${i}`);
  }
});

// --- Gauss-Newton-vector products ---------------------------------------------------------------

/** The explicit Jacobian of f at params (rows: outputs, columns: flattened params) via jvp. */
async function explicitJacobian(
  f: (...p: Tensor[]) => Tensor,
  params: Tensor[],
): Promise<number[][]> {
  const sizes = params.map((p) => p.size);
  const total = sizes.reduce((a, b) => a + b, 0);
  const cols: number[][] = [];
  for (let j = 0; j < total; j++) {
    let offset = 0;
    const e = params.map((p, k) => {
      const d = new Float64Array(p.size);
      if (j >= offset && j < offset + sizes[k]) d[j - offset] = 1;
      offset += sizes[k];
      return tensor(d, p.shape, { backend: cpu, dtype: "float64" });
    });
    const [[y], [t]] = jvp(f, params, e);
    cols.push(await host(t));
    y.dispose();
    t.dispose();
  }
  return cols[0].map((_, i) => cols.map((c) => c[i]));
}

Deno.test("ggnvp: equals J^T H_L J v from explicit Jacobians, is PSD, on a tiny classifier", async () => {
  const rng = new Random(40);
  const x = rand(cpu, [5, 3], rng);
  const labels = [0, 2, 1, 1, 0];
  const y = oneHot(labels, 3, { backend: cpu, dtype: "float64" });
  const params = mlpParams(cpu, [3, 4, 3], rng, "float64");
  const model = mlp(x, "sigmoid");
  const J = await explicitJacobian(model, params);
  const z = await host(model(...params));
  // Explicit H_L for mean softmax cross-entropy: per row (diag(s) - s s^T) / N.
  const N = 5;
  const C = 3;
  const H = Array.from({ length: N * C }, () => new Array(N * C).fill(0));
  for (let r = 0; r < N; r++) {
    const row = z.slice(r * C, r * C + C);
    const m = Math.max(...row);
    const e = row.map((t) => Math.exp(t - m));
    const s = e.map((t) => t / e.reduce((a, b) => a + b, 0));
    for (let i = 0; i < C; i++) {
      for (let j = 0; j < C; j++) {
        H[r * C + i][r * C + j] = ((i === j ? s[i] : 0) - s[i] * s[j]) / N;
      }
    }
  }
  const loss = softmaxCrossEntropy(y);
  const G = ggnLinearize(model, loss, params);
  for (let trial = 0; trial < 3; trial++) {
    const v = params.map((p) => rand(cpu, [...p.shape], rng));
    const vFlat = (await Promise.all(v.map(host))).flat();
    const jv = J.map((row) => dotHost(row, vFlat));
    const hjv = H.map((row) => dotHost(row, jv));
    const want = J[0].map((_, j) => J.reduce((s, row, i) => s + row[j] * hjv[i], 0));
    const got = (await Promise.all(G.apply(...v).map(host))).flat();
    assertNear(got, want, 1e-10, 1e-13, "G v");
    assert.ok(dotHost(vFlat, got) >= -1e-14, "<v, G v> >= 0");
    // The one-shot form agrees with the linearized form.
    const once = (await Promise.all(ggnvp(model, loss, params, v).map(host))).flat();
    assertNear(once, got, 1e-12, 1e-15, "ggnvp vs ggnLinearize");
  }
  G.dispose();
});

Deno.test("ggnvp: for a linear model with squared error, G equals the Hessian", async () => {
  const rng = new Random(41);
  const x = rand(cpu, [6, 4], rng);
  const t = rand(cpu, [6, 2], rng);
  const model = (w: Tensor, b: Tensor) => o.add(o.matmul(x, w), b);
  const loss = meanSquaredError(t);
  const params = [rand(cpu, [4, 2], rng), rand(cpu, [2], rng)];
  const v = [rand(cpu, [4, 2], rng), rand(cpu, [2], rng)];
  const gv = ggnvp(model, loss, params, v);
  const hv = hvp((w, b) => loss.value(model(w, b)), params, v);
  for (let i = 0; i < 2; i++) {
    assertNear(await host(gv[i]), await host(hv[i]), 1e-12, 1e-14, `block ${i}`);
  }
});

// --- nesting ----------------------------------------------------------------------------------

Deno.test("nesting: jvp of jvp, jvp of grad, grad of grad match finite differences", async () => {
  const rng = new Random(50);
  const x = rand(cpu, [4], rng);
  const v = rand(cpu, [4], rng);
  const w = rand(cpu, [4], rng);
  const vHost = await host(v);
  const wHost = await host(w);
  const f = (x: Tensor) => o.sum(o.mul(o.tanh(x), o.exp(x)));
  // d/dt d/ds f(x + s v + t w) = w^T H v
  const inner = (x: Tensor) => jvp(f, [x], [v])[1][0];
  const [[,], [second]] = jvp(inner, [x], [w]);
  const gdot = (x: Tensor) => o.sum(o.mul(grad(f)(x)[0], v));
  const want = dotHost(await fd((x) => grad(f)(x)[0], [x], [wHost], 1e-5), vHost);
  assertNear([(await host(second))[0]], [want], 1e-7, 1e-9, "jvp of jvp");
  const [[,], [jg]] = jvp((x) => grad(f)(x)[0], [x], [w]);
  assertNear([dotHost(await host(jg), vHost)], [want], 1e-7, 1e-9, "jvp of grad");
  const [gg] = grad(gdot)(x);
  assertNear([dotHost(await host(gg), wHost)], [want], 1e-7, 1e-9, "grad of grad");
  // A scalar function: second derivative of x^3 is 6x; third is 6.
  const s = tensor([1.5], [1], { backend: cpu, dtype: "float64" });
  const cube = (x: Tensor) => o.sum(o.mul(o.square(x), x));
  const d1 = (x: Tensor) => o.sum(grad(cube)(x)[0]);
  const d2 = (x: Tensor) => o.sum(grad(d1)(x)[0]);
  assertNear(await host(grad(d1)(s)[0]), [9], 1e-12, 0, "d2 x^3 at 1.5");
  assertNear(await host(grad(d2)(s)[0]), [6], 1e-12, 0, "d3 x^3");
  const [val, [g]] = valueAndGrad(cube)(s);
  assertNear([...await host(val), ...await host(g)], [3.375, 6.75], 1e-12, 0, "valueAndGrad");
});

// --- errors and memory --------------------------------------------------------------------------

Deno.test("autodiff: clear errors for misuse", () => {
  const x = tensor([1, 2, 3], undefined, { backend: cpu });
  assert.throws(() => grad((x) => o.exp(x))(x), /must return a scalar, got shape \[3\]/);
  assert.throws(
    () => jvp((x) => x, [x], [tensor([1, 2], undefined, { backend: cpu })]),
    /tangent 0 has shape \[2\]/,
  );
  assert.throws(
    () =>
      o.matmul(
        tensor([[1, 2]], undefined, { backend: cpu }),
        tensor([[1, 2]], undefined, { backend: cpu }),
      ),
    /matmul: shapes \[1, 2\] and \[1, 2\]/,
  );
  let leaked: Tensor | undefined;
  jvp((x) => (leaked = o.exp(x)), [x], [x]);
  assert.throws(() => o.exp(leaked!), /already returned/);
  if (gpu) {
    const g = tensor([1, 2, 3], undefined, { backend: gpu });
    assert.throws(() => o.add(x, g), /different backends \(cpu and webgpu\)/);
  }
});

for (const be of [cpu, gpu].filter((b): b is NonNullable<typeof b> => !!b)) {
  Deno.test(`memory (${be.name}): 1,000 Gauss-Newton-vector products keep the live buffer count flat`, async () => {
    const rng = new Random(60);
    const x = rand(be, [32, 10], rng, "float32");
    const y = oneHot(Array.from({ length: 32 }, (_, i) => i % 4), 4, { backend: be });
    const params = mlpParams(be, [10, 8, 4], rng, "float32");
    const v = params.map((p) => rand(be, [...p.shape], rng, "float32"));
    const loss = softmaxCrossEntropy(y);
    const model = mlp(x, "sigmoid");
    // Warm up once (constants such as scalars are cached), then count.
    for (const g of ggnvp(model, loss, params, v)) g.dispose();
    const start = be.liveBuffers();
    const G = ggnLinearize(model, loss, params);
    // The first product caches derivative factors on the tape (one per node); then flat.
    G.apply(...v).forEach((t) => t.dispose());
    const mid = be.liveBuffers();
    for (let i = 0; i < 1000; i++) {
      const gv = i % 2 ? G.apply(...v) : ggnvp(model, loss, params, v);
      gv.forEach((t) => t.dispose());
      if (i % 100 === 0) assert.equal(be.liveBuffers(), mid, `after ${i} products`);
    }
    const last = G.apply(...v);
    assert.ok((await last[0].data()).every(Number.isFinite));
    last.forEach((t) => t.dispose());
    G.dispose();
    assert.equal(be.liveBuffers(), start);
  });
}
