/**
 * Float64 on the native backend gives the same bits whichever path runs a kernel: WebAssembly
 * over the arena (cpu/wasm/) or the compiled JavaScript loops (cpu/compile.ts), and those of the
 * float64 oracle (kernel/interpret.ts), since all three call the op table's functions for exp,
 * log, tanh, softplus, erf and pow and add up sums in one order. Generated kernels (maps,
 * reductions with epilogues, several outputs) on random doubles and special values; and the
 * command line's sine_10 run (float64, CG preconditioner), whose epoch losses moved when a
 * change of fusion moved CG's dot product from one path to the other (commit 0d7c081).
 */

import assert from "node:assert/strict";
import type { DType, TypedArray } from "../kernel/shape.ts";
import * as ir from "../kernel/ir.ts";
import type { NativeBackend } from "../cpu/native.ts";
import type { Backend } from "../kernel/backend.ts";
import { cpu, native, nativeJs, skipped } from "./harness.ts";
import { fc, property } from "./property.ts";
import { sineWaves } from "../datasets/mod.ts";
import { mlp } from "../models/networks.ts";
import { ACTIVATION_NAMES } from "../models/network_base.ts";
import { meanSquaredError, oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import { tensor } from "../autodiff/tensor.ts";
import { SGN } from "../sgn/sgn.ts";
import { train } from "../train/loop.ts";
import { optionsFor, resolveSettings } from "../train/settings.ts";
import { numpyInitSeed } from "../train/experiment.ts";

const wasm = await native();
const loops = await nativeJs();
const both = wasm?.arena && loops && !loops.arena ? { wasm, loops } : undefined;
if (!both) {
  skipped(
    "native float64 paths",
    `needs the native backend with and without its arena: ${wasm?.description ?? "no native"}`,
  );
}

// --- generated kernels -------------------------------------------------------------------------

/** Doubles: mostly moderate (exp and pow stay finite), some of any size, and special values. */
const double = fc.oneof(
  { weight: 6, arbitrary: fc.double({ min: -6, max: 6, noNaN: true }) },
  { weight: 2, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom(0, -0, 1, -1, 0.5, 2, Infinity, -Infinity, NaN) },
);

/** One load over `dims`: contiguous, broadcast in some dimensions, or arbitrary strides. */
const loadOver = (dims: readonly number[], inputs: number) =>
  fc.record({
    input: fc.nat(inputs - 1),
    kind: fc.constantFrom("contiguous", "broadcast", "strided"),
    zero: fc.array(fc.boolean(), { minLength: dims.length, maxLength: dims.length }),
    strides: fc.array(fc.nat(5), { minLength: dims.length, maxLength: dims.length }),
    offset: fc.nat(3),
  }).map(({ input, kind, zero, strides, offset }) => {
    const c = ir.contiguous(dims);
    const s = kind === "contiguous"
      ? c
      : kind === "broadcast"
      ? c.map((v, i) => (zero[i] ? 0 : v))
      : strides;
    return ir.load(input, s, offset);
  });

/** An expression of depth at most `depth` over `leaf` (every unary and binary op, where, casts). */
function exprOver(leaf: fc.Arbitrary<ir.Expr>, depth: number): fc.Arbitrary<ir.Expr> {
  if (depth === 0) return fc.oneof(leaf, double.map(ir.constant));
  const sub = exprOver(leaf, depth - 1);
  return fc.oneof(
    { weight: 2, arbitrary: leaf },
    {
      weight: 3,
      arbitrary: fc.tuple(fc.constantFrom(...ir.UNARY_OPS), sub).map(([op, x]) => ir.unary(op, x)),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(fc.constantFrom(...ir.BINARY_OPS), sub, sub).map(([op, a, b]) =>
        ir.binary(op, a, b)
      ),
    },
    { weight: 1, arbitrary: fc.tuple(sub, sub, sub).map(([c, a, b]) => ir.where(c, a, b)) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom<DType>("float32", "float64"), sub).map((
        [to, x],
      ): ir.Expr => ({ k: "cast", to, x })),
    },
  );
}

/** A kernel (a map, or a reduction with or without an epilogue; maybe several outputs). */
const kernels = fc.record({
  shape: fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 3 }),
  reduce: fc.option(
    fc.record({
      op: fc.constantFrom<ir.ReduceOp>("sum", "max", "argmax"),
      shape: fc.array(fc.integer({ min: 1, max: 24 }), { minLength: 1, maxLength: 2 }),
    }),
    { nil: undefined },
  ),
  inputs: fc.integer({ min: 1, max: 3 }),
  outputs: fc.integer({ min: 1, max: 3 }),
}).chain(({ shape, reduce, inputs, outputs }) => {
  const full = [...shape, ...(reduce?.shape ?? [])];
  const body = exprOver(loadOver(full, inputs), 3);
  const epi = reduce
    ? fc.option(exprOver(fc.oneof(fc.constant(ir.ACC), loadOver(shape, inputs)), 2), {
      nil: undefined,
    })
    : fc.constant(undefined);
  const output = fc.record({
    body,
    epilogue: epi,
    op: fc.constantFrom<ir.ReduceOp>("sum", "max", "argmax"),
  });
  return fc.array(output, { minLength: outputs, maxLength: outputs }).map((outs): ir.Kernel => {
    const [first, ...more] = outs;
    const red = (o: typeof first) => ({
      ...(reduce && o.epilogue ? { epilogue: o.epilogue } : {}),
    });
    return {
      shape,
      inputs,
      body: first.body,
      ...(reduce ? { reduce } : {}),
      ...red(first),
      ...(more.length
        ? {
          more: more.map((o) => ({
            body: o.body,
            ...(reduce ? { op: o.op } : {}),
            ...red(o),
          })),
        }
        : {}),
    };
  });
});

/** Elements each input needs for the kernel's loads. */
function inputSizes(k: ir.Kernel): number[] {
  const sizes = new Array<number>(k.inputs).fill(1);
  const full = [...k.shape, ...(k.reduce?.shape ?? [])];
  const see = (e: ir.Expr, dims: readonly number[]) =>
    ir.walk(e, (x) => {
      if (x.k !== "load") return;
      let last = x.offset;
      dims.forEach((d, i) => (last += (d - 1) * x.strides[i]));
      sizes[x.input] = Math.max(sizes[x.input], last + 1);
    });
  for (const o of ir.outputsOf(k)) {
    see(o.body, full);
    if (o.epilogue) see(o.epilogue, k.shape);
  }
  return sizes;
}

/** Runs a kernel on a backend from host data, reading the result back. */
async function runOn(be: Backend, k: ir.Kernel, data: Float64Array[]): Promise<TypedArray> {
  const ins = data.map((d) => be.upload(d));
  const out = be.run(k, ins, "float64");
  const got = await be.read(out);
  for (const b of [...ins, out]) be.release(b);
  return got;
}

const bits = (v: number) => (v !== v ? "NaN" : Object.is(v, -0) ? "-0" : String(v));

if (both) {
  property(
    "a generated float64 kernel gives the same bits in WebAssembly, in the JavaScript loops and in the oracle",
    kernels.chain((k) =>
      fc.tuple(
        fc.constant(k),
        fc.tuple(
          ...inputSizes(k).map((n) =>
            fc.array(double, { minLength: n, maxLength: n }).map((a) => Float64Array.from(a))
          ),
        ),
      )
    ),
    300,
    async ([k, data]) => {
      const before = { ...both.wasm.kernelRuns };
      const w = await runOn(both.wasm, k, data);
      const ran = both.wasm.kernelRuns.wasm - before.wasm;
      assert.ok(ran > 0 && both.wasm.kernelRuns.js === before.js, "the kernel ran in WebAssembly");
      const j = await runOn(both.loops, k, data);
      const o = await runOn(cpu, k, data);
      assert.equal(w.length, o.length);
      for (let i = 0; i < o.length; i++) {
        const [a, b, c] = [bits(w[i]), bits(j[i]), bits(o[i])];
        if (a !== c || b !== c) {
          assert.fail(
            `element ${i}: WebAssembly ${a}, loops ${b}, oracle ${c}; kernel ${JSON.stringify(k)}`,
          );
        }
      }
    },
  );
}

// --- the sine_10 run ---------------------------------------------------------------------------

/** The command line's `train --dataset sine_10 --float64 --cg_prec true --epochs 2` on `be`. */
async function sineRun(be: NativeBackend) {
  const a = resolveSettings({ dataset: "sine_10", float64: true, cg_prec: true, epochs: 2 });
  const data = sineWaves(10, { seed: a.seed });
  const network = mlp({ inputs: data.inputShape[0], hidden: a.layers, outputs: data.outputs });
  const params = network.init({
    seed: a.seed,
    backend: be,
    dtype: "float64",
    numpySeed: numpyInitSeed(a.init, false),
  });
  const optimizer = new SGN(params, optionsFor(a, "SGN"));
  const runs = { ...be.kernelRuns };
  try {
    // As runExperiment trains (the mini-batch order is its default, the seed's).
    const { task, train: batches, test } = data;
    const r = await train({
      network,
      optimizer,
      task,
      train: batches,
      test,
      backend: be,
      epochs: a.epochs,
      batchSize: a.batch_size,
      seed: a.seed,
      dtype: "float64",
    });
    const theta = await Promise.all(optimizer.params.map((p) => p.data()));
    return {
      losses: [...r.avg_loss, ...(r.test_loss ?? [])],
      theta: theta.flatMap((t) => [...t]),
      wasm: be.kernelRuns.wasm - runs.wasm,
      js: be.kernelRuns.js - runs.js,
    };
  } finally {
    optimizer.dispose();
  }
}

if (both) {
  Deno.test("native float64: the sine_10 run with CG's preconditioner is the same, bit for bit, in WebAssembly and in the JavaScript loops", async () => {
    const w = await sineRun(both.wasm);
    const j = await sineRun(both.loops);
    // Each path ran its kernels (a kernel of several outputs runs one output at a time in the
    // arena, each in WebAssembly).
    assert.ok(w.wasm > 1000 && w.js === 0, `WebAssembly ${w.wasm}, loops ${w.js}`);
    assert.ok(j.wasm === 0 && j.js > 1000, `loops ${j.js}, WebAssembly ${j.wasm}`);
    assert.deepEqual(w.losses.map(bits), j.losses.map(bits), "epoch losses (training, test)");
    assert.deepEqual(w.theta.map(bits), j.theta.map(bits), "parameters after two epochs");
  });
}

// --- SGN steps on generated networks -----------------------------------------------------------

/** Four SGN steps (momentum, preconditioner, cos schedule) of an MLP on `be`: the parameters. */
async function sgnSteps(
  be: NativeBackend,
  c: { activation: (typeof ACTIVATION_NAMES)[number]; hidden: number[]; seed: number; ce: boolean },
): Promise<number[]> {
  const net = mlp({ inputs: 6, hidden: c.hidden, outputs: 3, activation: c.activation });
  const n = 40;
  let s = c.seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 30) - 1;
  const x = tensor(Float64Array.from({ length: n * 6 }, next), [n, 6], {
    backend: be,
    dtype: "float64",
  });
  const labels = Array.from({ length: n }, (_, i) => i % 3);
  const y = c.ce
    ? oneHot(labels, 3, { backend: be, dtype: "float64" })
    : tensor(Float64Array.from({ length: n * 3 }, next), [n, 3], { backend: be, dtype: "float64" });
  const opt = new SGN(net.init({ seed: c.seed, backend: be, dtype: "float64" }), {
    beta: 0.9,
    cgPrec: true,
    alphaExp: 0.5,
    rhoDecay: "cos",
    k: 4,
    dampRho: 0.05,
    cgMaxIters: 4,
    cgMinIters: 4,
  });
  try {
    const loss = c.ce ? softmaxCrossEntropy(y) : meanSquaredError(y);
    for (let i = 0; i < 4; i++) await opt.step((...p) => net.forward(p, x), loss);
    const theta = await Promise.all(opt.params.map((p) => p.data()));
    return theta.flatMap((t) => [...t]);
  } finally {
    opt.dispose();
    x.dispose();
    y.dispose();
  }
}

if (both) {
  property(
    "SGN steps on a generated float64 MLP give the same parameters, bit for bit, in WebAssembly and in the JavaScript loops",
    fc.record({
      activation: fc.constantFrom(...ACTIVATION_NAMES),
      hidden: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 2 }),
      seed: fc.integer({ min: 1, max: 2 ** 30 }),
      ce: fc.boolean(),
    }),
    12,
    async (c) => {
      const w = await sgnSteps(both.wasm, c);
      const j = await sgnSteps(both.loops, c);
      assert.deepEqual(w.map(bits), j.map(bits));
    },
  );
}
