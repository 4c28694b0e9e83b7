/**
 * linalg/: Lanczos, Hutchinson, stochastic Lanczos quadrature and the tridiagonal eigensolver,
 * against independent dense computations in float64 written here (a cyclic Jacobi eigensolver,
 * dense products, finite differences): generated symmetric matrices with well-separated
 * extreme eigenvalues (to 1e-8 relative), the Gauss-Newton matrix of a small network built
 * column by column on every backend, Hutchinson within its variance, the density's mass,
 * breakdown, k > dimension, and bad input.
 */
import assert from "node:assert/strict";
import { SgnError } from "../errors.ts";
import type { Backend } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import { scope, type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { ggnLinearize, grad } from "../autodiff/transforms.ts";
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
import { dampedCondition, ggnDiagnostics } from "../linalg/diagnostics.ts";
import { backendLabel, backends, cpu, Random } from "./harness.ts";
import { cli } from "./data_files.ts";
import { chromiumIgnore, launchChromium } from "./headless.ts";
import { type DiagnoseOptions, train } from "../train/loop.ts";
import { parseTrainArgs, trainHelp } from "../train/settings.ts";
import { parseResults, truncateRun, writeReport } from "../report/mod.ts";
import type { PageData } from "../report/types.ts";
import { SGN } from "../sgn/sgn.ts";
import { SGD } from "../sgn/baselines.ts";
import { fc, fuzzSeconds, property } from "./property.ts";

// --- independent dense float64 linear algebra --------------------------------------------------

/**
 * Eigenvalues (ascending) and eigenvectors (columns, row-major) of a dense symmetric n x n
 * matrix by cyclic Jacobi rotations, in float64: slow, simple, and accurate to rounding.
 */
function jacobi(a: ArrayLike<number>, n: number): { values: number[]; vectors: Float64Array } {
  // Scaled (by a power of two) to a largest entry near 1, so that squares do not underflow.
  let big = 0;
  for (let i = 0; i < n * n; i++) big = Math.max(big, Math.abs(a[i]));
  const scale = big > 0 ? 2 ** Math.min(1000, Math.max(-1000, -Math.round(Math.log2(big)))) : 1;
  const m = Float64Array.from(a, (x) => x * scale);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (const x of m) total += x * x;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] ** 2;
    if (off <= 1e-32 * total) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (apq === 0) continue;
        const theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A <- J^T A J with J the rotation in the (p, q) plane.
        for (let k = 0; k < n; k++) {
          const akp = m[k * n + p];
          const akq = m[k * n + q];
          m[k * n + p] = c * akp - s * akq;
          m[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = m[p * n + k];
          const aqk = m[q * n + k];
          m[p * n + k] = c * apk - s * aqk;
          m[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  let off = 0;
  for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] ** 2;
  assert.ok(off <= 1e-28 * Math.max(total, 1e-300), `Jacobi did not converge (off ${off})`);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => m[i * n + i] - m[j * n + j]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values: order.map((i) => m[i * n + i] / scale), vectors };
}

/** y = A x for a dense row-major n x n matrix. */
function matvec(a: ArrayLike<number>, x: ArrayLike<number>, n: number): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += a[i * n + j] * x[j];
    y[i] = s;
  }
  return y;
}

function norm(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** Frobenius norm of a dense matrix (a bound on its spectral norm). */
const frobenius = norm;

/**
 * Q diag(lambda) Q^T for a random orthogonal Q (n Householder reflections of Gaussian vectors
 * from `seed`), in float64.
 */
function symmetricWithSpectrum(lambda: ArrayLike<number>, seed: number): Float64Array {
  const n = lambda.length;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = lambda[i];
  const rng = new Random(seed);
  for (let r = 0; r < n; r++) {
    const v = rng.array(n, (g) => g.normal());
    const vv = v.reduce((s, x) => s + x * x, 0);
    // A <- H A H with H = I - 2 v v^T / v^T v.
    const av = matvec(a, v, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] -= 2 * av[i] * v[j] / vv;
    // v^T (A H), a row: A H is not symmetric.
    const va = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) va[j] += v[i] * a[i * n + j];
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] -= 2 * v[i] * va[j] / vv;
  }
  // Exactly symmetric (the reflections leave rounding-level asymmetry).
  symmetrize(a, n);
  return a;
}

/** Makes an n x n matrix exactly symmetric: each pair of entries becomes their mean. */
function symmetrize(a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const s = (a[i * n + j] + a[j * n + i]) / 2;
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
}

/** A dense float64 matrix as an operator on the float64 oracle backend. */
function denseOp(a: Float64Array, n: number, be: Backend = cpu): LinearOperator {
  return matrixOperator(tensor(a, [n, n], { backend: be, dtype: "float64" }));
}

/** The dense matrix of an operator, column by column from A e_i, symmetrized. */
async function denseOf(op: LinearOperator): Promise<Float64Array> {
  const n = op.dimension;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const e = new Float64Array(n);
    e[i] = 1;
    const et = tensor(e, [n], { backend: op.backend, dtype: op.dtype });
    const col = op.apply(et);
    const values = await col.data();
    et.dispose();
    col.dispose();
    for (let r = 0; r < n; r++) a[r * n + i] = values[r];
  }
  symmetrize(a, n);
  return a;
}

function relClose(actual: number, expected: number, rtol: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= rtol * Math.abs(expected),
    `${what}: ${actual}, expected ${expected} (rtol ${rtol}, off by ${
      Math.abs(actual - expected) / Math.abs(expected)
    })`,
  );
}

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

// --- the Gauss-Newton matrix of a small network, on every backend ------------------------------

Deno.test("lanczos and hutchinson on a real G (dense G from G e_i), every backend and dtype", async () => {
  for (const be of await backends()) {
    for (const dtype of be.dtypes as DType[]) {
      const what = `${backendLabel(be)} ${dtype}`;
      const f32 = dtype === "float32";
      const net = mlp({ inputs: 3, hidden: [4], outputs: 2 });
      const params = net.init({ seed: 2, backend: be, dtype });
      const rng = new Random(3);
      const x = tensor(rng.array(5 * 3), [5, 3], { backend: be, dtype });
      const y = tensor(rng.array(5 * 2), [5, 2], { backend: be, dtype });
      const G = ggnLinearize((...p) => net.forward(p, x), meanSquaredError(y), params);
      try {
        const op = ggnOperator(G, params);
        const n = op.dimension;
        assert.equal(n, 3 * 4 + 4 + 4 * 2 + 2);
        const g = await denseOf(op);
        const ref = jacobi(g, n).values;
        // rank G <= 5 samples x 2 outputs = 10 < 26 parameters.
        assert.ok(Math.abs(ref[0]) <= 1e-5 * ref[n - 1], `${what}: G is singular`);
        const run = await lanczos(op, n + 3, { seed: 4 });
        relClose(run.values[run.steps - 1], ref[n - 1], f32 ? 1e-4 : 1e-8, `${what}: top`);
        if (!f32) {
          // The Krylov space of a rank-10 G holds at most 11 directions.
          assert.ok(run.breakdown && run.steps <= 11, `${what}: ${run.steps} steps`);
        }
        const trace = ref.reduce((s, l) => s + l, 0);
        let off = 0;
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) if (i !== j) off += g[i * n + j] ** 2;
        }
        const samples = 200;
        const h = await hutchinson(op, samples, { seed: 6 });
        const exactSe = Math.sqrt(2 * off / samples);
        assert.ok(
          Math.abs(h.estimate - trace) <= 4 * exactSe + (f32 ? 1e-4 * trace : 0),
          `${what}: trace ${h.estimate} vs ${trace} (standard error ${exactSe})`,
        );
        assert.ok(h.stdError > 0.6 * exactSe && h.stdError < 1.5 * exactSe, `${what}: se`);

        const d = await ggnDiagnostics((...p) => net.forward(p, x), meanSquaredError(y), params, {
          lanczosSteps: 12,
          probes: 50,
        });
        relClose(d.topEigenvalue, ref[n - 1], f32 ? 1e-4 : 1e-8, `${what}: diagnostics top`);
        assert.equal(d.singular, true);
        assert.equal(d.bottomEigenvalue, 0);
        assert.ok(Math.abs(d.trace - trace) <= 4 * Math.sqrt(2 * off / 50) + 1e-4 * trace);
      } finally {
        G.dispose();
        [...params, x, y].forEach((t) => t.dispose());
      }
    }
  }
});

Deno.test("ggnDiagnostics: a G with more outputs than parameters has its smallest eigenvalue found", async () => {
  const net = mlp({ inputs: 2, hidden: [2], outputs: 1 });
  const params = net.init({ seed: 1, backend: cpu, dtype: "float64" });
  const rng = new Random(8);
  const x = tensor(rng.array(80, (r) => r.range(-3, 3)), [40, 2], {
    backend: cpu,
    dtype: "float64",
  });
  const y = tensor(rng.array(40), [40, 1], { backend: cpu, dtype: "float64" });
  const loss = meanSquaredError(y);
  const G = ggnLinearize((...p) => net.forward(p, x), loss, params);
  const ref = jacobi(await denseOf(ggnOperator(G, params)), 9).values;
  G.dispose();
  assert.ok(ref[0] > 1e-4, `G of 9 parameters and 40 outputs is regular: ${ref[0]}`);
  const d = await ggnDiagnostics((...p) => net.forward(p, x), loss, params, { lanczosSteps: 9 });
  assert.equal(d.singular, false);
  assert.equal(d.lanczosSteps, 9);
  relClose(d.bottomEigenvalue, ref[0], 1e-6, "bottom");
  relClose(d.topEigenvalue, ref[8], 1e-8, "top");
  relClose(
    dampedCondition(d.topEigenvalue, d.bottomEigenvalue, 0.1),
    (ref[8] + 0.1) / (ref[0] + 0.1),
    1e-8,
    "condition",
  );
  // Fewer steps: the bottom Ritz value is above the smallest eigenvalue (an upper bound).
  const few = await ggnDiagnostics((...p) => net.forward(p, x), loss, params, { lanczosSteps: 3 });
  assert.ok(few.bottomEigenvalue >= ref[0] * (1 - 1e-8), `${few.bottomEigenvalue} < ${ref[0]}`);
  assert.equal(dampedCondition(3, 0, 0), Infinity);
  [...params, x, y].forEach((t) => t.dispose());
});

Deno.test("spectra: every product's buffers are freed (live-buffer count unchanged), every backend", async () => {
  for (const be of await backends()) {
    const dtype: DType = be.dtypes.includes("float64") ? "float64" : "float32";
    const net = mlp({ inputs: 3, hidden: [4], outputs: 2 });
    const params = net.init({ seed: 2, backend: be, dtype });
    const rng = new Random(3);
    const x = tensor(rng.array(15), [5, 3], { backend: be, dtype });
    const y = oneHot([0, 1, 1, 0, 1], 2, { backend: be, dtype });
    const loss = softmaxCrossEntropy(y);
    const model = (...p: Tensor[]) => net.forward(p, x);
    const a = tensor(symmetricWithSpectrum([3, 1, 2, -1], 1), [4, 4], { backend: be, dtype });
    const run = async () => {
      const d = await ggnDiagnostics(model, loss, params, { lanczosSteps: 8, probes: 3 });
      const op = matrixOperator(a);
      await lanczos(dampedOperator(op, 0.5), 4, { vectors: true });
      await hutchinson(op, 3);
      await stochasticLanczosQuadrature(op, { probes: 2, steps: 3 });
      const f = (...p: Tensor[]) => loss.value(model(...p));
      await lanczos(hessianOperator(f, params), 3);
      return d;
    };
    await run(); // caches and pools settle
    const before = be.liveBuffers();
    const d = await run();
    assert.ok(d.topEigenvalue > 0, backendLabel(be));
    assert.equal(be.liveBuffers(), before, `${backendLabel(be)}: live buffers`);
    [...params, x, y, a].forEach((t) => t.dispose());
  }
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

// --- train --diagnose, results.json and the report ---------------------------------------------

Deno.test("train --diagnose 2: results.json's diagnostics, config.json, the same training, the report", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-diagnose-" });
  try {
    const sine = (f: string, ...more: string[]) => [
      "train",
      ...["--dataset", "sine_10", "--layers", "8", "--epochs", "2", "--batch_size", "500"],
      ...["--cg_max_iter", "3", "--backend", "cpu", "--path", `${dir}/sine_10`, "--f", f],
      ...more,
    ];
    const on = await cli(...sine("res_SGN_3_1", "--diagnose", "2", "--diagnose_probes", "4"));
    assert.equal(on.code, 0, on.stderr);
    const off = await cli(...sine("plain"));
    assert.equal(off.code, 0, off.stderr);
    const read = async (f: string, file: string) =>
      JSON.parse(await Deno.readTextFile(`${dir}/sine_10/${f}/${file}`));
    const results = await read("res_SGN_3_1", "results.json");
    const plain = await read("plain", "results.json");
    // 7,000 samples in batches of 500: 14 steps an epoch, 28 in all, measured before steps
    // 1, 3, ..., 27.
    assert.equal(results.tot_iterations, 28);
    const d = results.diagnostics;
    assert.deepEqual(Object.keys(d), [
      "step",
      "epoch",
      "top_eigenvalue",
      "bottom_eigenvalue",
      "trace",
      "trace_std_error",
      "rho",
      "condition",
    ]);
    assert.deepEqual(d.step, Array.from({ length: 14 }, (_, i) => 2 * i + 1));
    assert.deepEqual(d.epoch, d.step.map((s: number) => (s <= 14 ? 1 : 2)));
    for (const key of Object.keys(d)) assert.equal(d[key].length, 14, key);
    d.step.forEach((s: number, i: number) => {
      assert.equal(d.rho[i], results.rho[s - 1], "the damping of that SGN step");
      assert.ok(d.top_eigenvalue[i] > 0 && d.trace[i] > 0 && d.trace_std_error[i] > 0);
      // 25 parameters, 500 outputs: G need not be singular; its bottom is a Ritz value.
      assert.ok(d.bottom_eigenvalue[i] >= 0 && d.bottom_eigenvalue[i] < d.top_eigenvalue[i]);
      const cond = (d.top_eigenvalue[i] + d.rho[i]) / (d.bottom_eigenvalue[i] + d.rho[i]);
      assert.ok(Math.abs(d.condition[i] - cond) <= 1e-12 * cond);
    });
    // Diagnosing changes nothing in the training, and is off (and unwritten) by default.
    assert.deepEqual(results.avg_loss, plain.avg_loss);
    assert.deepEqual(results.rho, plain.rho);
    assert.equal("diagnostics" in plain, false);
    const config = await read("res_SGN_3_1", "config.json");
    assert.deepEqual(
      [config.diagnose, config.diagnose_lanczos, config.diagnose_probes],
      [2, 20, 4],
    );
    const plainConfig = await read("plain", "config.json");
    assert.equal(Object.keys(plainConfig).some((k) => k.startsWith("diagnose")), false);

    // The report embeds them per run and draws three charts.
    const out = `${dir}/report.html`;
    const summary = await writeReport(
      [`ours=${dir}/sine_10/res_SGN_3_1`, `plain=${dir}/sine_10/plain`],
      out,
    );
    assert.equal(summary.runs, 2);
    const html = await Deno.readTextFile(out);
    const data = JSON.parse(
      /<script type="application\/json" id="sgn-data">(.*?)<\/script>/s
        .exec(html)![1],
    ) as PageData;
    assert.equal(data.diagnostics!.length, 1);
    const pd = data.diagnostics![0];
    assert.equal(pd.label, "ours sine_10 SGN_3 seed 1");
    assert.deepEqual(pd.step, d.step);
    pd.topEigenvalue.forEach((v, i) => assert.ok(Math.abs(v! - d.top_eigenvalue[i]) <= 5e-6 * v!));
    assert.equal(pd.color, data.groups[pd.group].color);
    assert.match(html, /<canvas id="chart-diag-condition">/);
    assert.match(html, /Curvature diagnostics \(train --diagnose\)/);
    // A report without diagnostics has no such section.
    await writeReport([`${dir}/sine_10/plain`], `${dir}/plain.html`);
    const none = await Deno.readTextFile(`${dir}/plain.html`);
    assert.doesNotMatch(none, /<canvas id="chart-diag/);
    assert.doesNotMatch(none, /Curvature diagnostics/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "report page in Chromium: the diagnostic charts draw each run's values, gaps and all",
  ignore: chromiumIgnore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "sgn-diagnose-page-" });
    try {
      const run = (seed: number, top: (number | null)[], condition: (number | null)[]) => {
        const results = {
          avg_loss: [1, 0.5],
          test_loss: [1, 0.6],
          epoch_time: [1, 2],
          tot_time: 2,
          tot_iterations: 6,
          diagnostics: {
            step: [1, 3, 5],
            epoch: [1, 1, 2],
            top_eigenvalue: top,
            bottom_eigenvalue: [0, 0, 0],
            trace: [10, 20, 30],
            trace_std_error: [1, 1, 1],
            rho: [0.1, 0.1, 0.1],
            condition,
          },
        };
        const folder = `${dir}/sine_10/res_SGN_3_${seed}`;
        Deno.mkdirSync(folder, { recursive: true });
        Deno.writeTextFileSync(`${folder}/results.json`, JSON.stringify(results));
      };
      // Seed 2: a measurement that failed (null) and an infinite condition (null).
      run(1, [3, 2, 1], [31, 21, 11]);
      run(2, [4, null, 2], [41, null, 21]);
      const out = `${dir}/report.html`;
      await writeReport([`ours=${dir}`], out);
      await using browser = await launchChromium();
      const page = await browser.open(`file://${out}`);
      await page.waitFor("globalThis.sgnReport?.ready");
      const drawn = () =>
        page.evaluate<[string, string, string, [number, number][][]][]>(
          `Object.entries(sgnReport.diagnostics).map(([view, c]) => [view, c.scales.y.type,
            c.options.plugins.title.text, c.data.datasets.map((d, i) =>
              c.getDatasetMeta(i).data.filter((p) => !p.skip).map((p) =>
                [c.scales.x.getValueForPixel(p.x), c.scales.y.getValueForPixel(p.y)]))])`,
        );
      const views = await drawn();
      assert.deepEqual(views.map((v) => v.slice(0, 3)), [
        ["top", "logarithmic", "Top eigenvalue of G"],
        ["trace", "logarithmic", "Trace of G (Hutchinson)"],
        ["condition", "logarithmic", "Condition number of G + rho I"],
      ]);
      const expected = {
        top: [[[1, 3], [3, 2], [5, 1]], [[1, 4], [5, 2]]],
        trace: [[[1, 10], [3, 20], [5, 30]], [[1, 10], [3, 20], [5, 30]]],
        condition: [[[1, 31], [3, 21], [5, 11]], [[1, 41], [5, 21]]],
      };
      for (const [view, , , lines] of views) {
        const want = expected[view as keyof typeof expected];
        assert.equal(lines.length, 2, view);
        lines.forEach((points, i) => {
          assert.equal(points.length, want[i].length, `${view} run ${i + 1}: ${points}`);
          points.forEach(([x, y], k) => {
            assert.ok(Math.abs(x - want[i][k][0]) < 1e-6, `${view}: x ${x}`);
            assert.ok(Math.abs(y - want[i][k][1]) < 1e-6 * want[i][k][1], `${view}: y ${y}`);
          });
        });
      }
      const labels = await page.evaluate<string[]>(
        "sgnReport.diagnostics.top.data.datasets.map((d) => d.label)",
      );
      assert.deepEqual(labels, ["ours sine_10 SGN_3 seed 1", "ours sine_10 SGN_3 seed 2"]);
      // Linear axes on request; the legend hides a group in these charts too.
      await page.evaluate("document.getElementById('log-diagnostics').click()");
      assert.equal(
        await page.evaluate<string>("sgnReport.diagnostics.trace.scales.y.type"),
        "linear",
      );
      await page.evaluate("document.querySelector('#legend .entry').click()");
      assert.deepEqual(
        await page.evaluate<boolean[]>(
          "sgnReport.diagnostics.condition.data.datasets.map((d) => d.hidden)",
        ),
        [true, true],
      );
      assert.deepEqual(page.errors, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("train({ diagnose }): its time is left out of epoch_time and tot_time; SGD gets the default rho", async () => {
  const net = mlp({ inputs: 1, hidden: [8], outputs: 1 });
  const xs = Float32Array.from({ length: 256 }, (_, i) => i / 256);
  const data = { inputs: xs, targets: xs.map((x) => Math.sin(3 * x)) };
  const run = async (diagnose?: DiagnoseOptions, solver: "SGN" | "SGD" = "SGN") => {
    const params = net.init({ seed: 1, backend: cpu });
    const optimizer = solver === "SGN" ? new SGN(params, { cgMaxIters: 2 }) : new SGD(params);
    const t0 = performance.now();
    try {
      const results = await train({
        network: net,
        optimizer,
        task: "regression",
        backend: cpu,
        train: data,
        epochs: 2,
        batchSize: 64,
        diagnose,
      });
      return { results, wall: (performance.now() - t0) / 1000 };
    } finally {
      optimizer.dispose();
    }
  };
  // Measurements many times dearer than the steps: 25 + 400 products G v before every step.
  const heavy = await run({ every: 1, lanczosSteps: 25, probes: 400 });
  const r = heavy.results;
  assert.equal(r.diagnostics!.step.length, 8);
  assert.ok(
    r.tot_time < 0.3 * heavy.wall,
    `tot_time ${r.tot_time} s of ${heavy.wall} s in all: the measurements were counted`,
  );
  assert.equal(r.epoch_time.at(-1), r.tot_time);
  const plain = await run();
  assert.deepEqual(r.avg_loss, plain.results.avg_loss);

  const sgd = await run({ every: 3, lanczosSteps: 5, probes: 2 }, "SGD");
  assert.deepEqual(sgd.results.diagnostics!.step, [1, 4, 7]);
  assert.deepEqual(sgd.results.diagnostics!.rho, [1e-3, 1e-3, 1e-3]);
  assert.equal((await run({ every: 0 })).results.diagnostics, undefined);
  for (
    const [bad, why] of [
      [{ every: -1 }, /diagnose.every must be a non-negative integer, got -1/],
      [{ every: 1, probes: 0 }, /diagnose.probes must be a positive integer, got 0/],
      [{ every: 1, lanczosSteps: 1.5 }, /diagnose.lanczosSteps must be a positive integer/],
      [{ every: 1, rho: -1 }, /diagnose.rho must be a number >= 0, got -1/],
      [{ every: 1, steps: 3 }, /unknown train diagnose option "steps"/],
    ] as const
  ) {
    await assert.rejects(() => run(bad as unknown as DiagnoseOptions), why);
  }
});

Deno.test("train flags: --diagnose, --diagnose_lanczos and --diagnose_probes are checked and explained", () => {
  const s = parseTrainArgs(["--diagnose", "5", "--diagnose_lanczos", "30"]);
  assert.deepEqual([s.diagnose, s.diagnose_lanczos, s.diagnose_probes], [5, 30, 10]);
  assert.equal(parseTrainArgs([]).diagnose, 0);
  assert.throws(() => parseTrainArgs(["--diagnose", "-1"]), /--diagnose must be an integer from 0/);
  assert.throws(
    () => parseTrainArgs(["--diagnose_lanczos", "0"]),
    /--diagnose_lanczos must be a positive integer/,
  );
  assert.throws(
    () => parseTrainArgs(["--diagnose_probes", "x"]),
    /--diagnose_probes must be a positive integer/,
  );
  const help = trainHelp();
  assert.match(help, /--diagnose .*every N steps/s);
  assert.match(help, /left out of epoch_time and tot_time/);
});

Deno.test("report: results.json's diagnostics are validated like the other keys, and cut with the epochs", () => {
  const base = { avg_loss: [1, 0.5], test_loss: [1, 0.6], epoch_time: [1, 2] };
  const good = {
    step: [1, 3, 5],
    epoch: [1, 1, 2],
    top_eigenvalue: [3, 2, null],
    bottom_eigenvalue: [0, 0, null],
    trace: [5, 4, null],
    trace_std_error: [0.5, 0.4, null],
    rho: [0.1, 0.01, 0.001],
    condition: [31, 201, null],
  };
  const ok = parseResults(JSON.stringify({ ...base, diagnostics: good }), "r.json");
  assert.deepEqual(ok.problems, []);
  const d = ok.series!.diagnostics!;
  assert.deepEqual(d.step, [1, 3, 5]);
  assert.deepEqual(d.top_eigenvalue.slice(0, 2), [3, 2]);
  assert.ok(Number.isNaN(d.top_eigenvalue[2]) && Number.isNaN(d.condition[2]));
  const cut = truncateRun(ok.series!, 1).diagnostics!;
  assert.deepEqual([cut.step, cut.epoch, cut.condition], [[1, 3], [1, 1], [31, 201]]);
  assert.equal(parseResults(JSON.stringify(base), "r.json").series!.diagnostics, undefined);
  for (
    const [diagnostics, why] of [
      [[1, 2], /diagnostics is a list, not an object of lists/],
      [null, /diagnostics is null, not an object of lists/],
      [{ ...good, trace: undefined }, /diagnostics.trace is missing/],
      [{ ...good, trace: [1, 2] }, /diagnostics.trace has 2 entries but diagnostics.step has 3/],
      [{ ...good, trace: [1, "x", 3] }, /diagnostics.trace\[1\] is "x", not a number/],
      [{ ...good, step: [1, 3, 3] }, /diagnostics.step\[2\] = 3: not a step number/],
      [{ ...good, step: [0, 3, 5] }, /diagnostics.step\[0\] = 0: not a step number/],
      [{ ...good, epoch: [1, 1, 3] }, /diagnostics.epoch\[2\] = 3: not an epoch from 1 to 2/],
      [{ ...good, epoch: [2, 1, 2] }, /diagnostics.epoch\[1\] = 1: not an epoch/],
      [{ ...good, rho: [0.1, -1, 0] }, /diagnostics.rho\[1\] = -1: not a damping >= 0/],
      [{ ...good, rho: [0.1, null, 0] }, /diagnostics.rho\[1\] is null, not a number/],
      [{ ...good, step: [1, null, 5] }, /diagnostics.step\[1\] is null, not a number/],
    ] as const
  ) {
    const r = parseResults(JSON.stringify({ ...base, diagnostics }), "r.json");
    assert.equal(r.series, undefined, `accepted ${JSON.stringify(diagnostics)}`);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0].skipped, true);
    assert.match(r.problems[0].reason, why);
  }
});
