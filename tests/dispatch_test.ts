/**
 * WebGPU dispatches of the W1 workloads (bench/dispatch_cases.ts) held to issue 23's targets: a
 * real GPU pays per dispatch, and counts, unlike times, are exact on any machine. Where they go:
 * `deno run -A bench/dispatch_report.ts`.
 */
import assert from "node:assert/strict";
import { productsTogether, webgpu } from "./harness.ts";
import { countConv, countLossGrad, countSteps, DISPATCH_TARGETS } from "../bench/dispatch_cases.ts";

const gpu = await webgpu();

/**
 * Dispatches allowed, held to the counts reached so that a change that adds one fails here
 * (130 and 18 before issue 23's work; then 90 and 18, 14 for the gradient as one flat vector;
 * 81 and 11 once the products whose operands are ready at once run as one dispatch, 69 and 11
 * once replays run them together too, 72 and 11 with at most two products a dispatch, which
 * keeps a run's pipelines few: kernel/routines.ts, MAX_TOGETHER): the step
 * and the flat gradient (SGN's) meet issue 23's targets. Tensor by tensor it was 18 (each
 * gradient realized on its own: products of different gradients never met, and the bias
 * gradients were reductions of their own); 11 since the first gradient read computes them all,
 * each bias gradient as its weight gradient's last row (kernel/multi.ts computeTogether); 10
 * since the softmax cross-entropy's gradient is computed in the loads of the two products that
 * read it (Backend.prologues), and the step 71.
 */
const LIMITS = { step: 71, lossGrad: 10, lossGradFlat: 10 };

/**
 * The seed's conv nets (batch 100) with products together: a loss + gradient at new weights and
 * a cached G v of a new direction (bench/dispatch_cases.ts countConv), held to the counts
 * reached (W3 35 and 39, W4 28 and 31 before the max-pool forward became a kernel of the graph,
 * a chain of fused consumers was rebuilt over a computed host, element-wise ops fused into a
 * product through a reshape, and products a rebuild makes joined the realization's mates; G v
 * W3 36, W4 29 before the linearization's weights were kept in the convolution kernels' layout;
 * loss + gradient W3 32, W4 26 before the loss's gradient was computed in the products' loads;
 * loss + gradient W3 31, W4 25 and G v W3 32, W4 27 before a conv layer's bias gradient came
 * from its weight gradient's kernel: Backend.convBiasFold).
 */
const CONV_LIMITS = { W3: { lossGrad: 28, gv: 29 }, W4: { lossGrad: 23, gv: 25 } };

/**
 * A W4 SGN step (3 CG iterations, batch 100) with products together: 190 before convolutions read
 * their weights in place from the flat parameter vector and from CG's direction (each of the
 * step's seven forward passes copied both layers' weights out first); 176 before the loss's
 * gradient was computed in its products' loads; 175 before the conv layers' bias gradients came
 * from their weight gradients' kernels.
 */
const W4_STEP_LIMIT = 167;

/** Counts with work scheduled as a hardware GPU runs it (`hardwareSchedule`), or not. */
const grouped = <T>(on: boolean, count: () => Promise<T>) => productsTogether(gpu!, on, count);

if (gpu) {
  Deno.test("dispatches: products one per dispatch (a software adapter's default) at the counts before grouping", async () => {
    const [step] = await grouped(false, () => countSteps(gpu));
    assert.ok(step.dispatches <= 90, `${step.dispatches} dispatches > 90`);
    const flat = await grouped(false, () => countLossGrad(gpu, 1, undefined, true));
    assert.ok(flat <= 14, `flat: ${flat} dispatches > 14`);
    const n = await grouped(false, () => countLossGrad(gpu));
    assert.ok(n <= 14, `tensor by tensor: ${n} dispatches > 14`);
  });

  Deno.test("dispatches: a W1 SGN step with 3 CG iterations and one line-search try", async () => {
    const [step] = await grouped(true, () => countSteps(gpu));
    // Each further try is one more forward pass: the limit is for a step of one try.
    assert.equal(step.tries, 1, "the counted step took one line-search try");
    assert.equal(step.readbacks, 1, "the counted step read back once");
    assert.ok(step.dispatches <= LIMITS.step, `${step.dispatches} dispatches > ${LIMITS.step}`);
  });

  Deno.test("dispatches: the limits are within issue 23's targets", () => {
    assert.ok(
      LIMITS.step <= DISPATCH_TARGETS.step && LIMITS.lossGradFlat <= DISPATCH_TARGETS.lossGrad &&
        LIMITS.lossGrad <= DISPATCH_TARGETS.lossGrad,
    );
  });

  Deno.test("dispatches: a W1 loss + gradient, tensor by tensor and as one flat vector", async () => {
    const n = await grouped(true, () => countLossGrad(gpu));
    assert.ok(n <= LIMITS.lossGrad, `${n} dispatches > ${LIMITS.lossGrad}`);
    const flat = await grouped(true, () => countLossGrad(gpu, 1, undefined, true));
    assert.ok(flat <= LIMITS.lossGradFlat, `flat: ${flat} dispatches > ${LIMITS.lossGradFlat}`);
  });

  Deno.test("dispatches: a W4 SGN step", async () => {
    const [step] = await grouped(true, () => countSteps(gpu, 1, 2, undefined, "W4"));
    assert.ok(step.dispatches <= W4_STEP_LIMIT, `${step.dispatches} > ${W4_STEP_LIMIT}`);
  });

  Deno.test("dispatches: the seed's conv nets, a loss + gradient and a cached G v", async () => {
    for (const which of ["W3", "W4"] as const) {
      const n = await grouped(true, () => countConv(gpu, which));
      for (const what of ["lossGrad", "gv"] as const) {
        const limit = CONV_LIMITS[which][what];
        assert.ok(n[what] <= limit, `${which} ${what}: ${n[what]} dispatches > ${limit}`);
      }
    }
  });
}
