/**
 * The curvatures of SGN (issue 22) against independent dense computations on small problems.
 *
 * The oracle here is a one-hidden-layer tanh network written out in float64 JavaScript, with its
 * gradient by hand (backpropagation written out) and nothing of the library's autodiff:
 * - the Gauss-Newton matrix G = J^T H_L J, J by central differences of the outputs, H_L in closed
 *   form (2 I / (m D) for squared error; (diag(s_i) - s_i s_i^T) / m row by row for softmax
 *   cross-entropy);
 * - the Hessian by central differences of the gradient;
 * - the empirical Fisher (1/m) sum_i g_i g_i^T from per-example gradients, one example at a time;
 * - conjugate gradient on the dense damped matrix, stopping at negative curvature as Nocedal &
 *   Wright's Algorithm 7.1 says (the iterate so far; steepest descent at the first iteration).
 * Each curvature's operator is held to these as a dense matrix built from products with unit
 * vectors; an SGN step (no line search, step size 1) is held to the dense CG, with a curvature
 * mini-batch the first m rows of the batch and the gradient the whole batch's. Float64 on the CPU
 * oracle (generated cases), float32 on every backend, both CG forms.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import { SgnError } from "../errors.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import {
  type CurvatureOperator,
  fisherLinearize,
  ggnLinearize,
  hessianLinearize,
  type OutputLoss,
} from "../autodiff/transforms.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { mlp } from "../models/networks.ts";
import { SGN, type SgnStepRecord } from "../sgn/sgn.ts";
import type { Optimizer } from "../sgn/optimizer.ts";
import {
  type Curvature,
  curvatureRows,
  resolveSgnOptions,
  type SgnOptions,
} from "../sgn/options.ts";
import { parseTrainArgs } from "../train/settings.ts";
import { train } from "../train/loop.ts";
import { fc, property } from "./property.ts";
import { assertClose, backendLabel, backends, cpu, Random } from "./harness.ts";

const all = await backends();

// --- the float64 oracle ----------------------------------------------------------------------

/** A batch for a one-hidden-layer tanh network, its parameters flat in the library's order. */
interface Problem {
  n: number;
  inp: number;
  hid: number;
  out: number;
  loss: "mse" | "ce";
  /** Inputs [n, inp] row-major. */
  X: Float64Array;
  /** Targets [n, out]: values (mse) or one-hot rows (ce). */
  T: Float64Array;
  /** W1 [inp, hid], b1 [hid], W2 [hid, out], b2 [out], flat. */
  theta: Float64Array;
}

const shapesOf = (p: Problem) => [[p.inp, p.hid], [p.hid], [p.hid, p.out], [p.out]];
const sizeOfParams = (p: Problem) => p.inp * p.hid + p.hid + p.hid * p.out + p.out;

function makeProblem(
  seed: number,
  shape: { n: number; inp: number; hid: number; out: number; loss: "mse" | "ce" },
  scale = 1,
): Problem {
  const rng = new Random(seed);
  const { n, inp, hid, out, loss } = shape;
  const X = rng.array(n * inp, (r) => r.normal());
  const T = new Float64Array(n * out);
  if (loss === "ce") { for (let i = 0; i < n; i++) T[i * out + rng.int(out)] = 1; }
  else for (let i = 0; i < n * out; i++) T[i] = 2 * rng.normal();
  const P = inp * hid + hid + hid * out + out;
  const theta = rng.array(P, (r) => scale * r.normal());
  return { ...shape, X, T, theta };
}

/** The first m rows of a problem's batch. */
function firstRows(p: Problem, m: number): Problem {
  return { ...p, n: m, X: p.X.slice(0, m * p.inp), T: p.T.slice(0, m * p.out) };
}

/** Hidden activations and outputs of the rows `rows`. */
function forward(p: Problem, th: Float64Array, rows: readonly number[]) {
  const { inp, hid, out } = p;
  const b1 = inp * hid, w2 = b1 + hid, b2 = w2 + hid * out;
  const H = new Float64Array(rows.length * hid);
  const Z = new Float64Array(rows.length * out);
  rows.forEach((row, i) => {
    for (let h = 0; h < hid; h++) {
      let a = th[b1 + h];
      for (let k = 0; k < inp; k++) a += p.X[row * inp + k] * th[k * hid + h];
      H[i * hid + h] = Math.tanh(a);
    }
    for (let c = 0; c < out; c++) {
      let z = th[b2 + c];
      for (let h = 0; h < hid; h++) z += H[i * hid + h] * th[w2 + h * out + c];
      Z[i * out + c] = z;
    }
  });
  return { H, Z };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function softmaxRow(z: ArrayLike<number>): number[] {
  const mx = Math.max(...Array.from(z));
  const e = Array.from(z, (v) => Math.exp(v - mx));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** The mean loss of the rows `rows` and dL/dz (each row's derivative divided by the count). */
function lossAndDz(p: Problem, Z: Float64Array, rows: readonly number[]) {
  const m = rows.length;
  const { out } = p;
  let value = 0;
  const dz = new Float64Array(m * out);
  rows.forEach((row, i) => {
    const z = Z.subarray(i * out, i * out + out);
    const t = p.T.subarray(row * out, row * out + out);
    if (p.loss === "mse") {
      for (let c = 0; c < out; c++) {
        value += (z[c] - t[c]) ** 2 / (m * out);
        dz[i * out + c] = 2 * (z[c] - t[c]) / (m * out);
      }
    } else {
      const s = softmaxRow(z);
      for (let c = 0; c < out; c++) {
        value -= t[c] * Math.log(s[c]) / m;
        dz[i * out + c] = (s[c] - t[c]) / m;
      }
    }
  });
  return { value, dz };
}

/** The gradient of the mean loss of the rows `rows`, by backpropagation written out. */
function gradient(p: Problem, th: Float64Array, rows: readonly number[]): Float64Array {
  const { inp, hid, out } = p;
  const b1 = inp * hid, w2 = b1 + hid, b2 = w2 + hid * out;
  const { H, Z } = forward(p, th, rows);
  const { dz } = lossAndDz(p, Z, rows);
  const g = new Float64Array(th.length);
  rows.forEach((row, i) => {
    for (let c = 0; c < out; c++) {
      g[b2 + c] += dz[i * out + c];
      for (let h = 0; h < hid; h++) g[w2 + h * out + c] += H[i * hid + h] * dz[i * out + c];
    }
    for (let h = 0; h < hid; h++) {
      let dh = 0;
      for (let c = 0; c < out; c++) dh += dz[i * out + c] * th[w2 + h * out + c];
      const da = dh * (1 - H[i * hid + h] ** 2);
      g[b1 + h] += da;
      for (let k = 0; k < inp; k++) g[k * hid + h] += p.X[row * inp + k] * da;
    }
  });
  return g;
}

type Dense = Float64Array[];

/** G = J^T H_L J of the first m rows: J by central differences, H_L in closed form. */
function denseGgn(p: Problem, m: number): Dense {
  const P = p.theta.length, rows = range(m), D = m * p.out;
  const h = 1e-6;
  const J = Array.from({ length: D }, () => new Float64Array(P));
  for (let j = 0; j < P; j++) {
    const plus = p.theta.slice(), minus = p.theta.slice();
    plus[j] += h;
    minus[j] -= h;
    const zp = forward(p, plus, rows).Z, zm = forward(p, minus, rows).Z;
    for (let r = 0; r < D; r++) J[r][j] = (zp[r] - zm[r]) / (2 * h);
  }
  const { Z } = forward(p, p.theta, rows);
  const HL = Array.from({ length: D }, () => new Float64Array(D));
  for (let i = 0; i < m; i++) {
    const s = softmaxRow(Z.subarray(i * p.out, i * p.out + p.out));
    for (let a = 0; a < p.out; a++) {
      for (let b = 0; b < p.out; b++) {
        HL[i * p.out + a][i * p.out + b] = p.loss === "mse"
          ? (a === b ? 2 / (m * p.out) : 0)
          : ((a === b ? s[a] : 0) - s[a] * s[b]) / m;
      }
    }
  }
  const G = Array.from({ length: P }, () => new Float64Array(P));
  for (let a = 0; a < P; a++) {
    for (let b = 0; b < P; b++) {
      let v = 0;
      for (let r = 0; r < D; r++) {
        for (let s = 0; s < D; s++) v += J[r][a] * HL[r][s] * J[s][b];
      }
      G[a][b] = v;
    }
  }
  return G;
}

/** The Hessian of the mean loss of the first m rows, by central differences of the gradient. */
function denseHessian(p: Problem, m: number): Dense {
  const P = p.theta.length, rows = range(m), h = 1e-5;
  const H = Array.from({ length: P }, () => new Float64Array(P));
  for (let j = 0; j < P; j++) {
    const plus = p.theta.slice(), minus = p.theta.slice();
    plus[j] += h;
    minus[j] -= h;
    const gp = gradient(p, plus, rows), gm = gradient(p, minus, rows);
    for (let i = 0; i < P; i++) H[i][j] = (gp[i] - gm[i]) / (2 * h);
  }
  return H;
}

/** The empirical Fisher of the first m rows: (1/m) sum_i g_i g_i^T, one example at a time. */
function denseFisher(p: Problem, m: number): Dense {
  const P = p.theta.length;
  const F = Array.from({ length: P }, () => new Float64Array(P));
  for (let i = 0; i < m; i++) {
    const g = gradient(p, p.theta, [i]);
    for (let a = 0; a < P; a++) for (let b = 0; b < P; b++) F[a][b] += g[a] * g[b] / m;
  }
  return F;
}

const DENSE: Record<Curvature, (p: Problem, m: number) => Dense> = {
  ggn: denseGgn,
  hessian: denseHessian,
  fisher: denseFisher,
};

const matVec = (A: Dense, v: ArrayLike<number>) =>
  A.map((row) => row.reduce((s, a, j) => s + a * v[j], 0));
const dotJs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const maxAbs = (a: ArrayLike<number>) => Math.max(0, ...Array.from(a, Math.abs));

/**
 * CG on (C + rho I) d = -b from d = 0 with SGN's stopping rules (max|r| <= tol, the budget) and,
 * with `stopAtNegative`, Nocedal & Wright's Algorithm 7.1: at p.A p <= 0 the iterate so far, or
 * p0 = -b when it is the first iteration. `margin` is the smallest |p.A p| / (|p|^2 max|A|) and
 * `tolMargin` the smallest |log(max|r| / tol)| met, so callers can skip decisions that rounding
 * could flip.
 */
function referenceCg(
  C: Dense,
  rho: number,
  b: ArrayLike<number>,
  budget: number,
  tol: number,
  stopAtNegative: boolean,
) {
  const n = b.length;
  const A = C.map((row, i) => row.map((v, j) => v + (i === j ? rho : 0)));
  const scale = Math.max(1e-300, ...A.map(maxAbs));
  let d = new Float64Array(n);
  let r = Float64Array.from(b);
  let p = r.map((v) => -v);
  let ry = dotJs(r, r);
  let k = 0;
  let negative = false;
  let margin = Infinity;
  let tolMargin = Infinity;
  const above = () => {
    const rMax = maxAbs(r);
    if (tol > 0 && rMax > 0) tolMargin = Math.min(tolMargin, Math.abs(Math.log(rMax / tol)));
    return rMax > tol;
  };
  while (k < budget && above()) {
    const q = matVec(A, p);
    const pq = dotJs(p, q);
    margin = Math.min(margin, Math.abs(pq) / (dotJs(p, p) * scale));
    if (stopAtNegative && pq <= 0) {
      negative = true;
      if (k === 0) {
        d = p.slice();
        r = r.map((v, i) => v + q[i]);
        k = 1;
      }
      break;
    }
    const a = ry / pq;
    d = d.map((v, i) => v + a * p[i]);
    r = r.map((v, i) => v + a * q[i]);
    const ryNew = dotJs(r, r);
    p = p.map((v, i) => -r[i] + (ryNew / ry) * v);
    ry = ryNew;
    k++;
  }
  return { d, r, iters: k, negative, margin, tolMargin };
}

// --- the library's side ----------------------------------------------------------------------

/** The problem's batch (or its first m rows) as tensors, with the library's model and loss. */
function onBackend(p: Problem, be: Backend, dtype: DType, m = p.n) {
  const x = tensor(p.X.slice(0, m * p.inp), [m, p.inp], { backend: be, dtype });
  const y = tensor(p.T.slice(0, m * p.out), [m, p.out], { backend: be, dtype });
  const net = mlp({ inputs: p.inp, hidden: [p.hid], outputs: p.out, activation: "tanh" });
  const model = (...params: Tensor[]) => net.forward(params, x);
  const loss: OutputLoss = p.loss === "mse" ? meanSquaredError(y) : softmaxCrossEntropy(y);
  return { model, loss, dispose: () => (x.dispose(), y.dispose()) };
}

function paramsOf(p: Problem, be: Backend, dtype: DType, theta = p.theta): Tensor[] {
  let at = 0;
  return shapesOf(p).map((shape) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const t = tensor(theta.slice(at, at + size), shape, { backend: be, dtype });
    at += size;
    return t;
  });
}

async function flatOf(ts: readonly Tensor[]): Promise<number[]> {
  const out: number[] = [];
  for (const t of ts) out.push(...await t.data());
  return out;
}

const LINEARIZE = { ggn: ggnLinearize, hessian: hessianLinearize, fisher: fisherLinearize };

/** The operator's matrix, column j its product with the unit vector e_j. */
async function denseFromProducts(op: CurvatureOperator, p: Problem, be: Backend, dtype: DType) {
  const P = sizeOfParams(p);
  const cols: number[][] = [];
  for (let j = 0; j < P; j++) {
    const e = new Float64Array(P);
    e[j] = 1;
    const v = paramsOf(p, be, dtype, e);
    const cv = op.apply(...v);
    cols.push(await flatOf(cv));
    for (const t of [...v, ...cv]) t.dispose();
  }
  return Array.from({ length: P }, (_, i) => Float64Array.from(cols, (c) => c[i]));
}

/** Asserts two dense matrices agree to atol * max|expected| (+ rtol). */
function assertDenseClose(got: Dense, want: Dense, atol: number, what: string): void {
  const scale = Math.max(1, ...want.map(maxAbs));
  assertClose(got.flatMap((r) => [...r]), want.flatMap((r) => [...r]), {
    atol: atol * scale,
    rtol: atol,
    what,
  });
}

async function operatorMatrix(
  p: Problem,
  curvature: Curvature,
  be: Backend,
  dtype: DType,
): Promise<Dense> {
  const b = onBackend(p, be, dtype);
  const params = paramsOf(p, be, dtype);
  const op = LINEARIZE[curvature](b.model, b.loss, params);
  try {
    return await denseFromProducts(op, p, be, dtype);
  } finally {
    op.dispose();
    params.forEach((t) => t.dispose());
    b.dispose();
  }
}

/**
 * One SGN step (no line search, no trust region, step size 1, so the parameters move by CG's d)
 * with the curvature mini-batch given by the step's third argument as `train` gives it.
 */
async function sgnStep(
  p: Problem,
  be: Backend,
  dtype: DType,
  options: SgnOptions,
): Promise<{ d: number[]; record: SgnStepRecord }> {
  const full = onBackend(p, be, dtype);
  const parts: { dispose(): void }[] = [];
  const opt = new SGN(paramsOf(p, be, dtype), {
    lineSearch: false,
    trustRegion: false,
    alpha: 1,
    ...options,
  });
  try {
    const record = await opt.step(full.model, full.loss, (m) => {
      const part = onBackend(p, be, dtype, m);
      parts.push(part);
      return part;
    });
    const after = await flatOf(opt.params);
    return { d: after.map((v, i) => v - p.theta[i]), record };
  } finally {
    opt.dispose();
    full.dispose();
    parts.forEach((x) => x.dispose());
  }
}

/** What the SGN step must give by the dense oracle: CG on the first m rows' curvature. */
function expectedStep(
  p: Problem,
  curvature: Curvature,
  m: number,
  rho: number,
  budget: number,
  tol: number,
) {
  const C = DENSE[curvature](firstRows(p, m), m);
  const g = gradient(p, p.theta, range(p.n));
  const ref = referenceCg(C, rho, g, budget, tol, curvature === "hessian");
  const predicted = 0.5 * dotJs(ref.r.map((v, i) => v + g[i]), ref.d);
  return { ...ref, g, predicted };
}

// --- each curvature's matrix against the explicit one (float64) ------------------------------

const shapeArb = fc.record({
  n: fc.integer({ min: 1, max: 5 }),
  inp: fc.integer({ min: 1, max: 3 }),
  hid: fc.integer({ min: 1, max: 3 }),
  out: fc.integer({ min: 1, max: 3 }),
  loss: fc.constantFrom("mse" as const, "ce" as const),
});
const problemArb = fc.record({
  shape: shapeArb,
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  scale: fc.double({ min: 0.2, max: 1.5, noNaN: true }),
}).filter(({ shape }) => shape.loss === "mse" || shape.out >= 2)
  .map(({ shape, seed, scale }) => makeProblem(seed, shape, scale));

for (const curvature of ["ggn", "hessian", "fisher"] as const) {
  property(
    `curvature ${curvature}: the matrix of the operator's products is the explicit one (float64)`,
    problemArb,
    15,
    async (p) => {
      const got = await operatorMatrix(p, curvature, cpu, "float64");
      assertDenseClose(got, DENSE[curvature](p, p.n), 1e-7, `${curvature} on ${p.n} rows`);
    },
  );
}

Deno.test("curvature: the three matrices differ where they should (the oracle is not trivial)", async () => {
  const p = makeProblem(3, { n: 4, inp: 2, hid: 3, out: 2, loss: "ce" });
  const [G, H, F] = [denseGgn(p, 4), denseHessian(p, 4), denseFisher(p, 4)];
  const gap = (A: Dense, B: Dense) =>
    Math.max(...A.map((r, i) => maxAbs(r.map((v, j) => v - B[i][j]))));
  const size = Math.max(...G.map(maxAbs));
  assert.ok(gap(G, H) > 1e-3 * size, `G and H differ: ${gap(G, H)}`);
  assert.ok(gap(G, F) > 1e-3 * size, `G and F differ: ${gap(G, F)}`);
  // And the library's Gauss-Newton operator is not the Hessian (nor the converse).
  const libG = await operatorMatrix(p, "ggn", cpu, "float64");
  assert.ok(gap(libG, H) > 1e-3 * size);
});

Deno.test("curvature: mean(perExample(z)) is value(z) for both losses (float64)", async () => {
  const rng = new Random(5);
  const z = tensor(rng.array(12, (r) => r.normal()), [4, 3], { backend: cpu, dtype: "float64" });
  const t = tensor(rng.array(12, (r) => r.normal()), [4, 3], { backend: cpu, dtype: "float64" });
  const y = oneHot([0, 2, 1, 2], 3, { backend: cpu, dtype: "float64" });
  for (const loss of [meanSquaredError(t), softmaxCrossEntropy(y)]) {
    const l = loss.perExample!(z);
    assert.deepEqual(l.shape, [4]);
    const [each, value] = [await l.data(), await loss.value(z).data()];
    assertClose([Array.from(each).reduce((a, b) => a + b, 0) / 4], value, {
      rtol: 1e-14,
      what: "mean",
    });
  }
  // Row by row, against Math.*.
  const zs = await z.data(), ts = await t.data();
  const mse = await meanSquaredError(t).perExample!(z).data();
  for (let i = 0; i < 4; i++) {
    let s = 0;
    for (let c = 0; c < 3; c++) s += (zs[i * 3 + c] - ts[i * 3 + c]) ** 2 / 3;
    assertClose([mse[i]], [s], { rtol: 1e-14, what: `mse row ${i}` });
  }
  const ce = await softmaxCrossEntropy(y).perExample!(z).data();
  [0, 2, 1, 2].forEach((label, i) => {
    const s = softmaxRow(zs.subarray(i * 3, i * 3 + 3));
    assertClose([ce[i]], [-Math.log(s[label])], { rtol: 1e-13, what: `ce row ${i}` });
  });
});

// --- an SGN step against the dense CG: curvature mini-batches, negative curvature ------------

const batchArb = fc.oneof(
  fc.double({ min: 0.05, max: 1, noNaN: true }),
  fc.integer({ min: 2, max: 8 }),
  fc.constant(1),
);

property(
  "SGN step with a curvature mini-batch: CG on the first m rows' curvature, the whole batch's gradient (float64)",
  fc.record({
    p: problemArb,
    curvature: fc.constantFrom("ggn" as const, "hessian" as const, "fisher" as const),
    curvatureBatch: batchArb,
    rho: fc.double({ min: 1e-3, max: 1, noNaN: true }),
    budget: fc.integer({ min: 1, max: 6 }),
    mode: fc.constantFrom("host" as const, "device" as const),
  }),
  60,
  async ({ p, curvature, curvatureBatch, rho, budget, mode }) => {
    // The rows by the option's definition (written out here, not the library's function).
    const m = curvatureBatch <= 1
      ? Math.max(1, Math.round(curvatureBatch * p.n))
      : Math.min(curvatureBatch, p.n);
    const g = gradient(p, p.theta, range(p.n));
    // Above the oracle's own accuracy (finite differences, about 1e-10, times the condition).
    const tol = 1e-5 * Math.max(1e-12, maxAbs(g));
    const want = expectedStep(p, curvature, m, rho, budget, tol);
    // Decisions that rounding could flip (p.A p near 0, max|r| near tol) are not this test's.
    fc.pre(want.margin > 1e-6 && want.tolMargin > 0.05);
    const { d, record } = await sgnStep(p, cpu, "float64", {
      curvature,
      curvatureBatch,
      dampRho: rho,
      cgMaxIters: budget,
      cgMinIters: budget,
      cgTol: tol,
      mode,
    });
    assert.equal(record.curvature, curvature);
    assert.equal(record.curvatureRows, m);
    assert.equal(record.negativeCurvature, want.negative, "negative curvature met");
    assert.equal(record.cgIters, want.iters, "CG iterations");
    const scale = Math.max(1e-12, maxAbs(want.d));
    assertClose(d, want.d, { atol: 1e-6 * scale, rtol: 1e-6, what: "the step d" });
    assertClose([record.predicted], [want.predicted], {
      atol: 1e-6 * Math.abs(dotJs(want.g, want.d)) + 1e-300,
      rtol: 1e-6,
      what: "predicted change",
    });
  },
);

/** The first seed whose Hessian problem meets negative curvature in CG iteration `at` or later. */
function negativeCase(from: number) {
  for (let seed = 1; seed < 2000; seed++) {
    const p = makeProblem(seed, { n: 3, inp: 2, hid: 2, out: 2, loss: "mse" }, 1.2);
    const want = expectedStep(p, "hessian", 3, 1e-2, 8, 0);
    if (want.negative && want.iters >= from && want.margin > 1e-4) return { p, want };
  }
  throw new Error(`no problem meets negative curvature after ${from} iterations`);
}

/** One parameter w, z = tanh(w) x: at w = 1 with target -5, L''(w) is about -7 (a concave spot). */
function concave(be: Backend, dtype: DType) {
  const x = tensor([[1]], [1, 1], { backend: be, dtype });
  const y = tensor([[-5]], [1, 1], { backend: be, dtype });
  const t = Math.tanh(1), sech2 = 1 - t * t;
  const g = 2 * (t + 5) * sech2;
  const h = 2 * sech2 * sech2 + 2 * (t + 5) * (-2 * t * sech2);
  return {
    model: (w: Tensor) => o.mul(x, o.tanh(w)),
    loss: meanSquaredError(y),
    w: () => [tensor([1], [1], { backend: be, dtype })],
    g,
    h,
    dispose: () => (x.dispose(), y.dispose()),
  };
}

for (const be of all) {
  const dtype: DType = be.dtypes.includes("float64") ? "float64" : "float32";
  const tight = dtype === "float64" ? 1e-9 : 1e-5;
  for (const mode of ["host", "device"] as const) {
    Deno.test(`curvature (${backendLabel(be)}, ${mode}): negative curvature at the first CG iteration gives steepest descent -g`, async () => {
      const c = concave(be, dtype);
      assert.ok(c.h < -5, `the oracle's curvature ${c.h}`);
      const opt = new SGN(c.w(), {
        curvature: "hessian",
        lineSearch: false,
        dampRho: 1e-3,
        mode,
      });
      try {
        const rec = await opt.step(c.model, c.loss);
        const [w] = await opt.params[0].data();
        assert.equal(rec.negativeCurvature, true);
        assert.equal(rec.cgIters, 1);
        assertClose([w - 1], [-c.g], { rtol: tight, what: "d = -g" });
        // r = g + (H + rho) (-g): the model's predicted change 0.5 (r + g).d.
        const r = c.g - (c.h + 1e-3) * c.g;
        assertClose([rec.predicted], [0.5 * (r + c.g) * -c.g], { rtol: 1e-4, what: "predicted" });
        // The Gauss-Newton curvature is positive there: no negative curvature, a Newton-like step.
        const ggn = new SGN(c.w(), { lineSearch: false, dampRho: 1e-3, mode });
        const recG = await ggn.step(c.model, c.loss);
        assert.equal(recG.negativeCurvature, false);
        assert.equal(recG.curvature, "ggn");
        ggn.dispose();
      } finally {
        opt.dispose();
        c.dispose();
      }
    });
  }
}

for (const mode of ["host", "device"] as const) {
  Deno.test(`curvature (cpu, ${mode}): zero curvature (p.A p = 0) stops CG as negative curvature does`, async () => {
    // A linear model under a linear loss, mean(z): the Hessian is exactly 0, and with rho = 0
    // so is p.A p; the step must be steepest descent, not a division by zero.
    const x = tensor([[1, 2], [3, -1]], [2, 2], { backend: cpu, dtype: "float64" });
    const loss: OutputLoss = {
      value: (z) => o.mean(z),
      hessianProduct: (_z, u) => o.mul(u, 0),
    };
    const w = tensor([[0.5], [0.25]], [2, 1], { backend: cpu, dtype: "float64" });
    const opt = new SGN([w], { curvature: "hessian", dampRho: 0, lineSearch: false, mode });
    try {
      const rec = await opt.step((w) => o.matmul(x, w), loss);
      assert.equal(rec.negativeCurvature, true);
      assert.equal(rec.cgIters, 1);
      // g = mean over the rows of x: [2, 0.5].
      assert.deepEqual(Array.from(await opt.params[0].data()), [0.5 - 2, 0.25 - 0.5]);
    } finally {
      opt.dispose();
      x.dispose();
    }
  });
}

Deno.test("curvature: negative curvature after the first CG iteration returns the iterate so far (float64, both forms)", async () => {
  const { p, want } = negativeCase(2);
  for (const mode of ["host", "device"] as const) {
    const { d, record } = await sgnStep(p, cpu, "float64", {
      curvature: "hessian",
      dampRho: 1e-2,
      cgMaxIters: 8,
      cgMinIters: 8,
      cgTol: 0,
      mode,
    });
    assert.equal(record.negativeCurvature, true, mode);
    assert.equal(record.cgIters, want.iters, mode);
    assertClose(d, want.d, { atol: 1e-7 * maxAbs(want.d), rtol: 1e-7, what: `${mode}: d` });
    // Not the steepest-descent direction: the stop kept CG's own iterate.
    const g = gradient(p, p.theta, range(p.n));
    assert.ok(maxAbs(d.map((v, i) => v + g[i])) > 1e-3 * maxAbs(g));
  }
});

// --- every backend, float32 (and float64 where it exists) ------------------------------------

for (const be of all) {
  const dtype: DType = "float32";
  const p = makeProblem(11, { n: 6, inp: 3, hid: 3, out: 2, loss: "ce" }, 0.8);
  for (const curvature of ["ggn", "hessian", "fisher"] as const) {
    Deno.test(`curvature (${backendLabel(be)}): ${curvature} products against the float64 explicit matrix`, async () => {
      const got = await operatorMatrix(p, curvature, be, dtype);
      assertDenseClose(got, DENSE[curvature](p, p.n), 2e-4, `${curvature} on ${be.name}`);
    });
    for (const mode of ["host", "device"] as const) {
      Deno.test(`curvature (${backendLabel(be)}, ${mode}): an SGN step with ${curvature} on half the batch is CG on those rows`, async () => {
        const rho = 0.05, budget = 3;
        const want = expectedStep(p, curvature, 3, rho, budget, 0);
        assert.ok(want.margin > 1e-3, `the oracle's decisions are clear (${want.margin})`);
        const { d, record } = await sgnStep(p, be, dtype, {
          curvature,
          curvatureBatch: 0.5,
          dampRho: rho,
          cgMaxIters: budget,
          cgMinIters: budget,
          cgTol: 0,
          mode,
        });
        assert.equal(record.curvatureRows, 3);
        assert.equal(record.negativeCurvature, want.negative);
        assert.equal(record.cgIters, want.iters);
        assertClose(d, want.d, { atol: 1e-3 * maxAbs(want.d), rtol: 1e-3, what: "d" });
      });
    }
  }
}

// --- defaults, the record, bad input ---------------------------------------------------------

Deno.test("curvature: the defaults (ggn, the whole batch) are the seed's step bit for bit", async () => {
  const p = makeProblem(7, { n: 8, inp: 3, hid: 4, out: 3, loss: "ce" });
  const runs: number[][] = [];
  const records: SgnStepRecord[][] = [];
  for (const options of [{}, { curvature: "ggn", curvatureBatch: 1 }] as SgnOptions[]) {
    const b = onBackend(p, cpu, "float64");
    const opt = new SGN(paramsOf(p, cpu, "float64"), { trustRegion: true, ...options });
    const recs: SgnStepRecord[] = [];
    for (let s = 0; s < 4; s++) {
      // The third argument is never called with the whole batch.
      recs.push(
        await opt.step(b.model, b.loss, () => {
          throw new Error("the curvature batch was asked for");
        }),
      );
    }
    runs.push(await flatOf(opt.params));
    records.push(recs);
    opt.dispose();
    b.dispose();
  }
  assert.deepEqual(runs[1], runs[0]);
  assert.deepEqual(records[1], records[0]);
  assert.equal(records[0][0].curvature, "ggn");
  assert.equal(records[0][0].curvatureRows, 8);
  assert.equal(records[0][0].negativeCurvature, false);
});

Deno.test("curvature: curvatureRows by its definition", () => {
  const cases: [number, number, number][] = [
    [1, 1000, 1000],
    [0.25, 1000, 250],
    [0.1, 30, 3], // 0.1 * 30 = 3.0000000000000004
    [0.3, 10, 3],
    [0.35, 10, 4], // rounded, not truncated
    [0.001, 100, 1], // at least one row
    [300, 1000, 300],
    [300, 200, 200], // at most the batch (the last, smaller batch of an epoch)
  ];
  for (const [f, n, rows] of cases) assert.equal(curvatureRows(f, n), rows, `${f} of ${n}`);
});

Deno.test("curvature: bad options give an SgnError naming the option", () => {
  const bad: [SgnOptions, RegExp][] = [
    [
      { curvature: "newton" as Curvature },
      /curvature \(CURVATURE\) must be "ggn", "hessian" or "fisher", got "newton"/,
    ],
    [{ curvatureBatch: 0 }, /curvatureBatch \(CURVATURE_BATCH\) must be a fraction .*, got 0$/],
    [{ curvatureBatch: -0.5 }, /curvatureBatch .*, got -0.5$/],
    [{ curvatureBatch: 2.5 }, /curvatureBatch .*an integer.*, got 2.5$/],
    [{ curvatureBatch: 1.5 }, /curvatureBatch .*, got 1.5$/],
    [{ curvatureBatch: NaN }, /curvatureBatch .*, got NaN$/],
    [{ curvatureBatch: Infinity }, /curvatureBatch .*, got Infinity$/],
    [{ curvatureBatch: 1e8 }, /curvatureBatch .*, got 100000000$/],
    [{ curvatureBatch: "0.5" as unknown as number }, /curvatureBatch .*, got "0.5"$/],
  ];
  for (const [options, message] of bad) {
    assert.throws(
      () => resolveSgnOptions(options),
      (e) => e instanceof SgnError && message.test(e.message),
      JSON.stringify(options),
    );
  }
  for (const ok of [0.5, 1, 2, 1000]) resolveSgnOptions({ curvatureBatch: ok });
  // The command line holds the same bounds (one definition).
  assert.throws(
    () => parseTrainArgs(["--curvature_batch", "2.5"]),
    /--curvature_batch must be a fraction/,
  );
  assert.throws(
    () => parseTrainArgs(["--curvature_batch", "0"]),
    /--curvature_batch must be a fraction/,
  );
  assert.throws(
    () => parseTrainArgs(["--curvature", "newton"]),
    /--curvature must be one of ggn, hessian, fisher/,
  );
  assert.equal(parseTrainArgs(["--curvature_batch", "0.25"]).curvature_batch, 0.25);
  assert.equal(parseTrainArgs([]).curvature, "ggn");
  assert.equal(parseTrainArgs([]).curvature_batch, 1);
});

Deno.test("curvature: a step without what the options need gives an SgnError saying what to do", async () => {
  const p = makeProblem(2, { n: 4, inp: 2, hid: 2, out: 2, loss: "mse" });
  const b = onBackend(p, cpu, "float64");
  const expectError = async (
    options: SgnOptions,
    step: (o: SGN) => Promise<unknown>,
    re: RegExp,
  ) => {
    const opt = new SGN(paramsOf(p, cpu, "float64"), options);
    const before = await flatOf(opt.params);
    const live = cpu.liveBuffers();
    await assert.rejects(step(opt), (e) => e instanceof SgnError && re.test(e.message), re.source);
    assert.equal(cpu.liveBuffers(), live, "a failed step frees its temporaries");
    assert.deepEqual(await flatOf(opt.params), before, "and leaves the parameters");
    opt.dispose();
  };
  await expectError(
    { curvatureBatch: 0.5 },
    (o) => o.step(b.model, b.loss),
    /curvatureBatch \(0.5\) needs the step's third argument/,
  );
  await expectError(
    { curvatureBatch: 2 },
    (o) => o.step(b.model, b.loss, "rows" as never),
    /third argument/,
  );
  const { perExample: _, ...noPerExample } = b.loss;
  await expectError(
    { curvature: "fisher" },
    (o) => o.step(b.model, noPerExample as OutputLoss),
    /curvature "fisher" needs the loss's perExample/,
  );
  await expectError(
    { curvatureBatch: 2 },
    (o) => o.step(b.model, b.loss, () => ({ model: b.model, loss: b.loss })),
    /gives 4 rows; 2 were asked for/,
  );
  await expectError(
    { curvatureBatch: 2 },
    (o) => o.step(b.model, b.loss, () => null as never),
    /must be \{ model, loss \}/,
  );
  assert.throws(
    () =>
      fisherLinearize(b.model, { value: b.loss.value } as OutputLoss, paramsOf(p, cpu, "float64")),
    /has no perExample/,
  );
  b.dispose();
});

// --- the training loop: the curvature batch is the first rows of a shuffled batch ------------

/** An optimizer that records the rows it is given (targets are the row indices) and SGN's records. */
class Spy implements Optimizer {
  batches: number[][] = [];
  subBatches: number[][] = [];
  records: SgnStepRecord[] = [];
  constructor(readonly inner: SGN, readonly m: number) {}
  get params() {
    return this.inner.params;
  }
  dispose() {
    this.inner.dispose();
  }
  /** The targets of a mean-squared-error loss: sqrt of its per-example loss at z = 0. */
  async #rows(loss: OutputLoss, n: number): Promise<number[]> {
    const z = tensor(new Float64Array(n), [n, 1], { backend: cpu, dtype: "float64" });
    const l = loss.perExample!(z);
    const rows = Array.from(await l.data(), (v) => Math.round(Math.sqrt(v)));
    z.dispose();
    l.dispose();
    return rows;
  }
  async step(
    model: (...p: Tensor[]) => Tensor,
    loss: OutputLoss,
    sub?: (rows: number) => { model: typeof model; loss: OutputLoss },
  ) {
    const z = model(...this.inner.params);
    const n = z.shape[0];
    z.dispose();
    this.batches.push(await this.#rows(loss, n));
    const part = sub!(Math.min(this.m, n));
    this.subBatches.push(await this.#rows(part.loss, Math.min(this.m, n)));
    const rec = await this.inner.step(model, loss, sub);
    this.records.push(rec);
    return rec;
  }
}

Deno.test("curvature: train() hands SGN the first rows of each shuffled batch as the curvature batch", async () => {
  const n = 40, batchSize = 8, m = 3;
  const net = mlp({ inputs: 1, hidden: [2], outputs: 1, activation: "tanh" });
  const data = {
    inputs: Float32Array.from({ length: n }, (_, i) => i / n),
    targets: Float32Array.from({ length: n }, (_, i) => i),
  };
  const spy = new Spy(
    new SGN(net.init({ seed: 1, backend: cpu, dtype: "float64" }), {
      curvatureBatch: m,
      dampRho: 10,
    }),
    m,
  );
  await train({
    network: net,
    optimizer: spy,
    task: "regression",
    backend: cpu,
    dtype: "float64",
    train: data,
    epochs: 3,
    batchSize,
    seed: 4,
  });
  assert.equal(spy.batches.length, 15);
  spy.batches.forEach((rows, s) =>
    assert.deepEqual(spy.subBatches[s], rows.slice(0, m), `step ${s}`)
  );
  assert.ok(spy.records.every((r) => r.curvatureRows === m));
  // The batches of an epoch are a permutation of the data, and it changes from epoch to epoch:
  // the first rows of a batch are a random subset, not fixed rows of the data.
  for (let e = 0; e < 3; e++) {
    const seen = spy.batches.slice(e * 5, e * 5 + 5).flat().sort((a, b) => a - b);
    assert.deepEqual(seen, range(n), `epoch ${e + 1} sees every row once`);
  }
  const firstOfEpoch = [0, 5, 10].map((s) => spy.subBatches[s].join());
  assert.equal(new Set(firstOfEpoch).size, 3, "the first curvature batch differs between epochs");
  const inOrder = spy.batches.flat().every((r, i) => r === i % n);
  assert.ok(!inOrder, "the batches are shuffled");
  spy.dispose();
});

// --- memory ----------------------------------------------------------------------------------

for (const be of all) {
  Deno.test(`curvature (${backendLabel(be)}): steps with each curvature and a curvature batch keep the buffer count flat`, async () => {
    const p = makeProblem(9, { n: 6, inp: 2, hid: 3, out: 2, loss: "ce" });
    const b = onBackend(p, be, "float32");
    const sub = onBackend(p, be, "float32", 3);
    for (const curvature of ["ggn", "hessian", "fisher"] as const) {
      for (const curvatureBatch of [1, 0.5]) {
        const live = be.liveBuffers();
        const opt = new SGN(paramsOf(p, be, "float32"), {
          curvature,
          curvatureBatch,
          trustRegion: true,
        });
        await opt.step(b.model, b.loss, () => sub);
        const flat = be.liveBuffers();
        for (let s = 0; s < 4; s++) await opt.step(b.model, b.loss, () => sub);
        assert.equal(be.liveBuffers(), flat, `${curvature}, ${curvatureBatch}: flat`);
        opt.dispose();
        assert.equal(be.liveBuffers(), live, `${curvature}, ${curvatureBatch}: dispose frees all`);
      }
    }
    b.dispose();
    sub.dispose();
  });
}
