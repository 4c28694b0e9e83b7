/**
 * linalg/ on the Gauss-Newton matrix of a small network, on every backend and dtype: Lanczos and
 * Hutchinson against the dense G built column by column from G e_i (tests/dense_linalg.ts),
 * ggnDiagnostics' smallest eigenvalue of a G with more outputs than parameters, and every
 * product's buffers freed.
 */

import assert from "node:assert/strict";
import type { DType } from "../kernel/shape.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import { ggnLinearize } from "../autodiff/transforms.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { mlp } from "../models/networks.ts";
import {
  dampedOperator,
  ggnOperator,
  hessianOperator,
  matrixOperator,
} from "../linalg/operator.ts";
import { hutchinson, lanczos, stochasticLanczosQuadrature } from "../linalg/spectra.ts";
import { dampedCondition, ggnDiagnostics } from "../linalg/diagnostics.ts";
import { backendLabel, backends, cpu, Random } from "./harness.ts";
import { denseOf, jacobi, relClose, symmetricWithSpectrum } from "./dense_linalg.ts";

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
