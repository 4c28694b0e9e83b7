/**
 * The line search's forward passes recorded once and replayed (sgn/objective.ts): a step that
 * replays its tries (speculative ones, later ones, CG backtracking's iterates) gives, bit for
 * bit, the records and parameters of the same step with replay off (`tryReplay`), on every
 * backend and dtype, over generated problems and options; the replays do happen where a second
 * evaluation follows and not for a step of one try; a failed step that replayed leaves no buffer
 * alive and the parameters as they were.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import { lazyStats } from "../kernel/record.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { mlp } from "../models/networks.ts";
import { SGN, type SgnStepRecord } from "../sgn/sgn.ts";
import type { SgnOptions } from "../sgn/options.ts";
import { tryReplay } from "../sgn/objective.ts";
import { backendTargets, cpu, productsTogether, Random } from "./harness.ts";
import type { WebGpuBackend } from "../wgsl/webgpu.ts";
import { fc, property } from "./property.ts";

const targets = await backendTargets();

/** A generated problem and the options of its steps. */
const caseArb = fc.record({
  target: fc.integer({ min: 0, max: targets.length - 1 }),
  hidden: fc.integer({ min: 1, max: 6 }),
  classes: fc.integer({ min: 1, max: 4 }),
  n: fc.integer({ min: 2, max: 9 }),
  ce: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1e6 }),
  steps: fc.integer({ min: 1, max: 3 }),
  options: fc.record({
    mode: fc.constantFrom("host", "device"),
    lsSpeculation: fc.constantFrom("adaptive", "all"),
    maxLsIters: fc.integer({ min: 1, max: 4 }),
    cgBacktrack: fc.boolean(),
    alpha: fc.constantFrom(1, 0.7, 1.5),
    rhoLs: fc.constantFrom(0.5, 0.3, 0.8),
    // A large Armijo constant makes the search take several tries.
    cLs: fc.constantFrom(1e-4, 0.5, 0.95),
    lineSearch: fc.boolean(),
    trustRegion: fc.boolean(),
    cgMaxIters: fc.integer({ min: 1, max: 6 }),
  }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

/** A classification (cross-entropy, with a metric) or regression batch and an MLP on `be`. */
function makeProblem(c: Case, be: Backend, dtype: DType) {
  const rng = new Random(c.seed);
  const like = { backend: be, dtype };
  const x = tensor(rng.array(c.n * 3, (r) => r.normal()), [c.n, 3], like);
  const y = c.ce
    ? oneHot(Array.from({ length: c.n }, () => rng.int(c.classes)), c.classes, like)
    : tensor(rng.array(c.n * c.classes, (r) => r.normal()), [c.n, c.classes], like);
  const net = mlp({ inputs: 3, hidden: [c.hidden], outputs: c.classes });
  const loss = c.ce ? softmaxCrossEntropy(y) : meanSquaredError(y);
  return {
    params: () => net.init({ seed: c.seed, backend: be, dtype }),
    model: (...p: Tensor[]) => net.forward(p, x),
    loss,
    dispose: () => (x.dispose(), y.dispose()),
  };
}

/** What a run of steps gave: records (or the error that stopped it), parameter bytes, replays. */
interface Run {
  records: (SgnStepRecord | string)[];
  bytes: number[][];
  replayed: number;
  /** Launches run (kernels and routines, replayed ones included). */
  launches: number;
}

/** `c.steps` steps of SGN with the tries replayed or not (`tryReplay`). */
async function run(
  c: Case,
  be: Backend,
  dtype: DType,
  replay: boolean,
  options: SgnOptions = c.options,
): Promise<Run> {
  const p = makeProblem(c, be, dtype);
  const opt = new SGN(p.params(), options);
  const records: (SgnStepRecord | string)[] = [];
  const r0 = lazyStats.replayed, l0 = lazyStats.kernels + lazyStats.routines;
  tryReplay.enabled = replay;
  try {
    for (let i = 0; i < c.steps; i++) {
      try {
        records.push(await opt.step(p.model, p.loss));
      } catch (e) {
        records.push(String(e));
      }
    }
  } finally {
    tryReplay.enabled = true;
  }
  const replayed = lazyStats.replayed - r0;
  const launches = lazyStats.kernels + lazyStats.routines - l0;
  const bytes: number[][] = [];
  for (const q of opt.params) {
    const v = await q.data();
    bytes.push(Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
  }
  opt.dispose();
  p.dispose();
  return { records, bytes, replayed, launches };
}

property(
  "a step that replays its line-search and backtracking evaluations equals the plain step bit for bit, on every backend",
  caseArb,
  40,
  async (c) => {
    const { be, dtype, label } = targets[c.target];
    const on = await run(c, be, dtype, true);
    const off = await run(c, be, dtype, false);
    assert.deepStrictEqual(on.records, off.records, `${label}: records`);
    assert.deepStrictEqual(on.bytes, off.bytes, `${label}: parameters`);
  },
);

/** A case with the options given (a two-class problem, two steps). */
function caseWith(options: Partial<Case["options"]>, steps = 2): Case {
  return {
    target: 0,
    hidden: 4,
    classes: 2,
    n: 6,
    ce: true,
    seed: 7,
    steps,
    options: {
      mode: "device",
      lsSpeculation: "adaptive",
      maxLsIters: 3,
      cgBacktrack: false,
      alpha: 1,
      rhoLs: 0.5,
      cLs: 1e-4,
      lineSearch: true,
      trustRegion: false,
      cgMaxIters: 3,
      ...options,
    },
  };
}

Deno.test("line-search replay: each path replays where a second evaluation follows, bit for bit", async () => {
  const paths: [string, Partial<Case["options"]>][] = [
    ["speculative batch (all)", { lsSpeculation: "all" }],
    ["later tries, host (Armijo c = 0.95)", { mode: "host", cLs: 0.95, maxLsIters: 4 }],
    ["later tries, device (Armijo c = 0.95)", { cLs: 0.95, maxLsIters: 4 }],
    ["backtracking, device", { cgBacktrack: true, cgMaxIters: 6 }],
    ["backtracking, host", { mode: "host", cgBacktrack: true, cgMaxIters: 6 }],
  ];
  for (const { be, dtype, label } of targets) {
    for (const [what, options] of paths) {
      const c = caseWith(options);
      const on = await run(c, be, dtype, true);
      const off = await run(c, be, dtype, false);
      assert.deepStrictEqual(on.records, off.records, `${label}, ${what}: records`);
      assert.deepStrictEqual(on.bytes, off.bytes, `${label}, ${what}: parameters`);
      assert.ok(
        on.replayed > off.replayed,
        `${label}, ${what}: ${on.replayed} launches replayed, ${off.replayed} without`,
      );
      // A recording is realized as a plain evaluation is (its maps fused into the products), and
      // its replays skip what does not depend on the point (the labels' argmax, say).
      assert.ok(
        on.launches <= off.launches,
        `${label}, ${what}: ${on.launches} launches with replays, ${off.launches} without`,
      );
    }
  }
});

Deno.test("line-search replay: a step of one evaluation records nothing", async () => {
  // Adaptive speculation starts with one try, and Armijo with c = 1e-4 takes it.
  for (const mode of ["host", "device"] as const) {
    const c = caseWith({ mode }, 1);
    const before = { ...lazyStats };
    const on = await run(c, cpu, "float64", true);
    const middle = { ...lazyStats };
    await run(c, cpu, "float64", false);
    assert.equal((on.records[0] as SgnStepRecord).lsTries, 1, `${mode}: one try`);
    assert.equal(middle.replayed - before.replayed, lazyStats.replayed - middle.replayed, mode);
    assert.equal(middle.kernels - before.kernels, lazyStats.kernels - middle.kernels, mode);
  }
});

Deno.test("line-search replay: a step that fails after replaying frees everything and keeps the parameters", async () => {
  for (const { be, dtype, label } of targets) {
    const c = caseWith({ lsSpeculation: "all" });
    const p = makeProblem(c, be, dtype);
    const opt = new SGN(p.params(), { ...c.options, lsSpeculation: "all" });
    await opt.step(p.model, p.loss);
    const live = be.liveBuffers();
    const before = await Promise.all(opt.params.map((q) => q.data()));
    // L0 as before, every try's loss NaN: the search fails after evaluating (and replaying) all.
    let calls = 0;
    const nan = {
      ...p.loss,
      value: (z: Tensor) => calls++ === 0 ? p.loss.value(z) : o.mul(p.loss.value(z), NaN),
    };
    const r0 = lazyStats.replayed;
    await assert.rejects(() => opt.step(p.model, nan), /the loss after the step is NaN/, label);
    assert.ok(lazyStats.replayed > r0, `${label}: the failed step replayed`);
    assert.equal(be.liveBuffers(), live, `${label}: live buffers`);
    const after = await Promise.all(opt.params.map((q) => q.data()));
    assert.deepStrictEqual(after, before, `${label}: parameters`);
    opt.dispose();
    p.dispose();
  }
});

const gpu = targets.find((t) => t.be.name === "webgpu")?.be as WebGpuBackend | undefined;
// (Only where an adapter exists, as tests/dispatch_test.ts.)
if (gpu) {
  Deno.test({
    name:
      "line-search replay: not where products run together (a hardware GPU's WebGPU), whose tries pair their products",
    fn: () =>
      productsTogether(gpu, true, async () => {
        for (const options of [{ lsSpeculation: "all" as const }, { cgBacktrack: true }]) {
          const c = caseWith(options);
          const d0: number = gpu.rt.stats.dispatches;
          const on = await run(c, gpu, "float32", true);
          const d1: number = gpu.rt.stats.dispatches;
          const off = await run(c, gpu, "float32", false);
          const what = JSON.stringify(options);
          assert.deepStrictEqual(on.records, off.records, `${what}: records`);
          assert.equal(on.replayed, off.replayed, `${what}: replays with products together`);
          assert.equal(d1 - d0, gpu.rt.stats.dispatches - d1, `${what}: dispatches`);
        }
      }),
  });
}
