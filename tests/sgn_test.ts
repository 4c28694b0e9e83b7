/**
 * SGN steps against independent computations: the exact least-squares minimizer (normal
 * equations solved on the host), CG's budgets and tolerance, the trust-region and Armijo rules
 * read off the step records, momentum's bias correction, and non-finite steps. Device mode is
 * held to the host mode. (The options and settings: tests/sgn_options_test.ts; SGN in training:
 * tests/sgn_train_test.ts.)
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { meanSquaredError } from "../models/losses.ts";
import { SGN, type SgnStepRecord } from "../sgn/sgn.ts";
import { cgBudget, resolveSgnOptions, type SgnOptions } from "../sgn/options.ts";
import { backends, cpu, Random } from "./harness.ts";

const all = await backends();

/** A least-squares problem z = X w + b with targets t; returns the data and the exact minimizer. */
function leastSquares(be: Backend, n: number, d: number, seed: number) {
  const rng = new Random(seed);
  const dtype: DType = be.dtypes.includes("float64") ? "float64" : "float32";
  const X = rng.array(n * d, (r) => r.normal());
  const t = rng.array(n, (r) => r.normal());
  // Normal equations for [w; b]: A^T A theta = A^T t with A = [X, 1].
  const m = d + 1;
  const ata = Array.from({ length: m }, () => new Float64Array(m));
  const atb = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    const row = [...X.subarray(i * d, i * d + d), 1];
    for (let a = 0; a < m; a++) {
      atb[a] += row[a] * t[i];
      for (let b = 0; b < m; b++) ata[a][b] += row[a] * row[b];
    }
  }
  // Gaussian elimination with partial pivoting.
  for (let c = 0; c < m; c++) {
    let p = c;
    for (let r = c + 1; r < m; r++) if (Math.abs(ata[r][c]) > Math.abs(ata[p][c])) p = r;
    [ata[c], ata[p]] = [ata[p], ata[c]];
    [atb[c], atb[p]] = [atb[p], atb[c]];
    for (let r = c + 1; r < m; r++) {
      const f = ata[r][c] / ata[c][c];
      for (let k = c; k < m; k++) ata[r][k] -= f * ata[c][k];
      atb[r] -= f * atb[c];
    }
  }
  const sol = new Float64Array(m);
  for (let c = m - 1; c >= 0; c--) {
    let s = atb[c];
    for (let k = c + 1; k < m; k++) s -= ata[c][k] * sol[k];
    sol[c] = s / ata[c][c];
  }
  const x = tensor(X, [n, d], { backend: be, dtype });
  const y = tensor(t, [n, 1], { backend: be, dtype });
  const params = () => [
    tensor(new Float64Array(d), [d, 1], { backend: be, dtype }),
    tensor([0], [1], { backend: be, dtype }),
  ];
  const model = (w: Tensor, b: Tensor) => o.add(o.matmul(x, w), b);
  return { x, y, params, model, solution: sol, dtype };
}

async function flatHost(ts: readonly Tensor[]): Promise<number[]> {
  const out: number[] = [];
  for (const t of ts) out.push(...await t.data());
  return out;
}

for (const be of all) {
  for (const mode of ["device", "host"] as const) {
    Deno.test(`SGN (${be.name}, ${mode}): one step with rho -> 0 reaches the exact least-squares minimizer`, async () => {
      const p = leastSquares(be, 40, 5, 1);
      const opt = new SGN(p.params(), {
        dampRho: 0,
        lineSearch: false,
        trustRegion: false,
        cgMaxIters: 12,
        cgMinIters: 12,
        cgTol: 0,
        mode,
      });
      const rec = await opt.step((w, b) => p.model(w, b), meanSquaredError(p.y));
      const got = await flatHost(opt.params);
      const tol = p.dtype === "float64" ? 1e-9 : 2e-4;
      got.forEach((v, i) =>
        assert.ok(Math.abs(v - p.solution[i]) <= tol, `theta[${i}] = ${v}, want ${p.solution[i]}`)
      );
      // Device mode reads the step's record once; host mode reads CG's scalars as the seed does:
      // r.y and max|r| before the loop, p.q, r.y and max|r| per iteration, then the record.
      const want = mode === "device" ? 1 : 2 + 3 * rec.cgIters + 1;
      assert.equal(
        rec.readbacks,
        want,
        `${mode}: readbacks of a step with ${rec.cgIters} CG iterations`,
      );
      assert.equal(rec.cgIters, 12, "CG ran its budget (tolerance 0)");
      opt.dispose();
    });
  }

  Deno.test(`SGN (${be.name}): device mode equals the host reference step by step`, async () => {
    const p = leastSquares(be, 60, 4, 2);
    const records: { recs: SgnStepRecord[]; params: number[] }[] = [];
    for (const mode of ["device", "host"] as const) {
      const opt = new SGN(p.params(), {
        dampRho: 1e-2,
        trustRegion: true,
        cgMaxIters: 3,
        cgMinIters: 2,
        kCg: 2,
        cgTol: 1e-3,
        alpha: 4,
        mode,
      });
      const recs: SgnStepRecord[] = [];
      for (let i = 0; i < 4; i++) {
        recs.push(await opt.step((w, b) => p.model(w, b), meanSquaredError(p.y)));
      }
      records.push({ recs, params: await flatHost(opt.params) });
      opt.dispose();
    }
    const [dev, ref] = records;
    const tol = be.dtypes.includes("float64") ? 1e-9 : 1e-4;
    dev.recs.forEach((r, i) => {
      const q = ref.recs[i];
      assert.equal(r.cgIters, q.cgIters, `step ${i + 1} CG iterations`);
      assert.equal(r.lsTries, q.lsTries, `step ${i + 1} line-search tries`);
      assert.equal(r.alpha, q.alpha, `step ${i + 1} step size`);
      assert.ok(Math.abs(r.rho - q.rho) <= tol * q.rho, `step ${i + 1} rho`);
      assert.ok(
        Math.abs(r.lossAfter - q.lossAfter) <= tol * (1 + q.lossAfter),
        `step ${i + 1} loss`,
      );
    });
    dev.params.forEach((v, i) => assert.ok(Math.abs(v - ref.params[i]) <= tol * 10, `theta[${i}]`));
  });
}

Deno.test("CG: the preconditioner needs fewer iterations on an ill-conditioned diagonal system", async () => {
  // z = X w with X = diag(s): G = 2/N diag(s^2) and, from w = 0 towards w* = 1, g = -2/N s^2, so
  // M = 1 / |g| (alphaExp 1/2) is the exact inverse diagonal up to a constant.
  const n = 30;
  const s = Array.from({ length: n }, (_, i) => 10 ** (i / 10));
  const X = new Float64Array(n * n);
  s.forEach((v, i) => (X[i * n + i] = v));
  const x = tensor(X, [n, n], { backend: cpu, dtype: "float64" });
  const y = tensor(s, [n, 1], { backend: cpu, dtype: "float64" });
  const iters: number[] = [];
  for (const cgPrec of [false, true]) {
    const opt = new SGN([tensor(new Float64Array(n), [n, 1], { backend: cpu, dtype: "float64" })], {
      dampRho: 0,
      cgPrec,
      alphaExp: 0.5,
      cgTol: 1e-8,
      cgMaxIters: 200,
      cgMinIters: 200,
      lineSearch: false,
      mode: "host",
    });
    const rec = await opt.step((w) => o.matmul(x, w), meanSquaredError(y));
    iters.push(rec.cgIters);
    opt.dispose();
  }
  assert.ok(iters[1] < iters[0], `with preconditioner ${iters[1]}, without ${iters[0]}`);
  assert.ok(iters[1] <= 2, `preconditioned CG should converge at once, took ${iters[1]}`);
});

Deno.test("CG: stops on the tolerance and on the budget, with the MIN_CG_ITERS / K_CG switch", async () => {
  const p = leastSquares(cpu, 50, 6, 3);
  const opt = new SGN(p.params(), {
    dampRho: 1e-3,
    cgMinIters: 2,
    cgMaxIters: 4,
    kCg: 3,
    cgTol: 0,
    lineSearch: false,
  });
  const used = [];
  for (let t = 1; t <= 4; t++) {
    used.push((await opt.step((w, b) => p.model(w, b), meanSquaredError(p.y))).cgIters);
  }
  assert.deepEqual(used, [2, 2, 4, 4]);
  opt.dispose();
  assert.equal(cgBudget(resolveSgnOptions({ cgMinIters: 7, cgMaxIters: 3, kCg: 5 }), 4), 7);
  // A huge tolerance: CG stops before its first iteration, in both modes.
  for (const mode of ["device", "host"] as const) {
    const q = new SGN(p.params(), { cgTol: 1e9, lineSearch: false, mode });
    const rec = await q.step((w, b) => p.model(w, b), meanSquaredError(p.y));
    assert.equal(rec.cgIters, 0, mode);
    q.dispose();
  }
});

for (const be of all) {
  Deno.test(`CG (${be.name}): with a budget of 2,000 device mode stops at the tolerance as host mode does`, async () => {
    const p = leastSquares(be, 50, 6, 8);
    const runs: SgnStepRecord[] = [];
    const params: number[][] = [];
    for (const mode of ["host", "device"] as const) {
      const opt = new SGN(p.params(), {
        cgTol: 1e-4,
        cgMaxIters: 2000,
        cgMinIters: 2000,
        lineSearch: false,
        mode,
      });
      runs.push(await opt.step((w, b) => p.model(w, b), meanSquaredError(p.y)));
      params.push(await flatHost(opt.params));
      opt.dispose();
    }
    const [host, device] = runs;
    assert.ok(host.cgIters > 1 && host.cgIters < 64, `host CG iterations: ${host.cgIters}`);
    assert.equal(device.cgIters, host.cgIters);
    // The mask is read once, after 64 iterations, and CG stops there: 2 readbacks in all (the
    // 2,000 iterations would have taken 32).
    assert.equal(device.readbacks, 2);
    const tol = p.dtype === "float64" ? 1e-9 : 1e-4;
    params[1].forEach((v, i) => assert.ok(Math.abs(v - params[0][i]) <= tol, `theta[${i}]`));
    for (const t of [p.x, p.y]) t.dispose();
  });
}

Deno.test("trust region: rho rises after a bad step and falls after a good one", async () => {
  const p = leastSquares(cpu, 50, 6, 4);
  // A good step: the Gauss-Newton model is exact, ratio ~ 1 > 3/4, rho -> max(2/3 rho, min).
  const good = new SGN(p.params(), {
    dampRho: 1e-3,
    dampRhoMin: 1e-5,
    trustRegion: true,
    lineSearch: false,
    cgMaxIters: 10,
    cgMinIters: 10,
  });
  const r1 = await good.step((w, b) => p.model(w, b), meanSquaredError(p.y));
  assert.ok(r1.ratio > 0.75, `ratio ${r1.ratio}`);
  assert.ok(Math.abs(good.rho - (2 / 3) * 1e-3) < 1e-15);
  // A bad step: far too long (alpha 10) overshoots, ratio < 1/4, rho -> 1.5 rho.
  const bad = new SGN(p.params(), {
    dampRho: 1e-3,
    trustRegion: true,
    lineSearch: false,
    alpha: 10,
  });
  const r2 = await bad.step((w, b) => p.model(w, b), meanSquaredError(p.y));
  assert.ok(r2.ratio < 0.25, `ratio ${r2.ratio}`);
  assert.ok(Math.abs(bad.rho - 1.5e-3) < 1e-15);
  // The floor: rho never goes below dampRhoMin.
  const floor = new SGN(p.params(), {
    dampRho: 1e-3,
    dampRhoMin: 9e-4,
    trustRegion: true,
    lineSearch: false,
  });
  await floor.step((w, b) => p.model(w, b), meanSquaredError(p.y));
  assert.equal(floor.rho, 9e-4);
  for (const q of [good, bad, floor]) q.dispose();
});

Deno.test("line search: halves the step until Armijo holds, at most MAX_LS_ITERS backtracks", async () => {
  for (const mode of ["device", "host"] as const) {
    const p = leastSquares(cpu, 50, 6, 5);
    // On a quadratic with the exact Newton step d, L(a) - L0 = (a^2/2 - a) d^T G d, so Armijo
    // with c = 1e-4 holds iff a <= 2 (1 - c): from a = 64 the search takes 6 halvings to a = 1.
    const opt = new SGN(p.params(), {
      dampRho: 0,
      alpha: 64,
      cgTol: 0,
      cgMaxIters: 10,
      cgMinIters: 10,
      mode,
    });
    const rec = await opt.step((w, b) => p.model(w, b), meanSquaredError(p.y));
    assert.equal(rec.alpha, 1, `${mode}: final step`);
    assert.equal(rec.lsTries, 7, `${mode}: tries`);
    assert.ok(rec.lossAfter < rec.loss);
    opt.dispose();
    if (mode === "device") {
      // Speculating on every candidate: the same decision with exactly one readback.
      const all = new SGN(p.params(), {
        dampRho: 0,
        alpha: 64,
        cgTol: 0,
        lsSpeculation: "all",
        mode: "device",
      });
      const ra = await all.step((w, b) => p.model(w, b), meanSquaredError(p.y));
      assert.deepEqual([ra.alpha, ra.lsTries, ra.readbacks], [1, 7, 1]);
      assert.ok(rec.readbacks > 1, "adaptive speculation read back more than once here");
      all.dispose();
    }
    // MAX_LS_ITERS = 3 backtracks: 4 evaluations (64, 32, 16, 8), none accepted (a <= 2 is).
    const capped = new SGN(p.params(), { dampRho: 0, alpha: 64, maxLsIters: 3, cgTol: 0, mode });
    const rc = await capped.step((w, b) => p.model(w, b), meanSquaredError(p.y));
    assert.equal(rc.lsTries, 4, `${mode}: capped tries`);
    assert.equal(rc.alpha, 8, `${mode}: the last tried step is kept, as the seed does`);
    capped.dispose();
  }
});

Deno.test("momentum: with bias correction the first step equals the momentum-free one", async () => {
  const p = leastSquares(cpu, 30, 3, 6);
  const out: number[][] = [];
  for (const beta of [0, 0.9]) {
    const opt = new SGN(p.params(), { beta, lineSearch: false });
    await opt.step((w, b) => p.model(w, b), meanSquaredError(p.y));
    out.push(await flatHost(opt.params));
    opt.dispose();
  }
  out[0].forEach((v, i) => assert.ok(Math.abs(v - out[1][i]) < 1e-12));
});

Deno.test("non-finite steps raise a clear error and leave the parameters bit-identical", async () => {
  for (const be of all) {
    const p = leastSquares(be, 20, 3, 7);
    const cases: [string, SgnOptions, Tensor][] = [
      [
        "poisoned input",
        {},
        tensor([...Array(19).fill(0), NaN], [20, 1], { backend: be, dtype: p.dtype }),
      ],
      ["huge step", { alpha: 1e300, lineSearch: false, trustRegion: true }, p.y],
    ];
    for (const [what, options, target] of cases) {
      const opt = new SGN(p.params(), options);
      const before = await flatHost(opt.params);
      await assert.rejects(
        () => opt.step((w, b) => p.model(w, b), meanSquaredError(target)),
        /not finite|non-finite|is NaN|Infinity/,
        `${be.name}: ${what}`,
      );
      assert.deepEqual(
        await flatHost(opt.params),
        before,
        `${be.name}: ${what}: parameters unchanged`,
      );
      opt.dispose();
    }
  }
});
