/**
 * An SGN step with each curvature against the dense CG of tests/curvature_oracle.ts (no line
 * search, step size 1), with a curvature mini-batch the first m rows of the batch and the gradient
 * the whole batch's, both CG forms; and negative curvature: at the first CG iteration the step is
 * steepest descent -g, later it is the iterate so far, and zero curvature (p.A p = 0) stops CG as
 * negative curvature does (Nocedal & Wright, Algorithm 7.1).
 */

import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import type { OutputLoss } from "../autodiff/transforms.ts";
import { meanSquaredError } from "../models/losses.ts";
import { SGN } from "../sgn/sgn.ts";
import { fc, property } from "./property.ts";
import { assertClose, backendLabel, cpu } from "./harness.ts";
import { dotJs, gradient, makeProblem, maxAbs, range } from "./curvature_oracle.ts";
import { all, expectedStep, problemArb, sgnStep } from "./curvature_support.ts";

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
    // Nor cases whose d rounding moves (ill-conditioned late iterations): a 1e-12 nudge of C and
    // g must move d by far less than the tolerance (1e-6).
    fc.pre(want.margin > 1e-6 && want.tolMargin > 0.05 && want.spread < 1e-7);
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
