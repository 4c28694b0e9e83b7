/**
 * An independent float64 implementation of what the optimizers compute, written from
 * ../shared/seed/SGN-ALGORITHM.md for the tests: a small model z = act(X W + b) with explicit
 * Jacobian and Gauss-Newton matrix, MSE, dense CG, the trust-region and Armijo rules.
 */
import type { SgnOptions } from "../sgn/options.ts";
import { Random } from "./harness.ts";

// --- the model, by hand: z = act(X W + b), MSE over N x D outputs ----------------------------

export interface Problem {
  n: number;
  i: number;
  d: number;
  x: Float64Array;
  y: Float64Array;
  act: "linear" | "sigmoid";
}

export function problem(
  seed: number,
  n: number,
  i: number,
  d: number,
  act: Problem["act"],
): Problem {
  const rng = new Random(seed);
  const x = Float64Array.from({ length: n * i }, () => rng.range(-1, 1));
  const y = Float64Array.from(
    { length: n * d },
    () => rng.range(act === "sigmoid" ? 0.1 : -2, 0.9),
  );
  return { n, i, d, x, y, act };
}

export const params = (p: Problem) => p.i * p.d + p.d;

/** Pre-activations a, outputs z and dz/da of the batch. */
export function forward(p: Problem, theta: Float64Array) {
  const a = new Float64Array(p.n * p.d);
  for (let r = 0; r < p.n; r++) {
    for (let j = 0; j < p.d; j++) {
      let s = theta[p.i * p.d + j];
      for (let k = 0; k < p.i; k++) s += p.x[r * p.i + k] * theta[k * p.d + j];
      a[r * p.d + j] = s;
    }
  }
  const z = a.map((v) => (p.act === "sigmoid" ? 1 / (1 + Math.exp(-v)) : v));
  const dz = z.map((v) => (p.act === "sigmoid" ? v * (1 - v) : 1));
  return { z, dz };
}

export function loss(p: Problem, theta: Float64Array): number {
  const { z } = forward(p, theta);
  let s = 0;
  for (let k = 0; k < z.length; k++) s += (z[k] - p.y[k]) ** 2;
  return s / (p.n * p.d);
}

/** The Jacobian of the outputs [N D x P] (seed order: W row-major, then b). */
export function jacobian(p: Problem, theta: Float64Array): Float64Array[] {
  const { dz } = forward(p, theta);
  const rows: Float64Array[] = [];
  for (let r = 0; r < p.n; r++) {
    for (let j = 0; j < p.d; j++) {
      const row = new Float64Array(params(p));
      for (let k = 0; k < p.i; k++) row[k * p.d + j] = dz[r * p.d + j] * p.x[r * p.i + k];
      row[p.i * p.d + j] = dz[r * p.d + j];
      rows.push(row);
    }
  }
  return rows;
}

/** Gradient and G = J^T (2 / (N D)) J at theta. */
export function gradAndG(p: Problem, theta: Float64Array) {
  const { z } = forward(p, theta);
  const J = jacobian(p, theta);
  const P = params(p);
  const c = 2 / (p.n * p.d);
  const g = new Float64Array(P);
  const G = Array.from({ length: P }, () => new Float64Array(P));
  J.forEach((row, k) => {
    for (let u = 0; u < P; u++) {
      g[u] += c * row[u] * (z[k] - p.y[k]);
      for (let v = 0; v < P; v++) G[u][v] += c * row[u] * row[v];
    }
  });
  return { g, G };
}

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return s;
};
export const matvec = (A: Float64Array[], v: Float64Array) =>
  Float64Array.from(A, (row) => dot(row, v));
export const maxAbs = (v: Float64Array) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/** Dense solve of A x = b by Gaussian elimination with partial pivoting. */
export function solve(A: Float64Array[], b: Float64Array): Float64Array {
  const n = b.length;
  const M = A.map((row, k) => [...row, b[k]]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[piv][c])) piv = r;
    [M[c], M[piv]] = [M[piv], M[c]];
    for (let r = c + 1; r < n; r++) {
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  const x = new Float64Array(n);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r][n];
    for (let k = r + 1; k < n; k++) s -= M[r][k] * x[k];
    x[r] = s / M[r][r];
  }
  return x;
}

// --- SGN as SGN-ALGORITHM.md states it ---------------------------------------------------------

export type Resolved = Required<
  Pick<
    SgnOptions,
    | "dampRho"
    | "dampRhoMin"
    | "beta"
    | "cgPrec"
    | "alphaExp"
    | "trustRegion"
    | "rhoDecay"
    | "k"
    | "alpha"
    | "cgTol"
    | "cgMaxIters"
    | "cgMinIters"
    | "kCg"
    | "lineSearch"
    | "cLs"
    | "rhoLs"
    | "maxLsIters"
    | "armijo"
  >
>;

export const SPEC_DEFAULTS: Resolved = {
  dampRho: 1e-3,
  dampRhoMin: 0,
  beta: 0,
  cgPrec: false,
  alphaExp: 1,
  trustRegion: false,
  rhoDecay: "const",
  k: 10,
  alpha: 1,
  cgTol: 1e-6,
  cgMaxIters: 10,
  cgMinIters: 10,
  kCg: 10,
  lineSearch: true,
  cLs: 1e-4,
  rhoLs: 0.5,
  maxLsIters: 10,
  armijo: "shrinking",
};

/** Which branches a reference step took. */
export type Branch =
  | "tr-grow"
  | "tr-shrink"
  | "tr-keep"
  | "tr-floor"
  | "ls-backtrack"
  | "ls-exhausted"
  | "cg-tol-exit"
  | "cg-budget-min"
  | "cg-budget-max"
  | "momentum"
  | "precond"
  | "rho-linear"
  | "rho-cos"
  | "rho-floor"
  | "armijo-seed"
  | "armijo-rules-differ"
  | "rho-cos-after-k";

export class ReferenceSgn {
  readonly o: Resolved;
  rho: number;
  t = 0;
  m: Float64Array;
  branches = new Set<Branch>();

  constructor(readonly p: Problem, public theta: Float64Array, options: SgnOptions = {}) {
    this.o = { ...SPEC_DEFAULTS, ...options } as Resolved;
    this.rho = this.o.dampRho;
    this.m = new Float64Array(theta.length);
  }

  /** rho at step t by the schedule (SGN-ALGORITHM.md step 3, the trust region off). */
  scheduledAt(t: number): number {
    const o = this.o;
    if (o.rhoDecay === "linear") {
      return Math.max(o.dampRho + (o.dampRhoMin - o.dampRho) * (t - 1) / (o.k - 1), o.dampRhoMin);
    }
    if (o.rhoDecay === "cos") {
      const c = o.dampRho * Math.cos((Math.PI / 2) * t / o.k);
      return t > o.k || c < o.dampRhoMin ? o.dampRhoMin : c;
    }
    return o.dampRho;
  }

  /** One step on the mini-batch `p` (default: the problem given at construction). */
  step(p: Problem = this.p) {
    const { o } = this;
    const t = ++this.t;
    const hit = (b: Branch) => this.branches.add(b);
    // 1. Loss, gradient, momentum.
    const L0 = loss(p, this.theta);
    const { g, G } = gradAndG(p, this.theta);
    this.m = this.m.map((mk, k) => o.beta * mk + (1 - o.beta) * g[k]);
    const mHat = this.m.map((mk) => mk / (1 - o.beta ** t));
    if (o.beta > 0) hit("momentum");
    // 3. Damping.
    const rho = o.trustRegion ? this.rho : this.scheduledAt(t);
    if (!o.trustRegion && o.rhoDecay !== "const") {
      hit(rho === o.dampRhoMin ? "rho-floor" : o.rhoDecay === "linear" ? "rho-linear" : "rho-cos");
      // Past K the cosine comes back above the floor (3K < t < 5K): the schedule must not.
      const c = o.dampRho * Math.cos((Math.PI / 2) * t / o.k);
      if (o.rhoDecay === "cos" && t > o.k && c > o.dampRhoMin) hit("rho-cos-after-k");
    }
    // 2. Preconditioner from the base damping (the trust region's current value with TR on).
    const base = o.trustRegion ? this.rho : o.dampRho;
    const M = mHat.map((v) => (o.cgPrec ? 1 / (v * v + base) ** o.alphaExp : 1));
    if (o.cgPrec) hit("precond");
    // 4. CG on (G + rho I) d = -mHat.
    const budget = t >= o.kCg ? o.cgMaxIters : o.cgMinIters;
    if (o.cgMinIters !== o.cgMaxIters) hit(t >= o.kCg ? "cg-budget-max" : "cg-budget-min");
    let r = Float64Array.from(mHat);
    let y = r.map((v, k) => M[k] * v);
    let pv = y.map((v) => -v);
    let d = new Float64Array(r.length);
    let k = 0;
    while (k < budget && maxAbs(r) > o.cgTol) {
      const q = matvec(G, pv).map((v, u) => v + rho * pv[u]);
      const a = dot(r, y) / dot(pv, q);
      d = d.map((v, u) => v + a * pv[u]);
      const rNew = r.map((v, u) => v + a * q[u]);
      const yNew = rNew.map((v, u) => M[u] * v);
      const b = dot(rNew, yNew) / dot(r, y);
      pv = pv.map((v, u) => -yNew[u] + b * v);
      r = rNew;
      y = yNew;
      k++;
    }
    if (k < budget) hit("cg-tol-exit");
    // 5. Update, trust region, line search.
    const old = this.theta;
    const at = (a: number) => old.map((v, u) => v + a * d[u]);
    let a = o.alpha;
    let L1 = L0;
    let tries = 0;
    let ratio = NaN;
    const pred = 0.5 * dot(r.map((v, u) => v + g[u]), d);
    const losses: number[] = [];
    let threshold = NaN;
    if (o.lineSearch || o.trustRegion) {
      L1 = loss(p, at(a));
      losses.push(L1);
      tries = 1;
      if (o.trustRegion) {
        ratio = (L1 - L0) / pred;
        if (ratio < 0.25) {
          this.rho = 1.5 * rho;
          hit("tr-grow");
        } else if (ratio > 0.75) {
          this.rho = Math.max((2 / 3) * rho, o.dampRhoMin);
          hit(this.rho === o.dampRhoMin ? "tr-floor" : "tr-shrink");
        } else hit("tr-keep");
      }
      if (o.lineSearch) {
        const slope = o.cLs * dot(mHat, d);
        if (o.armijo === "seed") hit("armijo-seed");
        const rhs = () => L0 + (o.armijo === "seed" ? o.alpha : a) * slope;
        let backtracks = 0;
        // Where the other rule would decide otherwise, the choice of rule matters.
        const differ = () => (L1 <= L0 + o.alpha * slope) !== (L1 <= L0 + a * slope);
        if (differ()) hit("armijo-rules-differ");
        while (!(L1 <= rhs()) && backtracks < o.maxLsIters) {
          a *= o.rhoLs;
          L1 = loss(p, at(a));
          losses.push(L1);
          tries++;
          backtracks++;
          hit("ls-backtrack");
          if (differ()) hit("armijo-rules-differ");
        }
        if (!(L1 <= rhs())) hit("ls-exhausted");
        threshold = rhs();
      }
    }
    this.theta = at(a);
    return {
      loss: L0,
      lossAfter: L1,
      rho,
      alpha: a,
      cgIters: k,
      cgResidual: maxAbs(r),
      lsTries: tries,
      ratio,
      pred,
      losses,
      threshold,
      d,
    };
  }
}
