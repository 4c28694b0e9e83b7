/**
 * The library's side of the curvature tests: the backends, an oracle problem's batch (or its first
 * m rows) as tensors with the library's model and loss, a curvature operator's dense matrix built
 * from products with unit vectors, one SGN step (no line search, step size 1) on a problem, and
 * what that step must give by the dense CG of tests/curvature_oracle.ts; generated problems.
 */

import type { Backend } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import {
  type CurvatureOperator,
  fisherLinearize,
  ggnLinearize,
  hessianLinearize,
  type OutputLoss,
} from "../autodiff/transforms.ts";
import { meanSquaredError, softmaxCrossEntropy } from "../models/losses.ts";
import { mlp } from "../models/networks.ts";
import { SGN, type SgnStepRecord } from "../sgn/sgn.ts";
import type { Curvature, SgnOptions } from "../sgn/options.ts";
import { fc } from "./property.ts";
import { assertClose, backends } from "./harness.ts";
import {
  DENSE,
  type Dense,
  dotJs,
  firstRows,
  gradient,
  makeProblem,
  maxAbs,
  type Problem,
  range,
  referenceCg,
  shapesOf,
  sizeOfParams,
} from "./curvature_oracle.ts";

export const all = await backends();

/** The problem's batch (or its first m rows) as tensors, with the library's model and loss. */
export function onBackend(p: Problem, be: Backend, dtype: DType, m = p.n) {
  const x = tensor(p.X.slice(0, m * p.inp), [m, p.inp], { backend: be, dtype });
  const y = tensor(p.T.slice(0, m * p.out), [m, p.out], { backend: be, dtype });
  const net = mlp({ inputs: p.inp, hidden: [p.hid], outputs: p.out, activation: "tanh" });
  const model = (...params: Tensor[]) => net.forward(params, x);
  const loss: OutputLoss = p.loss === "mse" ? meanSquaredError(y) : softmaxCrossEntropy(y);
  return { model, loss, dispose: () => (x.dispose(), y.dispose()) };
}

export function paramsOf(p: Problem, be: Backend, dtype: DType, theta = p.theta): Tensor[] {
  let at = 0;
  return shapesOf(p).map((shape) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const t = tensor(theta.slice(at, at + size), shape, { backend: be, dtype });
    at += size;
    return t;
  });
}

export async function flatOf(ts: readonly Tensor[]): Promise<number[]> {
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
export function assertDenseClose(got: Dense, want: Dense, atol: number, what: string): void {
  const scale = Math.max(1, ...want.map(maxAbs));
  assertClose(got.flatMap((r) => [...r]), want.flatMap((r) => [...r]), {
    atol: atol * scale,
    rtol: atol,
    what,
  });
}

export async function operatorMatrix(
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
export async function sgnStep(
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
export function expectedStep(
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
  // How far d moves when C and g move by rounding (g's entries by 1e-12 of each; C's by 1e-12 of
  // its largest, as matrix-free products round relative to the matrix's size; C kept symmetric):
  // CG's late iterations on an ill-conditioned system amplify rounding, and then no two
  // implementations agree on d (the library's products round differently).
  const nudge = (k: number) => (k % 2 ? 1e-12 : -1e-12);
  const cMax = Math.max(1e-300, ...C.map((row) => maxAbs(row)));
  const nudged = referenceCg(
    C.map((row, i) => row.map((v, j) => v + nudge(i + j) * cMax)),
    rho,
    g.map((v, i) => v * (1 + nudge(i))),
    budget,
    tol,
    curvature === "hessian",
  );
  const spread = ref.d.reduce((w, v, i) => Math.max(w, Math.abs(v - nudged.d[i])), 0) /
    Math.max(1e-300, ...ref.d.map(Math.abs));
  return { ...ref, g, predicted, spread };
}

const shapeArb = fc.record({
  n: fc.integer({ min: 1, max: 5 }),
  inp: fc.integer({ min: 1, max: 3 }),
  hid: fc.integer({ min: 1, max: 3 }),
  out: fc.integer({ min: 1, max: 3 }),
  loss: fc.constantFrom("mse" as const, "ce" as const),
});
export const problemArb = fc.record({
  shape: shapeArb,
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  scale: fc.double({ min: 0.2, max: 1.5, noNaN: true }),
}).filter(({ shape }) => shape.loss === "mse" || shape.out >= 2)
  .map(({ shape, seed, scale }) => makeProblem(seed, shape, scale));
