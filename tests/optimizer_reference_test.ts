/**
 * SGN, SGD and Adam against an independent float64 implementation written here from
 * ../shared/seed/SGN-ALGORITHM.md: explicit Jacobians and Gauss-Newton matrices of a small model
 * with closed-form derivatives, dense CG exactly as the spec states it, the trust-region and
 * Armijo rules on the host, the rho and learning-rate schedules, momentum and bias correction.
 * The library's steps must agree value by value (records and parameters), over trajectories
 * chosen so that every branch is taken; the test checks that they were.
 */
import assert from "node:assert/strict";
import type { Backend } from "../backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { meanSquaredError } from "../models/losses.ts";
import { SGN, type SgnStepRecord } from "../sgn/sgn.ts";
import type { SgnOptions } from "../sgn/options.ts";
import { Adam, SGD, type SgdOptions } from "../sgn/baselines.ts";
import { backends, Random } from "./harness.ts";

const float64 = (await backends()).filter((be) => be.dtypes.includes("float64"));

// --- the model, by hand: z = act(X W + b), MSE over N x D outputs ----------------------------

interface Problem {
  n: number;
  i: number;
  d: number;
  x: Float64Array;
  y: Float64Array;
  act: "linear" | "sigmoid";
}

function problem(seed: number, n: number, i: number, d: number, act: Problem["act"]): Problem {
  const rng = new Random(seed);
  const x = Float64Array.from({ length: n * i }, () => rng.range(-1, 1));
  const y = Float64Array.from(
    { length: n * d },
    () => rng.range(act === "sigmoid" ? 0.1 : -2, 0.9),
  );
  return { n, i, d, x, y, act };
}

const params = (p: Problem) => p.i * p.d + p.d;

/** Pre-activations a, outputs z and dz/da of the batch. */
function forward(p: Problem, theta: Float64Array) {
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

function loss(p: Problem, theta: Float64Array): number {
  const { z } = forward(p, theta);
  let s = 0;
  for (let k = 0; k < z.length; k++) s += (z[k] - p.y[k]) ** 2;
  return s / (p.n * p.d);
}

/** The Jacobian of the outputs [N D x P] (seed order: W row-major, then b). */
function jacobian(p: Problem, theta: Float64Array): Float64Array[] {
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
function gradAndG(p: Problem, theta: Float64Array) {
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

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return s;
};
const matvec = (A: Float64Array[], v: Float64Array) => Float64Array.from(A, (row) => dot(row, v));
const maxAbs = (v: Float64Array) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/** Dense solve of A x = b by Gaussian elimination with partial pivoting. */
function solve(A: Float64Array[], b: Float64Array): Float64Array {
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

type Resolved = Required<
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

const SPEC_DEFAULTS: Resolved = {
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
type Branch =
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
  | "armijo-seed";

class ReferenceSgn {
  readonly o: Resolved;
  rho: number;
  t = 0;
  m: Float64Array;
  branches = new Set<Branch>();

  constructor(readonly p: Problem, public theta: Float64Array, options: SgnOptions) {
    this.o = { ...SPEC_DEFAULTS, ...options } as Resolved;
    this.rho = this.o.dampRho;
    this.m = new Float64Array(theta.length);
  }

  step() {
    const { o, p } = this;
    const t = ++this.t;
    const hit = (b: Branch) => this.branches.add(b);
    // 1. Loss, gradient, momentum.
    const L0 = loss(p, this.theta);
    const { g, G } = gradAndG(p, this.theta);
    this.m = this.m.map((mk, k) => o.beta * mk + (1 - o.beta) * g[k]);
    const mHat = this.m.map((mk) => mk / (1 - o.beta ** t));
    if (o.beta > 0) hit("momentum");
    // 3. Damping.
    let rho: number;
    if (o.trustRegion) rho = this.rho;
    else if (o.rhoDecay === "linear") {
      rho = Math.max(o.dampRho + (o.dampRhoMin - o.dampRho) * (t - 1) / (o.k - 1), o.dampRhoMin);
      hit(rho === o.dampRhoMin ? "rho-floor" : "rho-linear");
    } else if (o.rhoDecay === "cos") {
      const c = o.dampRho * Math.cos((Math.PI / 2) * t / o.k);
      rho = t > o.k || c < o.dampRhoMin ? o.dampRhoMin : c;
      hit(rho === o.dampRhoMin ? "rho-floor" : "rho-cos");
    } else rho = o.dampRho;
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
    let pred = NaN;
    if (o.lineSearch || o.trustRegion) {
      L1 = loss(p, at(a));
      tries = 1;
      if (o.trustRegion) {
        pred = 0.5 * dot(r.map((v, u) => v + g[u]), d);
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
        while (!(L1 <= rhs()) && backtracks < o.maxLsIters) {
          a *= o.rhoLs;
          L1 = loss(p, at(a));
          tries++;
          backtracks++;
          hit("ls-backtrack");
        }
        if (!(L1 <= rhs())) hit("ls-exhausted");
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
      d,
    };
  }
}

// --- the library on the same problem ---------------------------------------------------------

function libraryModel(be: Backend, p: Problem) {
  const x = tensor(p.x, [p.n, p.i], { backend: be, dtype: "float64" });
  const y = tensor(p.y, [p.n, p.d], { backend: be, dtype: "float64" });
  const model = (w: Tensor, b: Tensor) => {
    const a = o.add(o.matmul(x, w), b);
    return p.act === "sigmoid" ? o.sigmoid(a) : a;
  };
  return { model, lossFn: meanSquaredError(y), dispose: () => (x.dispose(), y.dispose()) };
}

function libraryParams(be: Backend, p: Problem, theta: Float64Array): Tensor[] {
  return [
    tensor(theta.subarray(0, p.i * p.d), [p.i, p.d], { backend: be, dtype: "float64" }),
    tensor(theta.subarray(p.i * p.d), [p.d], { backend: be, dtype: "float64" }),
  ];
}

async function flat(ts: readonly Tensor[]): Promise<Float64Array> {
  const parts = await Promise.all(ts.map((t) => t.data()));
  return Float64Array.from(parts.flatMap((a) => Array.from(a)));
}

function close(actual: number, expected: number, what: string, rtol = 1e-9) {
  if (Number.isNaN(expected) && Number.isNaN(actual)) return;
  assert.ok(
    Math.abs(actual - expected) <= rtol * (1 + Math.abs(expected)),
    `${what}: ${actual}, the reference says ${expected}`,
  );
}

function initialTheta(p: Problem, seed: number, scale: number): Float64Array {
  const rng = new Random(seed);
  return Float64Array.from({ length: params(p) }, () => scale * rng.normal());
}

/** The trajectories: together they take every branch of SGN-ALGORITHM.md's step. */
const TRAJECTORIES: [string, Problem["act"], number, SgnOptions][] = [
  ["trust region + line search, big first steps", "sigmoid", 8, {
    dampRho: 1e-4,
    dampRhoMin: 1e-3,
    trustRegion: true,
    alpha: 8,
    cgMaxIters: 4,
    cgMinIters: 2,
    kCg: 3,
    cgTol: 1e-7,
  }],
  ["trust region near its floor, tolerance exits", "linear", 8, {
    dampRho: 3,
    dampRhoMin: 0.5,
    trustRegion: true,
    lineSearch: false,
    cgMaxIters: 40,
    cgMinIters: 40,
    cgTol: 1e-3,
  }],
  ["a mid-range trust-region ratio", "sigmoid", 10, {
    dampRho: 0.05,
    trustRegion: true,
    lineSearch: false,
    alpha: 1.7,
    cgMaxIters: 3,
    cgMinIters: 3,
  }],
  ["momentum, preconditioner, linear rho schedule", "sigmoid", 8, {
    dampRho: 0.5,
    dampRhoMin: 0.01,
    rhoDecay: "linear",
    k: 5,
    beta: 0.9,
    cgPrec: true,
    alphaExp: 0.5,
    cgMaxIters: 3,
    cgMinIters: 3,
  }],
  ["cos schedule, the seed's Armijo rule, an exhausted line search", "sigmoid", 7, {
    dampRho: 0.2,
    dampRhoMin: 0.05,
    rhoDecay: "cos",
    k: 4,
    alpha: 64,
    maxLsIters: 3,
    armijo: "seed",
    cgMaxIters: 5,
    cgMinIters: 5,
  }],
];

for (const be of float64) {
  for (const mode of ["host", "device"] as const) {
    Deno.test(`SGN (${be.name}, ${mode}) = the spec's step, value by value, on every branch`, async () => {
      const taken = new Set<Branch>();
      for (const [what, act, steps, options] of TRAJECTORIES) {
        const p = problem(3, 24, 3, 2, act);
        const theta0 = initialTheta(p, 4, act === "sigmoid" ? 1 : 0.5);
        const ref = new ReferenceSgn(p, theta0, options);
        const lib = libraryModel(be, p);
        const opt = new SGN(libraryParams(be, p, theta0), { ...options, mode });
        try {
          for (let s = 1; s <= steps; s++) {
            const want = ref.step();
            const got: SgnStepRecord = await opt.step(lib.model, lib.lossFn);
            const at = `${what}, step ${s}`;
            assert.equal(got.cgIters, want.cgIters, `${at}: CG iterations`);
            assert.equal(got.lsTries, want.lsTries, `${at}: line-search tries`);
            close(got.alpha, want.alpha, `${at}: step size`);
            for (const key of ["loss", "lossAfter", "rho", "cgResidual"] as const) {
              close(got[key], want[key], `${at}: ${key}`, 1e-8);
            }
            // The ratio divides a difference of two losses by the predicted change: rounding
            // of the losses (1e-16 relative) is amplified by L0 / |pred| as they converge.
            if (!Number.isNaN(want.ratio)) {
              const tol = 1e-12 * (Math.abs(want.loss) / Math.abs(want.pred)) +
                1e-9 * Math.abs(want.ratio);
              assert.ok(
                Math.abs(got.ratio - want.ratio) <= tol,
                `${at}: ratio ${got.ratio}, the reference says ${want.ratio} (tolerance ${tol})`,
              );
            } else assert.ok(Number.isNaN(got.ratio), `${at}: ratio ${got.ratio} without TR`);
            const theta = await flat(opt.params);
            theta.forEach((v, u) => close(v, ref.theta[u], `${at}: theta[${u}]`, 1e-8));
          }
        } finally {
          opt.dispose();
          lib.dispose();
        }
        ref.branches.forEach((b) => taken.add(b));
      }
      const all: Branch[] = [
        "tr-grow",
        "tr-shrink",
        "tr-keep",
        "tr-floor",
        "ls-backtrack",
        "ls-exhausted",
        "cg-tol-exit",
        "cg-budget-min",
        "cg-budget-max",
        "momentum",
        "precond",
        "rho-linear",
        "rho-cos",
        "rho-floor",
        "armijo-seed",
      ];
      assert.deepEqual(all.filter((b) => !taken.has(b)), [], "branches no trajectory took");
    });
  }

  Deno.test(`SGN (${be.name}): with enough CG iterations d solves (G + rho I) d = -g densely`, async () => {
    for (const act of ["linear", "sigmoid"] as const) {
      for (const cgPrec of [false, true]) {
        const p = problem(7, 10, 3, 2, act);
        const theta0 = initialTheta(p, 8, 1);
        const rho = 0.3;
        const { g, G } = gradAndG(p, theta0);
        const A = G.map((row, u) => row.map((v, w) => v + (u === w ? rho : 0)));
        const d = solve(A, g.map((v) => -v));
        const lib = libraryModel(be, p);
        const opt = new SGN(libraryParams(be, p, theta0), {
          dampRho: rho,
          lineSearch: false,
          trustRegion: false,
          cgPrec,
          alphaExp: 0.75,
          cgTol: 0,
          cgMaxIters: 2 * params(p),
          cgMinIters: 2 * params(p),
          kCg: 1,
        });
        // CG stops early only when the residual is exactly 0; run until then.
        await opt.step(lib.model, lib.lossFn);
        const theta = await flat(opt.params);
        theta.forEach((v, u) =>
          close(v - theta0[u], d[u], `${act}, cgPrec ${cgPrec}: d[${u}]`, 1e-7)
        );
        opt.dispose();
        lib.dispose();
      }
    }
  });

  Deno.test(`SGD and Adam (${be.name}) = their recurrences over 12 steps, every schedule`, async () => {
    const p = problem(11, 16, 3, 2, "sigmoid");
    const theta0 = initialTheta(p, 12, 1);
    const schedules: SgdOptions[] = [
      { lr: 0.5, momentum: 0.9 },
      { lr: 0.5, momentum: 0.5, schedule: "linear", lrFinal: 0.05, k: 6 },
      { lr: 0.5, schedule: "cos", lrFinal: 0.1, k: 7 },
      { lr: 0.5, momentum: 0.3, schedule: "step", decay: 0.5, step: 4, lrFinal: 0.07 },
    ];
    const lrAt = (s: Required<SgdOptions>, t: number) => {
      switch (s.schedule) {
        case "linear":
          return t >= s.k ? s.lrFinal : s.lr + (s.lrFinal - s.lr) * (t - 1) / (s.k - 1);
        case "cos": {
          const lr = s.lr * Math.cos((Math.PI / 2) * t / s.k);
          return t > s.k || lr < s.lrFinal ? s.lrFinal : lr;
        }
        case "step":
          return Math.max(s.lr * s.decay ** Math.floor(t / s.step), s.lrFinal);
        default:
          return s.lr;
      }
    };
    for (const options of schedules) {
      const s = {
        momentum: 0,
        schedule: "const",
        lrFinal: 0,
        k: 10,
        decay: 0.5,
        step: 10,
        ...options,
      } as Required<SgdOptions>;
      const lib = libraryModel(be, p);
      const opt = new SGD(libraryParams(be, p, theta0), options);
      let theta = Float64Array.from(theta0);
      let v = new Float64Array(theta.length);
      for (let t = 1; t <= 12; t++) {
        const L0 = loss(p, theta);
        const { g } = gradAndG(p, theta);
        const lr = lrAt(s, t);
        v = v.map((vk, k) => s.momentum * vk + lr * g[k]);
        theta = theta.map((x, k) => x - v[k]);
        const got = await opt.step(lib.model, lib.lossFn);
        close(got.loss, L0, `SGD ${s.schedule} step ${t}: loss`);
        close(got.lr, lr, `SGD ${s.schedule} step ${t}: lr`);
        (await flat(opt.params)).forEach((x, k) =>
          close(x, theta[k], `SGD ${s.schedule} step ${t}: theta[${k}]`)
        );
      }
      opt.dispose();
      lib.dispose();
    }
    // Adam, with its bias correction 1 - beta^t (not 1 - beta) at every step.
    const [lr, b1, b2, eps] = [0.05, 0.8, 0.9, 1e-8];
    const lib = libraryModel(be, p);
    const adam = new Adam(libraryParams(be, p, theta0), { lr, beta1: b1, beta2: b2, eps });
    let theta = Float64Array.from(theta0);
    let m = new Float64Array(theta.length);
    let v2 = new Float64Array(theta.length);
    for (let t = 1; t <= 12; t++) {
      const { g } = gradAndG(p, theta);
      m = m.map((x, k) => b1 * x + (1 - b1) * g[k]);
      v2 = v2.map((x, k) => b2 * x + (1 - b2) * g[k] * g[k]);
      theta = theta.map((x, k) =>
        x - lr * (m[k] / (1 - b1 ** t)) / (Math.sqrt(v2[k] / (1 - b2 ** t)) + eps)
      );
      await adam.step(lib.model, lib.lossFn);
      (await flat(adam.params)).forEach((x, k) =>
        close(x, theta[k], `Adam step ${t}: theta[${k}]`)
      );
    }
    adam.dispose();
    lib.dispose();
  });
}
