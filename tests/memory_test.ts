/**
 * Device memory of the optimizers: every backend's live-buffer count stays flat over many steps,
 * `dispose()` frees everything an optimizer allocated, a failed step frees its temporaries and
 * leaves the parameters bit-identical, and conjugate gradient keeps a constant number of buffers
 * alive however many iterations it runs.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { meanSquaredError } from "../models/losses.ts";
import { mlp } from "../models/networks.ts";
import { type Optimizer, SGN, type SgnStepRecord } from "../sgn/sgn.ts";
import { Adam, SGD } from "../sgn/baselines.ts";
import { backendLabel, backends, Random } from "./harness.ts";

const all = await backends({ loops: true });

/**
 * Steps of the flat-count tests: 1,000, but 200 for SGN on WebGPU (about 50 ms a step on the
 * software adapter CI has).
 */
const stepsOf = (be: Backend, name: string) =>
  be.name === "webgpu" && name.startsWith("SGN") ? 200 : 1000;

const net = mlp({ inputs: 4, hidden: [3], outputs: 2 });

/** A batch of 8 for the 4-3-2 MLP, with good, mismatched and NaN targets. */
function batch(be: Backend, seed = 1) {
  const rng = new Random(seed);
  const x = tensor(rng.array(32, (r) => r.normal()), [8, 4], { backend: be });
  const y = tensor(rng.array(16, (r) => r.normal()), [8, 2], { backend: be });
  const wide = tensor(rng.array(24, (r) => r.normal()), [8, 3], { backend: be });
  const poisoned = tensor([...rng.array(15, (r) => r.normal()), NaN], [8, 2], { backend: be });
  const model = (...p: Tensor[]) => net.forward(p, x);
  return {
    model,
    loss: meanSquaredError(y),
    mismatched: meanSquaredError(wide),
    nan: meanSquaredError(poisoned),
    dispose: () => [x, y, wide, poisoned].forEach((t) => t.dispose()),
  };
}

type Make = (be: Backend) => Optimizer;

/** The optimizer configurations under test. */
const CONFIGS: [string, Make][] = [
  [
    "SGN (trust region, line search)",
    (be) =>
      new SGN(net.init({ seed: 2, backend: be }), {
        trustRegion: true,
        lineSearch: true,
        dampRhoMin: 1e-4,
      }),
  ],
  [
    "SGN (beta 0.9, cgPrec)",
    (be) =>
      new SGN(net.init({ seed: 2, backend: be }), {
        trustRegion: true,
        beta: 0.9,
        cgPrec: true,
        dampRhoMin: 1e-4,
      }),
  ],
  [
    "SGN (device mode, beta 0.5)",
    (be) =>
      new SGN(net.init({ seed: 2, backend: be }), {
        trustRegion: true,
        beta: 0.5,
        dampRhoMin: 1e-4,
        mode: "device",
      }),
  ],
  [
    "SGN (CG warm start, relative stop, backtracking)",
    (be) =>
      new SGN(net.init({ seed: 2, backend: be }), {
        trustRegion: true,
        dampRhoMin: 1e-4,
        cgWarmStart: 0.95,
        cgStop: "relative",
        cgBacktrack: true,
        // Past the relative rule's first window (10), in few iterations (WebGPU runs 200 steps).
        cgMaxIters: 14,
        cgMinIters: 14,
      }),
  ],
  [
    "SGD (momentum, linear schedule)",
    (be) =>
      new SGD(net.init({ seed: 2, backend: be }), {
        lr: 0.05,
        momentum: 0.9,
        schedule: "linear",
        lrFinal: 1e-3,
        k: 1000,
      }),
  ],
  ["Adam", (be) => new Adam(net.init({ seed: 2, backend: be }), { lr: 0.01 })],
];

/**
 * Runs a configuration for a few steps and disposes it, so that what a first run creates once
 * (compiled kernels, pooled memory) exists before the measured run starts.
 */
async function warmUp(be: Backend, make: Make): Promise<void> {
  const data = batch(be, 99);
  const opt = make(be);
  for (let i = 0; i < 3; i++) await opt.step(data.model, data.loss);
  opt.dispose();
  data.dispose();
}

/** The parameters' bytes, for bit-for-bit comparisons. */
async function paramBytes(opt: Optimizer): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const p of opt.params) {
    const d = await p.data();
    out.push(new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)));
  }
  return out;
}

/**
 * Runs `steps` steps and asserts that the live-buffer count after the last equals the count after
 * the first, that `dispose()` frees everything the optimizer allocated, and that disposing the
 * data brings the count back to where it started.
 */
async function checkFlat(be: Backend, make: Make, steps: number): Promise<void> {
  const empty = be.liveBuffers();
  const data = batch(be);
  const before = be.liveBuffers();
  const opt = make(be);
  const first = await opt.step(data.model, data.loss);
  const flat = be.liveBuffers();
  let last = first;
  for (let i = 2; i <= steps; i++) {
    last = await opt.step(data.model, data.loss);
    if (i % 100 === 0) {
      assert.equal(be.liveBuffers(), flat, `live buffers after step ${i} (after step 1: ${flat})`);
    }
  }
  assert.equal(be.liveBuffers(), flat, `live buffers after step ${steps}`);
  assert.ok(
    Number.isFinite(last.loss) && last.loss < first.loss,
    `the run trained: loss ${first.loss} -> ${last.loss}`,
  );
  opt.dispose();
  assert.equal(be.liveBuffers(), before, "live buffers after dispose()");
  data.dispose();
  assert.equal(be.liveBuffers(), empty, "live buffers after disposing the data too");
}

/**
 * After one good step, `repeats` steps with mismatched targets, as many with a NaN loss and as
 * many whose model throws: each must throw, leave the live-buffer count where it was and the parameters bit-identical;
 * a good step afterwards still works.
 */
async function checkFailures(be: Backend, make: Make, repeats: number): Promise<void> {
  const data = batch(be);
  const opt = make(be);
  // A first good step, so that state (momentum, moments, velocity) exists when steps fail.
  await opt.step(data.model, data.loss);
  const live = be.liveBuffers();
  const params = await paramBytes(opt);
  // A model that fails halfway through its forward pass.
  const broken = (...p: Tensor[]) => {
    o.sigmoid(data.model(...p));
    throw new Error("the model failed");
  };
  const failures: [string, typeof data.model, typeof data.loss, RegExp][] = [
    ["mismatched targets", data.model, data.mismatched, /targets \[8, 3\]/],
    ["NaN loss", data.model, data.nan, /NaN/],
    ["a failing model", broken, data.loss, /the model failed/],
  ];
  for (const [what, model, loss, message] of failures) {
    for (let i = 1; i <= repeats; i++) {
      await assert.rejects(() => opt.step(model, loss), message, what);
      assert.equal(be.liveBuffers(), live, `${what}: live buffers after failure ${i}`);
    }
    assert.deepEqual(await paramBytes(opt), params, `${what}: parameters bit-identical`);
  }
  const after = await opt.step(data.model, data.loss);
  assert.ok(Number.isFinite(after.loss));
  assert.equal(be.liveBuffers(), live, "live buffers after a good step following failures");
  opt.dispose();
  data.dispose();
}

for (const be of all) {
  for (const [name, make] of CONFIGS) {
    const steps = stepsOf(be, name);
    Deno.test(`memory (${backendLabel(be)}): ${name}: ${steps} steps keep the buffer count flat; dispose frees all`, async () => {
      await warmUp(be, make);
      await checkFlat(be, make, steps);
    });

    Deno.test(`memory (${backendLabel(be)}): ${name}: failed steps free their temporaries and keep the parameters`, async () => {
      await warmUp(be, make);
      await checkFailures(be, make, 50);
    });
  }

  Deno.test(`memory (${backendLabel(be)}): an SGN step whose update overflows fails without leaking`, async () => {
    const make: Make = (be) =>
      new SGN(net.init({ seed: 2, backend: be }), {
        alpha: 1e30,
        lineSearch: false,
        trustRegion: true,
      });
    const data = batch(be);
    await warmUp(be, () => new SGN(net.init({ seed: 2, backend: be }), { trustRegion: true }));
    const live = be.liveBuffers();
    const opt = make(be);
    const params = await paramBytes(opt);
    const withParams = be.liveBuffers();
    for (let i = 1; i <= 10; i++) {
      await assert.rejects(
        () => opt.step(data.model, data.loss),
        /Infinity|NaN|overflows|non-finite/,
      );
      assert.equal(be.liveBuffers(), withParams, `live buffers after failure ${i}`);
    }
    assert.deepEqual(await paramBytes(opt), params);
    opt.dispose();
    assert.equal(be.liveBuffers(), live);
    data.dispose();
  });
}

/** The methods of a backend that allocate buffers (every kernel returns a new one). */
const ALLOCATING = [
  "upload",
  "fill",
  "unary",
  "binary",
  "where",
  "strided",
  "concat",
  "split",
  "reduce",
  "softmax",
  "matmul",
  "conv2d",
  "conv2dInputGrad",
  "conv2dWeightGrad",
  "maxPool2d",
  "maxPool2dBackward",
  "dot",
  "axpy",
  "scale",
  "maxAbs",
  "precond",
] as const;

/**
 * Watches `be`'s allocations until `stop()`: `peak()` is the largest live-buffer count seen right
 * after any allocating call since `watch` was called. The backend object itself is patched (its
 * identity matters: tensors of two backend objects cannot be mixed).
 */
function watch(be: Backend): { peak(): number; stop(): void } {
  let peak = be.liveBuffers();
  const patched = be as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ALLOCATING) {
    const original = patched[name];
    patched[name] = (...args: unknown[]) => {
      const out = original.apply(be, args);
      peak = Math.max(peak, be.liveBuffers());
      return out;
    };
  }
  return {
    peak: () => peak,
    stop: () => ALLOCATING.forEach((name) => delete patched[name]),
  };
}

/**
 * A problem on which CG never converges and stays finite: the model is z = w (w: [2, 1]) and the
 * loss's output "Hessian" is the rotation-like [[1, -1], [1, 1]] (not symmetric, so CG has no
 * reason to converge: its residual stays of order 1 and the iterate grows slowly). CG then runs
 * every iteration it is given, whatever the tolerance, with finite scalars throughout.
 */
function endlessCg(be: Backend) {
  const eye = tensor([[1, 0], [0, 1]], undefined, { backend: be });
  const c = tensor([[1], [0.3]], undefined, { backend: be });
  const turn = tensor([[1, -1], [1, 1]], undefined, { backend: be });
  return {
    params: () => [tensor([[0], [0]], undefined, { backend: be })],
    model: (w: Tensor) => o.matmul(eye, w),
    loss: {
      value: (z: Tensor) => o.sum(o.mul(z, c)),
      hessianProduct: (_z: Tensor, u: Tensor) => o.matmul(turn, u),
    },
    dispose: () => [eye, c, turn].forEach((t) => t.dispose()),
  };
}

for (const be of all) {
  const modes = be.name === "webgpu" ? (["device"] as const) : (["host", "device"] as const);
  for (const mode of modes) {
    Deno.test(`memory (${backendLabel(be)}, ${mode}): CG holds as many buffers for 2,000 iterations as for 3`, async () => {
      const problem = endlessCg(be);
      const peaks: number[] = [];
      const records: SgnStepRecord[] = [];
      for (const iters of [3, 2000]) {
        const opt = new SGN(problem.params(), {
          cgTol: 0,
          cgMaxIters: iters,
          cgMinIters: iters,
          lineSearch: false,
          mode,
        });
        // A first step compiles and pools what it needs; the second is measured.
        await opt.step(problem.model, problem.loss);
        const live = be.liveBuffers();
        const w = watch(be);
        try {
          records.push(await opt.step(problem.model, problem.loss));
        } finally {
          w.stop();
        }
        peaks.push(w.peak() - live);
        assert.equal(be.liveBuffers(), live, `${iters} iterations: live buffers after the step`);
        opt.dispose();
      }
      assert.deepEqual(
        records.map((r) => r.cgIters),
        [3, 2000],
        "CG ran every iteration (tolerance 0)",
      );
      assert.ok(
        peaks[1] <= peaks[0],
        `peak live buffers during a step: ${peaks[1]} with 2,000 CG iterations, ${peaks[0]} with 3`,
      );
      problem.dispose();
    });
  }
}

// Scalar constants are constants of the kernel IR: they take no buffer, and travel in the uniforms
// of the kernel they fuse into, so 300 per-step values compile one pipeline.
for (const be of all) {
  Deno.test(`memory (${backendLabel(be)}): 300 distinct scalar constants allocate nothing and compile one kernel`, async () => {
    const x = tensor([1, 2, 3], undefined, { backend: be });
    await x.data();
    const live = be.liveBuffers();
    const stats = (be as { rt?: { stats: { pipelines: number } } }).rt?.stats;
    const pipelines = stats?.pipelines ?? 0;
    for (let i = 0; i < 300; i++) {
      const c = 1234.5 + i;
      const y = o.mul(x, c);
      const got = await y.data();
      assert.ok(Math.abs(got[2] - 3 * c) <= 1e-3 * c, `x * ${c}`);
      y.dispose();
      assert.equal(be.liveBuffers(), live, `live buffers after constant ${i}`);
    }
    if (stats) {
      assert.ok(stats.pipelines - pipelines <= 1, `${stats.pipelines - pipelines} pipelines`);
    }
    x.dispose();
  });
}
