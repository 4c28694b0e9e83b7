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
import type { SgnOptions } from "../sgn/options.ts";
import { StepObjective, tryReplay } from "../sgn/objective.ts";
import { concatFlat } from "../sgn/vectors.ts";

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
 * search), with exactly `iters` CG iterations a step; `more`: further options (cgBacktrack, mode).
 */
export function w1Sgn(
  be: Backend,
  iters: number,
  lsSpeculation: "adaptive" | "all" = "adaptive",
  more: SgnOptions = {},
  problem: ReturnType<typeof w1> = w1(be),
): { problem: ReturnType<typeof w1>; opt: SGN } {
  const opt = new SGN(problem.net.init({ seed: 1, backend: be }), {
    dampRho: 1e-4,
    dampRhoMin: 1e-6,
    trustRegion: true,
    lineSearch: true,
    cgMaxIters: iters,
    cgMinIters: iters,
    lsSpeculation,
    ...more,
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

/** The cases of {@link lsReplayRounds}: SGN options on top of {@link w1Sgn}'s. */
const LS_REPLAY_CASES: [string, SgnOptions][] = [
  // Adaptive speculation: mostly one try a step, which is not recorded (a batch of two after a
  // step that needed two is).
  ["adaptive", {}],
  ["all", { lsSpeculation: "all" }],
  ["backtrack", { cgBacktrack: true }],
  ["all + backtrack", { lsSpeculation: "all", cgBacktrack: true }],
  // CPU backends decide on the host: these show the device path's replays there.
  ["device, all", { mode: "device", lsSpeculation: "all" }],
  ["device, backtrack", { mode: "device", cgBacktrack: true }],
];

/**
 * The line search's replay (sgn/objective.ts), per backend and case: two optimizers on one W1
 * problem (3 CG iterations), one evaluating its tries and backtracking's iterates plainly
 * (`tryReplay` off), one replaying them, stepping in `rounds` alternating rounds (the order
 * swapped each round) after warm-ups, so that a machine whose load changes changes both alike.
 * Prints ms per step of each, the median of the rounds' ratios plain/replayed, line-search tries
 * and readbacks per step, and WebGPU's dispatches per step. Both take the same steps, bit for bit.
 */
export async function lsReplayRounds(rounds: number): Promise<void> {
  console.log(
    "| backend | one evaluation: plain ms | recorded ms | replayed ms | plain / replayed |",
  );
  console.log("|---|---:|---:|---:|---:|");
  for (const be of await stepBackends()) {
    const [plain, recorded, replayed] = await evaluationTimes(be, rounds);
    console.log(
      `| ${be.name} | ${plain.toFixed(2)} | ${recorded.toFixed(2)} | ${replayed.toFixed(2)} | ` +
        `${(plain / replayed).toFixed(2)}x |`,
    );
  }
  console.log();
  console.log(
    "| backend | case | ms/step plain | ms/step replayed | ratio (median) | LS tries used/step | " +
      "readbacks/step | dispatches/step plain -> replayed |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---|");
  for (const be of await stepBackends()) {
    // On the host, speculation does not apply: backtracking, and the device path's cases.
    const cases = LS_REPLAY_CASES.filter(([, o]) =>
      !be.hostReadback || o.mode !== undefined || (o.cgBacktrack && !o.lsSpeculation)
    );
    const per = be.name === "cpu" ? 2 : 5;
    for (const [name, options] of cases) {
      const problem = w1(be);
      const opts = [false, true].map((on) => ({
        on,
        opt: w1Sgn(be, 3, "adaptive", options, problem).opt,
        ms: [] as number[],
        dispatches: 0,
        tries: 0,
        readbacks: 0,
      }));
      const steps = async (o: (typeof opts)[number], n: number, count: boolean) => {
        tryReplay.enabled = o.on;
        const before = gpuCounts(be);
        const t0 = performance.now();
        try {
          for (let i = 0; i < n; i++) {
            const r = await o.opt.step(problem.model, problem.loss);
            if (count) {
              (o.tries += r.lsTries / n / rounds), (o.readbacks += r.readbacks / n / rounds);
            }
          }
        } finally {
          tryReplay.enabled = true;
        }
        if (!count) return;
        o.ms.push((performance.now() - t0) / n);
        o.dispatches += (gpuCountsSince(be, before)?.dispatches ?? NaN) / n / rounds;
      };
      for (const o of opts) await steps(o, STEP_WARMUPS, false);
      for (let r = 0; r < rounds; r++) {
        for (const o of r % 2 ? [...opts].reverse() : opts) await steps(o, per, true);
      }
      const [off, on] = opts;
      const ratios = off.ms.map((m, i) => m / on.ms[i]).sort((a, b) => a - b);
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
      const gpu = be.hostReadback
        ? "-"
        : `${off.dispatches.toFixed(1)} -> ${on.dispatches.toFixed(1)}`;
      console.log(
        `| ${be.name} | ${name} | ${med(off.ms).toFixed(1)} | ${med(on.ms).toFixed(1)} | ` +
          `${ratios[ratios.length >> 1].toFixed(3)}x | ${on.tries.toFixed(2)} | ` +
          `${on.readbacks.toFixed(2)} | ${gpu} |`,
      );
      for (const o of opts) o.opt.dispose();
      problem.x.dispose();
      problem.y.dispose();
    }
  }
}

/**
 * Median ms of one evaluation of W1's loss and accuracy at a point (a line-search try after its
 * point is made), plain, recorded and replayed (sgn/objective.ts), in `rounds` alternating
 * rounds of a few evaluations each, every result computed and the last read back.
 */
async function evaluationTimes(be: Backend, rounds: number): Promise<number[]> {
  const p = w1(be);
  const params = p.net.init({ seed: 1, backend: be });
  const shapes = params.map((q) => q.shape);
  const point = concatFlat(params).realize();
  const objective = (...q: Tensor[]) => {
    const z = p.model(...q);
    return [p.loss.value(z), p.loss.metric!(z)];
  };
  const reps = be.name === "cpu" ? 2 : 10;
  const kept = new StepObjective(objective, shapes);
  const ways: (() => Tensor[])[] = [
    () => new StepObjective(objective, shapes).at(point, false),
    () => {
      const f = new StepObjective(objective, shapes);
      const out = f.at(point, true);
      f.dispose();
      return out;
    },
    () => kept.at(point, true),
  ];
  const ms: number[][] = ways.map(() => []);
  for (let r = -1; r < rounds; r++) {
    for (const [i, way] of ways.entries()) {
      const t0 = performance.now();
      let last: Tensor[] = [];
      for (let k = 0; k < reps; k++) {
        for (const t of last) t.dispose();
        last = scope(way);
        for (const t of last) t.realize();
      }
      await last[0].data();
      for (const t of last) t.dispose();
      if (r >= 0) ms[i].push((performance.now() - t0) / reps);
    }
  }
  kept.dispose();
  for (const t of [...params, point, p.x, p.y]) t.dispose();
  return ms.map((xs) => xs.sort((a, b) => a - b)[xs.length >> 1]);
}
