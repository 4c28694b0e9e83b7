/**
 * linalg/: Lanczos, Hutchinson, stochastic Lanczos quadrature and the tridiagonal eigensolver,
 * against independent dense computations in float64 (tests/dense_linalg.ts: a cyclic Jacobi
 * eigensolver, dense products) and finite differences: generated symmetric matrices with
 * well-separated extreme eigenvalues (to 1e-8 relative), Hutchinson within its variance, the
 * density's mass, breakdown, k > dimension, the damped and Hessian operators, and bad input.
 */

import assert from "node:assert/strict";
import { SgnError } from "../errors.ts";
import { scope, type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { grad } from "../autodiff/transforms.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { mlp } from "../models/networks.ts";
import {
  dampedOperator,
  ggnOperator,
  hessianOperator,
  type LinearOperator,
  matrixOperator,
} from "../linalg/operator.ts";
import {
  hutchinson,
  lanczos,
  spectralDensity,
  stochasticLanczosQuadrature,
} from "../linalg/spectra.ts";
import { tridiagonalEigen } from "../linalg/tridiagonal.ts";
import { ggnDiagnostics } from "../linalg/diagnostics.ts";
import { cpu, Random } from "./harness.ts";
import { fc, fuzzSeconds, property } from "./property.ts";
import {
  denseOf,
  denseOp,
  frobenius,
  jacobi,
  matvec,
  norm,
  relClose,
  symmetricWithSpectrum,
} from "./dense_linalg.ts";

// --- the tridiagonal eigensolver ---------------------------------------------------------------

property(
  "tridiagonalEigen: eigenvalues equal Jacobi's, eigenvectors are orthonormal eigenvectors",
  fc.integer({ min: 1, max: 24 }).chain((k) =>
    fc.record({
      d: fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: k, maxLength: k }),
      // Some couplings exactly zero (a split matrix), some tiny, the rest of any size.
      e: fc.array(
        fc.oneof(
          fc.constant(0),
          fc.double({ min: -1e-9, max: 1e-9, noNaN: true }),
          fc.double({ min: -5, max: 5, noNaN: true }),
        ),
        { minLength: k - 1, maxLength: k - 1 },
      ),
    })
  ),
  200,
  ({ d, e }) => {
    const k = d.length;
    const dense = new Float64Array(k * k);
    for (let i = 0; i < k; i++) dense[i * k + i] = d[i];
    for (let i = 0; i + 1 < k; i++) {
      dense[i * k + i + 1] = e[i];
      dense[(i + 1) * k + i] = e[i];
    }
    // k times the largest entry bounds the norm (and does not underflow as squares would).
    const scale = k * dense.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const { values, vectors } = tridiagonalEigen(d, e);
    const ref = jacobi(dense, k).values;
    for (let i = 0; i < k; i++) {
      assert.ok(
        Math.abs(values[i] - ref[i]) <= 1e-13 * scale,
        `eigenvalue ${i}: ${values[i]} vs Jacobi ${ref[i]}`,
      );
    }
    for (let i = 0; i < k; i++) {
      const y = Float64Array.from({ length: k }, (_, r) => vectors[r * k + i]);
      const ty = matvec(dense, y, k);
      for (let r = 0; r < k; r++) ty[r] -= values[i] * y[r];
      assert.ok(norm(ty) <= 1e-13 * scale, `T y - lambda y for eigenvalue ${i}: ${norm(ty)}`);
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let r = 0; r < k; r++) s += y[r] * vectors[r * k + j];
        assert.ok(Math.abs(s - (i === j ? 1 : 0)) <= 1e-12, `y${i} . y${j} = ${s}`);
      }
    }
  },
);

Deno.test("tridiagonalEigen: bad input is an SgnError", () => {
  assert.throws(() => tridiagonalEigen([], []), SgnError);
  assert.throws(() => tridiagonalEigen([1, 2], []), /2 diagonal entries need 1 off-diagonal/);
  assert.throws(() => tridiagonalEigen([1, NaN], [0]), /entry 1 is not finite/);
});

// --- Lanczos on generated matrices -------------------------------------------------------------

/**
 * A spectrum with well-separated extremes: interior eigenvalues in [-1, 1], the top in [2, 10]
 * and the bottom in [-10, -2]; shifted to be positive definite (bottom >= 1) half the time, as a
 * Gauss-Newton matrix is.
 */
const spectrum = fc.record({
  n: fc.integer({ min: 3, max: 40 }),
  top: fc.double({ min: 2, max: 10, noNaN: true }),
  bottom: fc.double({ min: 2, max: 10, noNaN: true }),
  psd: fc.boolean(),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
}).map(({ n, top, bottom, psd, seed }) => {
  const rng = new Random(seed + 1);
  const lambda = [top, -bottom, ...rng.array(n - 2, (r) => r.range(-1, 1))];
  const shift = psd ? bottom + 1 + rng.uniform() : 0;
  return { n, seed, lambda: lambda.map((l) => l + shift) };
});

property(
  "lanczos: extreme Ritz values equal Jacobi's extreme eigenvalues to 1e-8 relative (float64)",
  spectrum,
  30,
  async ({ n, seed, lambda }) => {
    const a = symmetricWithSpectrum(lambda, seed);
    const ref = jacobi(a, n).values;
    const op = denseOp(a, n);
    const k = Math.min(n, 30);
    const run = await lanczos(op, k, { seed, vectors: true });
    assert.equal(run.steps, k);
    assert.equal(run.breakdown, false);
    relClose(run.values[k - 1], ref[n - 1], 1e-8, "top eigenvalue");
    relClose(run.values[0], ref[0], 1e-8, "bottom eigenvalue");
    const scale = frobenius(a);
    if (k === n) {
      // The whole spectrum, interior included (what full reorthogonalization buys).
      for (let i = 0; i < n; i++) {
        assert.ok(
          Math.abs(run.values[i] - ref[i]) <= 1e-10 * scale,
          `eigenvalue ${i}: ${run.values[i]} vs ${ref[i]}`,
        );
      }
    }
    // The Ritz vectors: unit, orthogonal, and A y - theta y as small as `residuals` says.
    const ys = run.vectors!;
    for (const i of [0, k - 1]) {
      assert.ok(Math.abs(norm(ys[i]) - 1) < 1e-10, `|y${i}| = ${norm(ys[i])}`);
      const r = matvec(a, ys[i], n);
      for (let t = 0; t < n; t++) r[t] -= run.values[i] * ys[i][t];
      assert.ok(
        Math.abs(norm(r) - run.residuals[i]) <= 1e-9 * scale,
        `residual of Ritz pair ${i}: ${norm(r)} vs ${run.residuals[i]}`,
      );
    }
    let ortho = 0;
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < i; j++) {
        let s = 0;
        for (let t = 0; t < n; t++) s += ys[i][t] * ys[j][t];
        ortho = Math.max(ortho, Math.abs(s));
      }
    }
    assert.ok(ortho < 1e-9, `Ritz vectors not orthogonal: ${ortho}`);
    // Same seed, same run; the T it reports has the Ritz values as eigenvalues.
    const again = await lanczos(op, k, { seed });
    assert.deepEqual(again.alphas, run.alphas);
    const t = tridiagonalEigen(run.alphas, run.betas).values;
    assert.deepEqual(t, run.values);
  },
);

Deno.test("lanczos: k beyond the dimension stops at the dimension with the whole spectrum", async () => {
  const lambda = [5, -3, 0.5, 0.25, 2];
  const a = symmetricWithSpectrum(lambda, 7);
  const run = await lanczos(denseOp(a, 5), 12);
  assert.equal(run.steps, 5);
  assert.equal(run.breakdown, false);
  assert.equal(run.betas.length, 4);
  const ref = jacobi(a, 5).values;
  [...lambda].sort((x, y) => x - y).forEach((l, i) => {
    assert.ok(Math.abs(ref[i] - l) < 1e-12, "Jacobi");
    assert.ok(Math.abs(run.values[i] - l) < 1e-12, `${run.values[i]} vs ${l}`);
  });
  assert.ok(Math.abs(run.weights.reduce((s, w) => s + w, 0) - 1) < 1e-12);
});

Deno.test("lanczos: breakdown on an invariant subspace stops early with exact eigenvalues", async () => {
  // Three distinct eigenvalues: every Krylov space has dimension at most 3.
  const lambda = [1, 1, 1, 3, 3, 7, 7, 7, 7, 1];
  const a = symmetricWithSpectrum(lambda, 11);
  const op = denseOp(a, 10);
  const run = await lanczos(op, 8, { seed: 2 });
  assert.equal(run.breakdown, true);
  assert.equal(run.steps, 3);
  assert.equal(run.alphas.length, 3);
  assert.equal(run.betas.length, 2);
  [1, 3, 7].forEach((l, i) => assert.ok(Math.abs(run.values[i] - l) < 1e-12, `${run.values}`));
  // An eigenvector as the start: one step, its eigenvalue.
  const { vectors } = jacobi(a, 10);
  const top = Float64Array.from({ length: 10 }, (_, r) => vectors[r * 10 + 9]);
  const one = await lanczos(op, 5, { start: top });
  assert.equal(one.steps, 1);
  assert.equal(one.breakdown, true);
  assert.ok(Math.abs(one.values[0] - 7) < 1e-12);
  // The zero operator breaks down at once.
  const zero = await lanczos(denseOp(new Float64Array(16), 4), 3);
  assert.deepEqual([zero.steps, zero.breakdown, zero.values[0]], [1, true, 0]);
});

Deno.test("lanczos: the Gauss quadrature of the start vector is exact for degrees below 2k", async () => {
  const n = 12;
  const rng = new Random(5);
  const a = symmetricWithSpectrum(rng.array(n, (r) => r.range(-2, 3)), 5);
  const q = rng.array(n, (r) => r.normal());
  const k = 4;
  const run = await lanczos(denseOp(a, n), k, { start: q });
  const qn = q.map((x) => x / norm(q));
  let power: Float64Array = Float64Array.from(qn); // A^p q
  const scale = frobenius(a);
  for (let p = 0; p < 2 * k; p++) {
    const exact = power.reduce((s, x, i) => s + x * qn[i], 0);
    const quad = run.values.reduce((s, t, i) => s + run.weights[i] * t ** p, 0);
    assert.ok(
      Math.abs(quad - exact) <= 1e-10 * scale ** p,
      `moment ${p}: quadrature ${quad}, q^T A^p q ${exact}`,
    );
    power = matvec(a, power, n);
  }
});

Deno.test("dampedOperator shifts every Ritz value by rho; hessianOperator matches finite differences", async () => {
  const a = symmetricWithSpectrum([4, 1, -2, 0.5, 3, -1], 3);
  const plain = await lanczos(denseOp(a, 6), 6, { seed: 9 });
  const damped = await lanczos(dampedOperator(denseOp(a, 6), 0.25), 6, { seed: 9 });
  plain.values.forEach((v, i) => assert.ok(Math.abs(damped.values[i] - v - 0.25) < 1e-12));

  // A small network's loss: its Hessian (indefinite) column by column, against central
  // differences of the gradient, then Lanczos against Jacobi on it.
  const net = mlp({ inputs: 2, hidden: [3], outputs: 2, activation: "sigmoid" });
  const params = net.init({ seed: 4, backend: cpu, dtype: "float64" });
  const x = tensor([[0.5, -1], [1, 2], [-0.3, 0.8]], undefined, { backend: cpu, dtype: "float64" });
  const loss = softmaxCrossEntropy(oneHot([0, 1, 1], 2, { backend: cpu, dtype: "float64" }));
  const f = (...p: Tensor[]) => loss.value(net.forward(p, x));
  const op = hessianOperator(f, params);
  const n = op.dimension;
  assert.equal(n, net.paramCount);
  const h = await denseOf(op);
  const flat = Float64Array.from(
    (await Promise.all(params.map((p) => p.data()))).flatMap((d) => Array.from(d)),
  );
  const gradAt = async (theta: Float64Array) => {
    let at = 0;
    const ps = params.map((p) => {
      const t = tensor(theta.subarray(at, at + p.size), p.shape, {
        backend: cpu,
        dtype: "float64",
      });
      at += p.size;
      return t;
    });
    const gs = grad(f)(...ps);
    const out = (await Promise.all(gs.map((g) => g.data()))).flatMap((d) => Array.from(d));
    [...ps, ...gs].forEach((t) => t.dispose());
    return out;
  };
  const eps = 1e-5;
  for (let i = 0; i < n; i++) {
    const up = Float64Array.from(flat);
    const down = Float64Array.from(flat);
    up[i] += eps;
    down[i] -= eps;
    const [gu, gd] = [await gradAt(up), await gradAt(down)];
    for (let r = 0; r < n; r++) {
      const fd = (gu[r] - gd[r]) / (2 * eps);
      assert.ok(
        Math.abs(h[r * n + i] - fd) <= 1e-6 * (1 + Math.abs(fd)),
        `H[${r}, ${i}] = ${h[r * n + i]}, central differences ${fd}`,
      );
    }
  }
  const ref = jacobi(h, n).values;
  assert.ok(ref[0] < 0, "the Hessian of this loss is indefinite");
  const run = await lanczos(op, n + 2, { seed: 1 });
  relClose(run.values[run.steps - 1], ref[n - 1], 1e-8, "top Hessian eigenvalue");
  relClose(run.values[0], ref[0], 1e-8, "bottom Hessian eigenvalue");
  [...params, x].forEach((t) => t.dispose());
});

// --- Hutchinson ----------------------------------------------------------------------------------

// Four standard errors in the suite (its fixed seed's cases); six when fuzzing, which draws
// thousands of cases: a normal variable exceeds four once in 16,000 draws, six once in 500
// million.
property(
  "hutchinson: within 4 standard errors of the exact trace, with the Rademacher variance",
  fc.record({
    n: fc.integer({ min: 2, max: 20 }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  }),
  20,
  async ({ n, seed }) => {
    const rng = new Random(seed);
    const a = symmetricWithSpectrum(rng.array(n, (r) => r.range(-3, 5)), seed);
    let trace = 0;
    let off = 0;
    for (let i = 0; i < n; i++) {
      trace += a[i * n + i];
      for (let j = 0; j < n; j++) if (i !== j) off += a[i * n + j] ** 2;
    }
    const samples = 400;
    const h = await hutchinson(denseOp(a, n), samples, { seed });
    const exactSe = Math.sqrt(2 * off / samples);
    assert.equal(h.values.length, samples);
    assert.ok(
      Math.abs(h.estimate - trace) <= (fuzzSeconds() === undefined ? 4 : 6) * exactSe,
      `estimate ${h.estimate}, trace ${trace}, standard error ${exactSe}`,
    );
    // The sample standard error estimates the exact one (its relative spread is ~5% here).
    assert.ok(
      h.stdError > 0.6 * exactSe && h.stdError < 1.5 * exactSe,
      `standard error ${h.stdError}, exact ${exactSe}`,
    );
    // Each probe's z^T A z against the dense product, and the mean of them.
    assert.ok(Math.abs(h.values.reduce((s, v) => s + v, 0) / samples - h.estimate) < 1e-9);
  },
);

Deno.test("hutchinson: a diagonal's trace is exact with standard error 0; one probe has none", async () => {
  const a = new Float64Array(9);
  [2, -1, 5].forEach((v, i) => (a[i * 3 + i] = v));
  const h = await hutchinson(denseOp(a, 3), 7);
  assert.equal(h.estimate, 6);
  assert.equal(h.stdError, 0);
  assert.ok(Number.isNaN((await hutchinson(denseOp(a, 3), 1)).stdError));
});

// --- stochastic Lanczos quadrature ---------------------------------------------------------------

Deno.test("spectral density: weights sum to 1 per probe, the density integrates to 1", async () => {
  const n = 30;
  const rng = new Random(12);
  const lambda = [...rng.array(25, (r) => r.range(0, 1)), 8, 9, 10, 0, 0];
  const a = symmetricWithSpectrum(lambda, 12);
  const q = await stochasticLanczosQuadrature(denseOp(a, n), { probes: 5, steps: 12, seed: 3 });
  assert.equal(q.nodes.length, 5);
  for (let p = 0; p < 5; p++) {
    assert.equal(q.nodes[p].length, 12);
    assert.ok(Math.abs(q.weights[p].reduce((s, w) => s + w, 0) - 1) < 1e-12);
    // The extreme nodes sit on the extreme eigenvalues.
    assert.ok(Math.abs(q.nodes[p][11] - 10) < 1e-6, `${q.nodes[p][11]}`);
  }
  // The mean first moment of a unit Rademacher probe is trace / n exactly in expectation.
  for (const options of [{}, { points: 1000, sigma: 0.05 }]) {
    const { grid, density, sigma } = spectralDensity(q, options);
    let mass = 0;
    for (let i = 1; i < grid.length; i++) {
      mass += (grid[i] - grid[i - 1]) * (density[i] + density[i - 1]) / 2;
    }
    assert.ok(Math.abs(mass - 1) < 1e-5, `mass ${mass} (sigma ${sigma})`);
    assert.ok(density.every((v) => v >= 0));
  }
  // Four peaks' worth of mass near 8, 9, 10 out of 30: 3/30 of it above 7.5.
  const { grid, density } = spectralDensity(q, { points: 2000, sigma: 0.05 });
  let high = 0;
  for (let i = 1; i < grid.length; i++) {
    if (grid[i] > 7.5) high += (grid[i] - grid[i - 1]) * (density[i] + density[i - 1]) / 2;
  }
  assert.ok(high > 0.02 && high < 0.25, `mass above 7.5: ${high}`);
});

// --- bad input -----------------------------------------------------------------------------------

Deno.test("spectra: bad input is an SgnError that says what was wrong", async () => {
  const a = new Float64Array([2, 1, 1, 3]);
  const op = denseOp(a, 2);
  await assert.rejects(
    () => lanczos(op, 0),
    /lanczos: the number of steps k must be a positive integer, got 0/,
  );
  await assert.rejects(() => lanczos(op, 1.5), SgnError);
  await assert.rejects(
    () => lanczos(op, 2, { start: [1, 2, 3] }),
    /start vector has 3 entries, the operator's dimension is 2/,
  );
  await assert.rejects(() => lanczos(op, 2, { start: [0, 0] }), /must be finite and not zero/);
  await assert.rejects(() => lanczos(op, 2, { seed: 0.5 }), /seed must be an integer/);
  await assert.rejects(() => lanczos(op, 2, { breakdownTol: -1 }), /breakdownTol/);
  await assert.rejects(
    () => hutchinson(op, 0),
    /hutchinson: samples must be a positive integer, got 0/,
  );
  await assert.rejects(() => hutchinson({} as LinearOperator, 3), /must have an apply\(v\) method/);
  await assert.rejects(
    () => lanczos({ ...op, dimension: -1 }, 2),
    /dimension must be a positive integer, got -1/,
  );
  const wrong: LinearOperator = {
    ...op,
    apply: (v) => scope(() => o.concat([v, v])),
  };
  await assert.rejects(
    () => lanczos(wrong, 2),
    /returned a tensor of shape \[4\] float64, expected \[2\] float64/,
  );
  await assert.rejects(() => hutchinson(wrong, 2), /returned a tensor of shape \[4\]/);
  const nan = denseOp(new Float64Array([NaN, 0, 0, 1]), 2);
  await assert.rejects(() => lanczos(nan, 2), /operator's products are not finite/);
  await assert.rejects(
    () => stochasticLanczosQuadrature(op, { probes: 0 }),
    /probes must be a positive integer/,
  );
  await assert.rejects(
    () => stochasticLanczosQuadrature(op, { steps: -2 }),
    /steps must be a positive integer/,
  );
  assert.throws(
    () => spectralDensity({ nodes: [], weights: [] }),
    /expected what stochasticLanczosQuadrature returns/,
  );
  const q = { nodes: [Float64Array.of(1, 2)], weights: [Float64Array.of(0.5, 0.5)] };
  assert.throws(() => spectralDensity(q, { sigma: 0 }), /sigma must be a positive number/);
  assert.throws(() => spectralDensity(q, { points: 1 }), /at least 2/);
  assert.throws(() => spectralDensity(q, { range: [2, 1] }), /range must be/);
  assert.throws(() => dampedOperator(op, NaN), /rho must be a finite number/);
  assert.throws(
    () => matrixOperator(tensor([1, 2, 3], undefined, { backend: cpu })),
    /expected a square matrix/,
  );
  assert.throws(() => ggnOperator({} as never, []), /expected what ggnLinearize returns/);
  assert.throws(() => hessianOperator("f" as never, []), /must be a scalar function/);
  const net = mlp({ inputs: 1, hidden: [2], outputs: 1 });
  const params = net.init({ backend: cpu });
  const x = tensor([[1]], undefined, { backend: cpu });
  await assert.rejects(
    () => ggnDiagnostics((...p) => net.forward(p, x), meanSquaredError(x), params, { probes: 0 }),
    /ggnDiagnostics: probes must be a positive integer, got 0/,
  );
  [...params, x].forEach((t) => t.dispose());
});
