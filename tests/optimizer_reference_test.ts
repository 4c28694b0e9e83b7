/**
 * SGN, SGD and Adam against an independent float64 implementation written here from
 * ../shared/seed/SGN-ALGORITHM.md: explicit Jacobians and Gauss-Newton matrices of a small model
 * with closed-form derivatives, dense CG exactly as the spec states it, the trust-region and
 * Armijo rules on the host, the rho and learning-rate schedules, momentum and bias correction.
 * The library's steps must agree value by value (records and parameters), over trajectories
 * chosen so that every branch is taken; the test checks that they were.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { meanSquaredError } from "../models/losses.ts";
import { SGN, type SgnStepRecord } from "../sgn/sgn.ts";
import type { SgnOptions } from "../sgn/options.ts";
import { Adam, resolveSgdOptions, SGD, type SgdOptions } from "../sgn/baselines.ts";
import { backends, Random } from "./harness.ts";
import {
  type Branch,
  gradAndG,
  loss,
  params,
  type Problem,
  problem,
  ReferenceSgn,
  solve,
} from "./reference.ts";

const float64 = (await backends()).filter((be) => be.dtypes.includes("float64"));

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
  ["cos schedule, the seed's Armijo rule, an exhausted line search", "sigmoid", 8, {
    dampRho: 0.2,
    dampRhoMin: 0.05,
    rhoDecay: "cos",
    k: 2,
    alpha: 64,
    maxLsIters: 3,
    armijo: "seed",
    cgMaxIters: 5,
    cgMinIters: 5,
  }],
  // A large Armijo constant widens the band where the two rules decide differently.
  ...(["shrinking", "seed"] as const).map((
    armijo,
  ): [string, Problem["act"], number, SgnOptions] => [
    `Armijo rule "${armijo}" with c = 0.45`,
    "sigmoid",
    6,
    { dampRho: 0.05, alpha: 4, cLs: 0.45, armijo, cgMaxIters: 4, cgMinIters: 4 },
  ]),
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
            // The richer record: predicted change, each try's loss, the threshold, next rho.
            close(got.predicted, want.pred, `${at}: predicted change`, 1e-8);
            assert.equal(got.lsLosses.length, want.losses.length, `${at}: tries recorded`);
            got.lsLosses.forEach((v, k) => close(v, want.losses[k], `${at}: try ${k} loss`, 1e-8));
            if (Number.isNaN(want.threshold)) assert.ok(Number.isNaN(got.armijoThreshold));
            else close(got.armijoThreshold, want.threshold, `${at}: Armijo threshold`, 1e-8);
            close(
              got.nextRho,
              options.trustRegion ? ref.rho : ref.scheduledAt(s + 1),
              `${at}: next rho`,
            );
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
        "armijo-rules-differ",
        "rho-cos-after-k",
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
      // The options with SGD's defaults filled in (their one home, sgn/baselines.ts).
      const s = resolveSgdOptions(options);
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

for (const be of float64) {
  Deno.test(`SGN (${be.name}): trust-region decisions on both sides of 1/4 and 3/4`, async () => {
    // A quadratic (linear model, MSE) and an exact CG solve d = -(G + rho I)^-1 g: then
    // L(theta + a d) - L0 = a g.d + a^2 d.G.d / 2 and the predicted change is g.d / 2, so the
    // step size a that gives any ratio tau is a root of a quadratic.
    const p = problem(13, 12, 2, 2, "linear");
    const theta0 = initialTheta(p, 14, 1);
    const rho = 0.5;
    const { g, G } = gradAndG(p, theta0);
    const A = G.map((row, u) => row.map((v, w) => v + (u === w ? rho : 0)));
    const d = solve(A, g.map((v) => -v));
    const gd = g.reduce((s, v, k) => s + v * d[k], 0);
    const dGd = d.reduce((s, v, u) => s + v * G[u].reduce((t, x, w) => t + x * d[w], 0), 0);
    for (
      const [tau, next] of [[0.24, 1.5 * rho], [0.26, rho], [0.74, rho], [0.76, (2 / 3) * rho]]
    ) {
      const a = (-gd + Math.sqrt(gd * gd + dGd * tau * gd)) / dGd;
      const lib = libraryModel(be, p);
      const opt = new SGN(libraryParams(be, p, theta0), {
        dampRho: rho,
        trustRegion: true,
        lineSearch: false,
        alpha: a,
        cgTol: 0,
        cgMaxIters: 3 * params(p),
        cgMinIters: 3 * params(p),
      });
      const rec = await opt.step(lib.model, lib.lossFn);
      close(rec.ratio, tau, `ratio at a = ${a}`, 1e-6);
      close(opt.rho, next, `rho after a ratio of ${tau}`, 1e-12);
      opt.dispose();
      lib.dispose();
    }
  });
}
