/**
 * The SGN step benchmark (issue: SGN optimizer): one step on W1 = MLP 784-20-20-20-10 sigmoid,
 * softmax cross-entropy, batch 1000, with 3 and 10 CG iterations, trust region and line search
 * on, and the parts of a step measured on their own: loss + gradient, one cached G v product,
 * one forward pass (a line-search try), and one readback round trip. sgn_step_bench.ts and
 * sgn_step_report.ts build their optimizers with {@link w1Sgn}, so both time the same step.
 */
import type { Backend } from "../kernel/backend.ts";
import { benchBackends, gpuCounts, gpuCountsSince } from "./devices.ts";
import { Random } from "../random.ts";
import { scope, type Tensor, tensor } from "../autodiff/tensor.ts";
import { ggnLinearize, valueAndGrad } from "../autodiff/transforms.ts";
import { mlp } from "../models/networks.ts";
import { oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { SGN } from "../sgn/sgn.ts";

/** A W1 problem on one backend. */
export function w1(be: Backend) {
  const rng = new Random(1);
  const net = mlp({ inputs: 784, hidden: [20, 20, 20], outputs: 10 });
  const x = tensor(rng.array(1000 * 784, (r) => r.range(0, 1)), [1000, 784], { backend: be });
  const y = oneHot(Array.from({ length: 1000 }, (_, i) => i % 10), 10, { backend: be });
  const loss = softmaxCrossEntropy(y);
  const model = (...p: Tensor[]) => net.forward(p, x);
  return { net, x, y, loss, model };
}

/** The backends to measure: WebGPU and native when present, and the plain TypeScript one. */
export function stepBackends(): Promise<Backend[]> {
  return benchBackends();
}

/** Mean milliseconds of `fn` over `n` runs after `warm` warm-ups (default one). */
export async function time(n: number, fn: () => Promise<unknown>, warm = 1): Promise<number> {
  for (let i = 0; i < warm; i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return (performance.now() - t0) / n;
}

/**
 * SGN on W1 as the seed's MNIST runs set it (rho 1e-4, rho_min 1e-6, trust region and line
 * search), with exactly `iters` CG iterations a step.
 */
export function w1Sgn(
  be: Backend,
  iters: number,
  lsSpeculation: "adaptive" | "all" = "adaptive",
): { problem: ReturnType<typeof w1>; opt: SGN } {
  const problem = w1(be);
  const opt = new SGN(problem.net.init({ seed: 1, backend: be }), {
    dampRho: 1e-4,
    dampRhoMin: 1e-6,
    trustRegion: true,
    lineSearch: true,
    cgMaxIters: iters,
    cgMinIters: iters,
    lsSpeculation,
  });
  return { problem, opt };
}

/**
 * Steps run before a step is timed: the first steps of a run take line-search paths (one try, a
 * speculation of several) that compile pipelines of their own on WebGPU (products run together
 * among them), which a step time should not include; 1 until issue 23's grouping made those
 * pipelines slower to compile on llvmpipe.
 */
const STEP_WARMUPS = 3;

/**
 * Step time, readbacks and line-search tries per step (from the step records) of SGN with
 * `iters` CG iterations, and on WebGPU the runtime's dispatches and submits per step.
 */
export async function stepTime(
  be: Backend,
  iters: number,
  steps: number,
  lsSpeculation: "adaptive" | "all" = "adaptive",
): Promise<{
  ms: number;
  readbacks: number;
  tries: number;
  dispatches: number | undefined;
  submits: number | undefined;
}> {
  const { problem: p, opt } = w1Sgn(be, iters, lsSpeculation);
  let readbacks = 0;
  let tries = 0;
  const before = gpuCounts(be);
  const ms = await time(steps, async () => {
    const r = await opt.step(p.model, p.loss);
    readbacks += r.readbacks;
    tries += r.lsTries;
  }, STEP_WARMUPS);
  const counts = gpuCountsSince(be, before);
  opt.dispose();
  // time() made steps + STEP_WARMUPS calls.
  const per = (x: number | undefined) => x === undefined ? undefined : x / (steps + STEP_WARMUPS);
  return {
    ms,
    readbacks: per(readbacks)!,
    tries: per(tries)!,
    dispatches: per(counts?.dispatches),
    submits: per(counts?.submits),
  };
}

/** The parts of a step, each measured alone (amortizing one readback over `reps` runs). */
export async function parts(be: Backend, reps: number) {
  const p = w1(be);
  const params = p.net.init({ seed: 1, backend: be });
  /** Runs `f` reps times, every output computed (tensors are lazy), the last one read. */
  const run = (f: () => Tensor | Tensor[]) => async () => {
    let last: Tensor[] = [];
    for (let i = 0; i < reps; i++) {
      for (const t of last) t.dispose();
      last = [f()].flat();
      for (const t of last) t.realize();
    }
    await last[0].data();
    for (const t of last) t.dispose();
  };
  const lossGrad = await time(
    3,
    run(() =>
      scope(() => valueAndGrad((...q: Tensor[]) => p.loss.value(p.model(...q)))(...params)[1])
    ),
  ) / reps;
  const G = ggnLinearize(p.model, p.loss, params);
  const gv = await time(3, run(() => scope(() => G.apply(...params)))) / reps;
  G.dispose();
  const forward = await time(3, run(() => scope(() => p.loss.value(p.model(...params))))) / reps;
  const t = tensor([1], [1], { backend: be });
  const readback = await time(10, () => t.data());
  for (const q of [...params, t, p.x, p.y]) q.dispose();
  return { lossGrad, gv, forward, readback };
}
