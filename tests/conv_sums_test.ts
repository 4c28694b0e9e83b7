/**
 * A conv layer's bias gradient from its weight gradient's routine (`Conv2dSpec.sums`; the graph
 * folds the pair in kernel/matmul.ts `withSums` on a backend with `Backend.convBiasFold`:
 * WebGPU's hardware schedule): dy summed per filter after the weights, as in a flat parameter
 * vector. Generated specs on every backend and dtype: the weights' part is the plain weight
 * gradient bit for bit, and the sums are the graph's own reduction of dy bit for bit on the CPU
 * backends (the same kernel), within float32 rounding of the oracle on WebGPU (its weight-gradient
 * template sums dy itself, for any block size and chunking). And the graph folds a conv layer's
 * pair where the switch is on, on every backend: its flat gradient runs no reduction of its own
 * for the bias, and the gradient is the oracle's; with the switch off it runs that reduction.
 */
import assert from "node:assert/strict";
import { type Backend, conv2dOutSize, type Conv2dSpec } from "../kernel/backend.ts";
import type { Kernel } from "../kernel/ir.ts";
import * as conv from "../wgsl/conv.ts";
import * as ops from "../autodiff/ops.ts";
import { scope, tensor } from "../autodiff/tensor.ts";
import { valueAndGrad } from "../autodiff/transforms.ts";
import { concatFlat } from "../sgn/vectors.ts";
import { backendTargets, cpu, webgpu, withSwitches } from "./harness.ts";
import { fc, property } from "./property.ts";
import { fitKernel, weightGradPlanArb } from "./conv_specs.ts";

const targets = await backendTargets();
const gpu = await webgpu();
const int = (min: number, max: number) => fc.integer({ min, max });

/** Values from a seed, dyadic in half the cases (exact sums), else not. */
const data = (n: number, seed: number, dyadic: boolean) =>
  Array.from({ length: n }, (_, i) => {
    const v = Math.sin(i * 1.37 + seed * 0.61) * 3;
    return dyadic ? Math.round(v * 4) / 4 : v;
  });

const specArb = fc.record({
  n: int(1, 3),
  c: int(1, 7),
  f: int(1, 9),
  h: int(2, 9),
  w: int(2, 9),
  k: int(1, 3),
  stride: int(1, 2),
  pad: int(0, 1),
  seed: fc.nat(1000),
  dyadic: fc.boolean(),
  // WebGPU's block sizes: forced (any the template takes: several channel blocks, chunks, dy
  // transposed or not) or the cost model's.
  plan: fc.option(weightGradPlanArb),
});

property(
  "conv2dWeightGrad with sums: the weights' part is the plain weight gradient, the sums dy's per filter, on every backend",
  specArb,
  30,
  async (p) => {
    const s: Conv2dSpec = fitKernel({
      ...{ n: p.n, c: p.c, f: p.f, h: p.h, w: p.w, kh: p.k, kw: p.k },
      ...{ strideH: p.stride, strideW: p.stride, padH: p.pad, padW: p.pad },
    });
    const [ho, wo] = conv2dOutSize(s);
    const xd = data(s.n * s.c * s.h * s.w, p.seed, p.dyadic);
    const dyd = data(s.n * s.f * ho * wo, p.seed + 1, p.dyadic);
    const weights = s.f * s.c * s.kh * s.kw;
    // The oracle's sums in float64, and their scale for WebGPU's tolerance.
    const want = new Float64Array(s.f), scale = new Float64Array(s.f);
    dyd.forEach((v, i) => {
      const f = Math.floor(i / (ho * wo)) % s.f;
      want[f] += v;
      scale[f] += Math.abs(v);
    });
    for (const { label, be, dtype } of targets) {
      const opts = { backend: be, dtype };
      const x = tensor(xd, [s.n, s.c, s.h, s.w], opts), dy = tensor(dyd, [s.n, s.f, ho, wo], opts);
      const [xb, dyb] = [x.lazy.realize(), dy.lazy.realize()];
      const what = `${label} ${JSON.stringify({ s, plan: p.plan })}`;
      const run = (sums: boolean) => {
        const spec = sums ? { ...s, sums } : s;
        if (be !== gpu || !p.plan) return be.conv2dWeightGrad(xb, dyb, spec);
        const rt = gpu.rt;
        return conv.conv2dWeightGrad(rt, rt.check(xb, "t"), rt.check(dyb, "t"), spec, {
          weightGrad: p.plan,
        });
      };
      const both = await readAll(be, run(true));
      const plain = await readAll(be, run(false));
      assert.equal(both.length, weights + s.f, what);
      assert.deepEqual(both.slice(0, weights), plain, `${what}: the weights' part`);
      const sums = both.slice(weights);
      if (be === gpu) {
        sums.forEach((v, f) => {
          const tol = 4 * 2 ** -24 * (s.n * ho * wo + 2) * scale[f] + 1e-30;
          if (!(Math.abs(v - want[f]) <= tol)) {
            assert.fail(`${what}: sum ${f} is ${v}, the oracle's ${want[f]}`);
          }
        });
      } else {
        // The graph's own reduction of dy: the same kernel, so the same bits.
        const own = await ops.sum(dy, [0, 2, 3]).data();
        assert.deepEqual(sums, Array.from(own), `${what}: the sums`);
      }
      x.dispose();
      dy.dispose();
    }
  },
);

async function readAll(be: Backend, b: ReturnType<Backend["conv2dWeightGrad"]>) {
  const out = Array.from(await be.read(b));
  be.release(b);
  return out;
}

Deno.test("conv sums: with Backend.convBiasFold a conv layer's flat gradient runs no reduction of its own for the bias, on every backend", async () => {
  const [n, c, f, hw, k] = [2, 3, 4, 6, 3];
  const biasSum = `[${f}] <- [${n},${hw - k + 1},${hw - k + 1}]`;
  for (const { label, be, dtype } of targets) {
    const opts = { backend: be, dtype };
    const x = tensor(data(n * c * hw * hw, 1, false), [n, c, hw, hw], opts);
    const w = tensor(data(f * c * k * k, 2, false), [f, c, k, k], opts);
    const b = tensor(data(f, 3, false), [f], opts);
    const lossAt = (xx: typeof x) => (ww: typeof w, bb: typeof b) =>
      ops.sum(ops.tanh(ops.add(ops.conv2d(xx, ww), ops.reshape(bb, [1, f, 1, 1]))));
    // The oracle's gradients, one tensor at a time and unfused: dy summed by ops.sum.
    const oracle = async (t: typeof x) =>
      tensor(await t.data(), t.shape, { backend: cpu, dtype: "float64" });
    const [xo, wo, bo] = [await oracle(x), await oracle(w), await oracle(b)];
    const [gw, gb] = valueAndGrad(lossAt(xo))(wo, bo)[1];
    const want = [...(await gw.data()), ...(await gb.data())];
    for (const t of [xo, wo, bo, gw, gb]) t.dispose();
    // Every reduction the graph runs (not the weight gradient's own), by its output shape.
    const reductions: string[] = [];
    let inside = false;
    const run = be.run.bind(be), grad = be.conv2dWeightGrad.bind(be);
    be.run = (kernel: Kernel, ...rest) => {
      if (kernel.reduce && !inside) {
        reductions.push(`[${kernel.shape}] <- [${kernel.reduce.shape}]`);
      }
      return run(kernel, ...rest);
    };
    be.conv2dWeightGrad = (...args) => {
      inside = true;
      try {
        return grad(...args);
      } finally {
        inside = false;
      }
    };
    try {
      for (const fold of [true, false]) {
        reductions.length = 0;
        const got = await withSwitches(be, { convBiasFold: fold }, async () => {
          const flat = scope(() => [concatFlat(valueAndGrad(lossAt(x))(w, b)[1])])[0];
          const values = await flat.data();
          flat.dispose();
          return values;
        });
        const what = `${label}, fold ${fold}`;
        assert.equal(
          reductions.includes(biasSum),
          !fold,
          `${what}: the reductions were ${reductions.join(", ")}`,
        );
        const tol = dtype === "float64" ? 1e-12 : 1e-4;
        want.forEach((v, i) => {
          if (!(Math.abs(got[i] - v) <= tol * (1 + Math.abs(v)))) {
            assert.fail(`${what}: element ${i} is ${got[i]}, the oracle's ${v}`);
          }
        });
      }
    } finally {
      be.run = run;
      be.conv2dWeightGrad = grad;
      for (const t of [x, w, b]) t.dispose();
    }
  }
});

Deno.test("conv sums: a spec with sums is refused by the forward pass and the input gradient, on every backend", () => {
  const s: Conv2dSpec = {
    ...{ n: 1, c: 1, f: 2, h: 3, w: 3, kh: 2, kw: 2 },
    ...{ strideH: 1, strideW: 1, padH: 0, padW: 0, sums: true },
  };
  for (const { label, be, dtype } of targets) {
    const put = (n: number) => tensor(data(n, 0, true), [n], { backend: be, dtype }).lazy.realize();
    const x = put(9), w = put(8), dy = put(8);
    const refused =
      /sums \(the bias gradient after a weight gradient\) is a boolean for conv2dWeightGrad only/;
    assert.throws(() => be.conv2d(x, w, s), refused, `${label}: conv2d`);
    assert.throws(() => be.conv2dInputGrad(dy, w, s), refused, `${label}: conv2dInputGrad`);
    const notBoolean = { ...s, sums: 1 as unknown as boolean };
    assert.throws(() => be.conv2dWeightGrad(x, dy, notBoolean), refused, `${label}: sums 1`);
    // The weight gradient takes it: f c kh kw weights, then f sums.
    const both = be.conv2dWeightGrad(x, dy, s);
    assert.equal(both.size, 2 * 4 + 2, label);
    for (const b of [both, x, w, dy]) be.release(b);
  }
});
