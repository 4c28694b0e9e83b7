/**
 * WebGPU dispatches of the W1 workloads (bench/dispatch_cases.ts) held to issue 23's targets: a
 * real GPU pays per dispatch, and counts, unlike times, are exact on any machine. Where they go:
 * `deno run -A bench/dispatch_report.ts`.
 */
import assert from "node:assert/strict";
import { webgpu } from "./harness.ts";
import { countLossGrad, countSteps } from "../bench/dispatch_cases.ts";

const gpu = await webgpu();

/** Dispatches allowed: the counts of this commit (130 and 18 before issue 23's work). */
const LIMITS = { step: 96, lossGrad: 18 };

if (gpu) {
  Deno.test("dispatches: a W1 SGN step with 3 CG iterations and one line-search try", async () => {
    const [step] = await countSteps(gpu);
    // Each further try is one more forward pass: the limit is for a step of one try.
    assert.equal(step.tries, 1, "the counted step took one line-search try");
    assert.equal(step.readbacks, 1, "the counted step read back once");
    assert.ok(step.dispatches <= LIMITS.step, `${step.dispatches} dispatches > ${LIMITS.step}`);
  });

  Deno.test("dispatches: a W1 loss + gradient", async () => {
    const n = await countLossGrad(gpu);
    assert.ok(n <= LIMITS.lossGrad, `${n} dispatches > ${LIMITS.lossGrad}`);
  });
}
