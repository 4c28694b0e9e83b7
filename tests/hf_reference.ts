/**
 * An independent reference SGN step with CG's Hessian-free refinements (warm start, relative
 * stop, backtracking), trust region and line search included, on tests/reference.ts's model (its
 * Jacobian, G and loss written by hand), and the comparison of a library step record with it,
 * field by field; for tests/cg_sgn_steps_test.ts.
 */

import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { meanSquaredError } from "../models/losses.ts";
import type { SgnStepRecord } from "../sgn/sgn.ts";
import type { SgnOptions } from "../sgn/options.ts";
import { dot, gradAndG, loss, type Problem } from "./reference.ts";
import { close, refBacktrack, refCg, savePoints } from "./cg_reference.ts";

export type HfOptions = Required<
  Pick<
    SgnOptions,
    | "dampRho"
    | "dampRhoMin"
    | "trustRegion"
    | "lineSearch"
    | "alpha"
    | "cgTol"
    | "cgMaxIters"
    | "cgMinIters"
    | "kCg"
    | "maxLsIters"
    | "cLs"
    | "rhoLs"
    | "beta"
    | "cgPrec"
    | "alphaExp"
    | "cgWarmStart"
    | "cgStop"
    | "cgBacktrack"
  >
>;

/** What one reference step did, in the record's terms, and which branches it took. */
interface RefRecord {
  loss: number;
  lossAfter: number;
  rho: number;
  alpha: number;
  cgIters: number;
  cgIterate: number;
  cgRelativeStop: boolean;
  cgWarmStart: boolean;
  cgBacktrackLosses: number[];
  lsLosses: number[];
  predicted: number;
  ratio: number;
  margin: number;
}

/**
 * SGN's step (SGN-ALGORITHM.md; constant rho or the trust region, Armijo as Algorithm 3.1) with
 * Martens' refinements: CG from zeta d_prev (the previous step's last CG iterate), the relative
 * stop, backtracking over the iterates at ceil(1.3^j) and the last, the trust region's
 * prediction from the chosen iterate's quadratic model. G, g and the loss come from `model`.
 */
export class ReferenceHf {
  rho: number;
  t = 0;
  m: Float64Array;
  dPrev: Float64Array | undefined;

  constructor(
    readonly model: {
      loss(theta: Float64Array): number;
      gradAndG(theta: Float64Array): { g: Float64Array; G: Float64Array[] };
    },
    public theta: Float64Array,
    readonly o: HfOptions,
  ) {
    this.rho = o.dampRho;
    this.m = new Float64Array(theta.length);
  }

  step(): RefRecord {
    const { o, theta } = this;
    const t = ++this.t;
    const L0 = this.model.loss(theta);
    const { g, G } = this.model.gradAndG(theta);
    this.m = this.m.map((v, u) => o.beta * v + (1 - o.beta) * g[u]);
    const mHat = this.m.map((v) => v / (1 - o.beta ** t));
    const rho = o.trustRegion ? this.rho : o.dampRho;
    const M = o.cgPrec ? mHat.map((v) => 1 / (v * v + rho) ** o.alphaExp) : undefined;
    const A = G.map((row, u) => row.map((v, w) => v + (u === w ? rho : 0)));
    const warm = o.cgWarmStart > 0 && this.dPrev !== undefined;
    const cg = refCg(A, mHat, {
      budget: t >= o.kCg ? o.cgMaxIters : o.cgMinIters,
      tol: o.cgTol,
      M,
      d0: warm ? this.dPrev!.map((v) => o.cgWarmStart * v) : undefined,
      relative: o.cgStop === "relative",
    });
    this.dPrev = cg.ds[cg.iters];
    const at = (d: Float64Array, a: number) => theta.map((v, u) => v + a * d[u]);
    // Backtracking over the kept iterates, from the last back while each is better.
    const kept = o.cgBacktrack ? [...savePoints(cg.iters - 1), cg.iters] : [cg.iters];
    const btLosses: number[] = [];
    let chosen = kept.length - 1;
    if (o.cgBacktrack) {
      const ls = kept.map((i) => this.model.loss(at(cg.ds[i], 1)));
      const bt = refBacktrack(ls);
      chosen = bt.chosen;
      for (let k = 0; k < bt.evaluated; k++) btLosses.push(ls[kept.length - 1 - k]);
    }
    const d = cg.ds[kept[chosen]];
    const r = cg.rs[kept[chosen]];
    const predicted = 0.5 * dot(r.map((v, u) => v + g[u]), d);
    const md = dot(mHat, d);
    // Line search and trust region.
    const lsLosses: number[] = [];
    let a = o.alpha;
    let L1 = L0;
    let ratio = NaN;
    if (o.lineSearch || o.trustRegion) {
      for (let i = 0; i < (o.lineSearch ? o.maxLsIters + 1 : 1); i++) {
        a = o.alpha * o.rhoLs ** i;
        L1 = this.model.loss(at(d, a));
        lsLosses.push(L1);
        if (!o.lineSearch || L1 <= L0 + a * o.cLs * md) break;
      }
      if (o.trustRegion) {
        ratio = (lsLosses[0] - L0) / predicted;
        this.rho = ratio < 0.25
          ? 1.5 * rho
          : ratio > 0.75
          ? Math.max((2 / 3) * rho, o.dampRhoMin)
          : rho;
      }
    }
    this.theta = at(d, a);
    return {
      loss: L0,
      lossAfter: L1,
      rho,
      alpha: a,
      cgIters: cg.iters,
      cgIterate: kept[chosen],
      cgRelativeStop: cg.relStop,
      cgWarmStart: warm,
      cgBacktrackLosses: btLosses,
      lsLosses,
      predicted,
      ratio,
      margin: cg.margin,
    };
  }
}

/** Holds a library record to the reference's, field by field. */
export function compareRecords(got: SgnStepRecord, want: RefRecord, at: string, rtol = 1e-8): void {
  assert.equal(got.cgIters, want.cgIters, `${at}: CG iterations`);
  assert.equal(got.cgRelativeStop, want.cgRelativeStop, `${at}: relative stop`);
  assert.equal(got.cgWarmStart, want.cgWarmStart, `${at}: warm start`);
  assert.equal(got.cgIterate, want.cgIterate, `${at}: chosen iterate`);
  assert.equal(
    got.cgBacktrackLosses.length,
    want.cgBacktrackLosses.length,
    `${at}: backtracking evaluations`,
  );
  got.cgBacktrackLosses.forEach((v, k) =>
    close(v, want.cgBacktrackLosses[k], `${at}: backtracking loss ${k}`, rtol)
  );
  assert.equal(got.lsTries, want.lsLosses.length, `${at}: line-search tries`);
  got.lsLosses.forEach((v, k) => close(v, want.lsLosses[k], `${at}: try ${k}`, rtol));
  close(got.alpha, want.alpha, `${at}: step size`, 0);
  for (const key of ["loss", "lossAfter", "rho", "predicted"] as const) {
    close(got[key], want[key], `${at}: ${key}`, rtol);
  }
  if (!Number.isNaN(want.ratio)) {
    // The ratio divides a difference of two losses by the prediction: rounding of the losses is
    // amplified by L0 / |pred|.
    const tol = 1e-12 * Math.abs(want.loss / want.predicted) + rtol * Math.abs(want.ratio);
    assert.ok(Math.abs(got.ratio - want.ratio) <= tol, `${at}: ratio ${got.ratio}, ${want.ratio}`);
  }
}

/** tests/reference.ts's model z = act(X W + b) with MSE, in the library and by hand. */
export function handModel(be: Backend, p: Problem) {
  const x = tensor(p.x, [p.n, p.i], { backend: be, dtype: "float64" });
  const y = tensor(p.y, [p.n, p.d], { backend: be, dtype: "float64" });
  return {
    ref: {
      loss: (th: Float64Array) => loss(p, th),
      gradAndG: (th: Float64Array) => gradAndG(p, th),
    },
    model: (w: Tensor, b: Tensor) => {
      const a = o.add(o.matmul(x, w), b);
      return p.act === "sigmoid" ? o.sigmoid(a) : a;
    },
    loss: meanSquaredError(y),
    params: (theta: Float64Array) => [
      tensor(theta.subarray(0, p.i * p.d), [p.i, p.d], { backend: be, dtype: "float64" }),
      tensor(theta.subarray(p.i * p.d), [p.d], { backend: be, dtype: "float64" }),
    ],
    dispose: () => (x.dispose(), y.dispose()),
  };
}

export const HF_DEFAULTS: HfOptions = {
  dampRho: 1e-3,
  dampRhoMin: 0,
  trustRegion: false,
  lineSearch: true,
  alpha: 1,
  cgTol: 1e-12,
  cgMaxIters: 120,
  cgMinIters: 120,
  kCg: 1,
  maxLsIters: 10,
  cLs: 1e-4,
  rhoLs: 0.5,
  beta: 0,
  cgPrec: false,
  alphaExp: 1,
  cgWarmStart: 0,
  cgStop: "fixed",
  cgBacktrack: false,
};
