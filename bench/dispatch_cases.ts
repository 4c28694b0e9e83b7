/**
 * WebGPU dispatches of the W1 workloads (issue 23): one SGN step with 3 CG iterations (the seed's
 * MNIST settings, {@link w1Sgn}) and one loss + gradient; and of the seed's conv nets (W3, W4 at
 * a batch of {@link CONV_BATCH}): one loss + gradient and one cached G v. Counted by the runtime
 * (`wgsl/runtime.ts`'s `stats.dispatches`). Counts are exact, so unlike times they do not depend
 * on the machine's load. tests/dispatch_test.ts holds them to {@link DISPATCH_TARGETS};
 * bench/dispatch_report.ts prints where they go.
 */
import type { WebGpuBackend } from "../wgsl/webgpu.ts";
import { scope, type Tensor } from "../autodiff/tensor.ts";
import { valueAndGrad } from "../autodiff/transforms.ts";
import { concatFlat } from "../sgn/vectors.ts";
import { w1, w1Sgn } from "./sgn_step_cases.ts";
import { ggnLinearize } from "../autodiff/curvature.ts";
import { mul } from "../autodiff/ops.ts";
import { tensor } from "../autodiff/tensor.ts";
import { convNet } from "../models/conv_net.ts";
import { ARCHITECTURE_1, ARCHITECTURE_4 } from "../models/architectures.ts";
import { oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { Random } from "../random.ts";

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
 * caller can label the dispatches inside it. With `net`, steps of that conv net at
 * {@link CONV_BATCH} instead (the same SGN settings).
 */
export async function countSteps(
  be: WebGpuBackend,
  steps = 1,
  warmup = 2,
  around: <T>(run: () => Promise<T>) => Promise<T> = (run) => run(),
  net?: keyof typeof CONV_NETS,
): Promise<CountedStep[]> {
  const { problem, opt } = w1Sgn(be, 3, "adaptive", {}, net ? convProblem(be, net) : w1(be));
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

/** The batch of the conv-net counts (the counts of the weight gradient's chunk sums depend on it). */
export const CONV_BATCH = 100;

/** The seed's conv nets whose dispatches are counted: W3 (CIFAR-10's architecture_4), W4. */
export const CONV_NETS = {
  W3: { spec: ARCHITECTURE_4, input: [3, 32, 32] },
  W4: { spec: ARCHITECTURE_1, input: [1, 28, 28] },
} as const;

/** Conv net `which` at {@link CONV_BATCH} on random images, as {@link w1} gives W1. */
function convProblem(be: WebGpuBackend, which: keyof typeof CONV_NETS): ReturnType<typeof w1> {
  const { spec, input } = CONV_NETS[which];
  const net = convNet(spec, input, 10);
  const rng = new Random(1);
  const size = CONV_BATCH * input.reduce((a: number, b: number) => a * b, 1);
  const x = tensor(rng.array(size, (r) => r.range(0, 1)), [CONV_BATCH, ...input], { backend: be });
  const y = oneHot(Array.from({ length: CONV_BATCH }, (_, i) => i % 10), 10, { backend: be });
  const loss = softmaxCrossEntropy(y);
  const model = (...q: Tensor[]) => net.forward(q, x);
  return { net, x, y, loss, model };
}

/**
 * Dispatches of one loss + gradient (every gradient tensor realized) and of one G v through the
 * cached linearization, after a warm-up of each, on conv net `which` at {@link CONV_BATCH};
 * `around` as in {@link countSteps}.
 */
export async function countConv(
  be: WebGpuBackend,
  which: keyof typeof CONV_NETS,
  around: <T>(what: "lossGrad" | "gv", run: () => Promise<T>) => Promise<T> = (_, run) => run(),
): Promise<{ lossGrad: number; gv: number }> {
  const { net, x, y, loss, model } = convProblem(be, which);
  const params = net.init({ seed: 1, backend: be });
  const op = ggnLinearize(model, loss, params);
  const v = params.map((p) => mul(p, 0.5));
  // The loss and gradient at new weights, as each training step has them, and G v of a new v, as
  // each CG iteration has it: the WebGPU backend keeps weights in its kernels' layout while they
  // live (wgsl/conv.ts), which pays off across one linearization's G v products (the
  // linearization's weights), not across steps or directions.
  const base = { lossGrad: params, gv: v };
  const at = { ...base };
  const runs = {
    lossGrad: () =>
      scope(() => valueAndGrad((...q: Tensor[]) => loss.value(model(...q)))(...at.lossGrad)[1]),
    gv: () => scope(() => op.apply(...at.gv)),
  };
  const copies = (ts: Tensor[]) =>
    Promise.all(ts.map(async (p) => tensor(await p.data(), p.shape, { backend: be })));
  const count = async (what: keyof typeof runs) => {
    const once = () => {
      const g = runs[what]();
      for (const t of g) t.realize();
      return Promise.resolve(g);
    };
    for (const t of await once()) t.dispose();
    at[what] = await copies(base[what]);
    const d0 = be.rt.stats.dispatches;
    const g = await around(what, once);
    const n = be.rt.stats.dispatches - d0;
    await g[0].data();
    for (const t of g) t.dispose();
    for (const t of at[what]) t.dispose();
    at[what] = base[what];
    return n;
  };
  try {
    return { lossGrad: await count("lossGrad"), gv: await count("gv") };
  } finally {
    op.dispose();
    for (const t of [...params, ...v, x, y]) t.dispose();
  }
}
