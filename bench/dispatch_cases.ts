/**
 * WebGPU dispatches of the W1 workloads (issue 23): one SGN step with 3 CG iterations (the seed's
 * MNIST settings, {@link w1Sgn}) and one loss + gradient, counted by the runtime
 * (`wgsl/runtime.ts`'s `stats.dispatches`). Counts are exact, so unlike times they do not depend
 * on the machine's load. tests/dispatch_test.ts holds them to {@link DISPATCH_TARGETS};
 * bench/dispatch_report.ts prints where they go.
 */
import type { WebGpuBackend } from "../wgsl/webgpu.ts";
import { scope, type Tensor } from "../autodiff/tensor.ts";
import { valueAndGrad } from "../autodiff/transforms.ts";
import { concatFlat } from "../sgn/vectors.ts";
import { w1, w1Sgn } from "./sgn_step_cases.ts";

/** Issue 23's targets: dispatches per W1 SGN step (3 CG iterations) and per W1 loss + gradient. */
export const DISPATCH_TARGETS = { step: 100, lossGrad: 11 } as const;

/** What one counted SGN step did. */
export interface CountedStep {
  dispatches: number;
  /** Line-search tries of the counted step (each one more forward pass). */
  tries: number;
  readbacks: number;
}

/**
 * Dispatches of W1 SGN steps (3 CG iterations) after `warmup` steps (pipelines compiled, the
 * line search's speculation settled): `around` is called with each counted step, so that a
 * caller can label the dispatches inside it.
 */
export async function countSteps(
  be: WebGpuBackend,
  steps = 1,
  warmup = 2,
  around: <T>(run: () => Promise<T>) => Promise<T> = (run) => run(),
): Promise<CountedStep[]> {
  const { problem, opt } = w1Sgn(be, 3);
  try {
    for (let i = 0; i < warmup; i++) await opt.step(problem.model, problem.loss);
    const out: CountedStep[] = [];
    for (let i = 0; i < steps; i++) {
      const d0 = be.rt.stats.dispatches;
      const r = await around(() => opt.step(problem.model, problem.loss));
      out.push({
        dispatches: be.rt.stats.dispatches - d0,
        tries: r.lsTries,
        readbacks: r.readbacks,
      });
    }
    return out;
  } finally {
    opt.dispose();
    problem.x.dispose();
    problem.y.dispose();
  }
}

/**
 * Dispatches of one W1 loss + gradient after `warmup` runs: every gradient tensor realized, one
 * after the other, as the products benchmark does (the first computes them all:
 * kernel/multi.ts computeTogether), or with `flat` the gradient as one flat vector, as SGN
 * computes it (concatFlat). Either way a layer's bias gradient folds into its weight gradient's
 * product.
 */
export async function countLossGrad(
  be: WebGpuBackend,
  warmup = 1,
  around: <T>(run: () => Promise<T>) => Promise<T> = (run) => run(),
  flat = false,
): Promise<number> {
  const p = w1(be);
  const params = p.net.init({ seed: 1, backend: be });
  const once = () => {
    const g = scope(() => {
      const parts = valueAndGrad((...q: Tensor[]) => p.loss.value(p.model(...q)))(...params)[1];
      return flat ? [concatFlat(parts)] : parts;
    });
    for (const t of g) t.realize();
    return Promise.resolve(g);
  };
  try {
    for (let i = 0; i < warmup; i++) for (const t of await once()) t.dispose();
    const d0 = be.rt.stats.dispatches;
    const g = await around(once);
    const n = be.rt.stats.dispatches - d0;
    await g[0].data();
    for (const t of g) t.dispose();
    return n;
  } finally {
    for (const t of [...params, p.x, p.y]) t.dispose();
  }
}
