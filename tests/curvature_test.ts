/**
 * The curvatures of SGN (issue 22) against independent dense computations on small problems
 * (tests/curvature_oracle.ts): each curvature's operator (Gauss-Newton, Hessian, empirical
 * Fisher), as a dense matrix built from products with unit vectors, is held to the explicit one,
 * float64 on the CPU oracle (generated cases); the three matrices differ where they should, and
 * mean(perExample(z)) is value(z) for both losses. On every backend in float32: each curvature's
 * products, and an SGN step with it on half the batch (both CG forms) against the dense CG on
 * those rows.
 */

import assert from "node:assert/strict";
import type { DType } from "../kernel/shape.ts";
import { tensor } from "../autodiff/tensor.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { property } from "./property.ts";
import { assertClose, backendLabel, cpu, Random } from "./harness.ts";
import {
  DENSE,
  type Dense,
  denseFisher,
  denseGgn,
  denseHessian,
  makeProblem,
  maxAbs,
  softmaxRow,
} from "./curvature_oracle.ts";
import {
  all,
  assertDenseClose,
  expectedStep,
  operatorMatrix,
  problemArb,
  sgnStep,
} from "./curvature_support.ts";

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
