/**
 * The WebGPU routines built from the generator (wgsl/): the convolutions (one template, every
 * block size it takes, forced as well as planned), max pooling (a window reduction of the IR, its
 * JVP an argmax with a select-chain epilogue, the backward an IR gather where the windows tile
 * the plane, else one template), concat and split (copy commands, or IR kernels stored through a
 * view), and the store-through-a-view kernels themselves, on generated shapes against the CPU
 * oracle. Pooling and moving data are exact operations, so they must agree bit for bit (NaN with
 * NaN); a convolution's element within 1e-5 of the sum of its terms' magnitudes (float32
 * summation). Skipped with the WebGPU backend when there is no adapter (harness.ts says so).
 */
import assert from "node:assert/strict";
import {
  type Backend,
  conv2dOutSize,
  type Conv2dSpec,
  type Pool2dSpec,
} from "../kernel/backend.ts";
import { ACC, binary, contiguous, load, unary } from "../kernel/ir.ts";
import { dispatchKernelInto } from "../wgsl/codegen.ts";
import * as conv from "../wgsl/conv.ts";
import { cpu, put, take, webgpu } from "./harness.ts";
import { fc, property } from "./property.ts";
import { fitKernel, weightGradPlanArb } from "./conv_specs.ts";

const gpu = await webgpu();

/** The values as strings, so that NaN equals NaN and -0 differs from 0. */
const bits = (xs: ArrayLike<number>) => Array.from(xs, (v) => Object.is(v, -0) ? "-0" : String(v));

const int = (min: number, max: number) => fc.integer({ min, max });
const poolArb = fc.record({
  ...{ n: int(1, 2), c: int(1, 3), h: int(1, 19), w: int(1, 19), kh: int(1, 9), kw: int(1, 9) },
  ...{ strideH: int(1, 4), strideW: int(1, 4) },
  // Values from a small set, so that windows hold ties, -0 next to 0, infinities and NaN.
  values: fc.array(fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, 1, 2, -1, 0.5, 3), {
    minLength: 1,
    maxLength: 40,
  }),
  seed: fc.nat(1000),
});

property(
  "WebGPU max pooling (forward, JVP at the argmax, backward) equals the oracle bit for bit",
  poolArb,
  40,
  async (p) => {
    if (!gpu) return;
    const s: Pool2dSpec = { ...p, kh: Math.min(p.kh, p.h), kw: Math.min(p.kw, p.w) };
    const size = s.n * s.c * s.h * s.w;
    const ho = Math.floor((s.h - s.kh) / s.strideH) + 1;
    const wo = Math.floor((s.w - s.kw) / s.strideW) + 1;
    const x = Array.from({ length: size }, (_, i) => p.values[(i * 7 + p.seed) % p.values.length]);
    // Tangents and cotangents: small integers (sums of them are exact in float32).
    const t = Array.from({ length: size }, (_, i) => ((i * 5 + p.seed) % 11) - 5);
    const dy = Array.from({ length: s.n * s.c * ho * wo }, (_, i) => ((i + p.seed) % 7) - 3);
    const results = [];
    for (const be of [gpu, cpu]) {
      const [xb, tb, db] = [x, t, dy].map((d) => put(be, d));
      results.push([
        bits(await take(be, be.maxPool2d(xb, s, xb))),
        bits(await take(be, be.maxPool2d(xb, s, tb))),
        bits(await take(be, be.maxPool2dBackward(xb, db, s))),
      ]);
      [xb, tb, db].forEach((b) => be.release(b));
    }
    const what = JSON.stringify({ ...s, x });
    assert.deepEqual(results[0][0], results[1][0], `forward ${what}`);
    assert.deepEqual(results[0][1], results[1][1], `JVP ${what}`);
    assert.deepEqual(results[0][2], results[1][2], `backward ${what}`);
  },
);

const layoutArb = fc.record({
  widths: fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 40 }),
  outer: fc.integer({ min: 1, max: 5 }),
});

property(
  "WebGPU concat and split move every element exactly: copy commands for whole pieces, one IR kernel per part of a row",
  layoutArb,
  25,
  async ({ widths, outer }) => {
    if (!gpu) return;
    const stats = gpu.rt.stats;
    const parts = widths.map((w, k) => Array.from({ length: outer * w }, (_, i) => k + i / 64));
    const d0 = stats.dispatches;
    const got = await take(gpu, gpu.concat(parts.map((d) => put(gpu, d)), outer, widths));
    const want = await take(cpu, cpu.concat(parts.map((d) => put(cpu, d)), outer, widths));
    assert.deepEqual(bits(got), bits(want), `concat ${JSON.stringify({ widths, outer })}`);
    const kernels = outer === 1 ? 0 : widths.filter((w) => w > 0).length;
    assert.equal(stats.dispatches - d0, kernels, "dispatches of the concatenation");
    // Split the flat concatenation back into its parts.
    const sizes = widths.map((w) => outer * w);
    const d1 = stats.dispatches;
    const pieces = gpu.split(put(gpu, got), sizes);
    assert.equal(stats.dispatches, d1, "a split dispatches nothing");
    let at = 0;
    for (const [k, piece] of pieces.entries()) {
      const back = await take(gpu, piece);
      assert.deepEqual(bits(back), bits(got.slice(at, at + sizes[k])), `split piece ${k}`);
      at += sizes[k];
    }
  },
);

const viewArb = fc.record({
  shape: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }),
  perm: fc.nat(5),
  pad: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 3, maxLength: 3 }),
  offset: fc.nat(7),
});

property(
  "WebGPU map kernels stored through a view write the view and leave the rest",
  viewArb,
  25,
  async ({ shape, perm, pad, offset }) => {
    if (!gpu) return;
    // The input transposed (axes in a rotated order) into a padded destination.
    const rank = shape.length;
    const order = shape.map((_, i) => (i + perm) % rank);
    const inStrides = contiguous(shape);
    const outShape = order.map((a) => shape[a]);
    const size = shape.reduce((a, b) => a * b, 1);
    const x = Array.from({ length: size }, (_, i) => i + 1);
    // Destination strides: the rotated shape, each row padded by pad[d].
    const dst: number[] = new Array(rank);
    let step = 1;
    for (let d = rank - 1; d >= 0; d--) {
      dst[d] = step;
      step *= outShape[d] + pad[d];
    }
    const total = offset + step;
    const kernel = { shape: outShape, inputs: 1, body: load(0, order.map((a) => inStrides[a])) };
    const out = put(gpu, new Array(total).fill(-7));
    const xb = put(gpu, x);
    dispatchKernelInto(gpu.rt, kernel, [gpu.rt.check(xb, "test")], gpu.rt.check(out, "test"), {
      strides: dst,
      offset,
    });
    // A view that runs past the end of the output is refused, with what it reaches.
    assert.throws(
      () =>
        dispatchKernelInto(gpu.rt, kernel, [gpu.rt.check(xb, "test")], gpu.rt.check(out, "test"), {
          strides: dst,
          offset: total - outShape.reduce((a, d, i) => a + (d - 1) * dst[i], 0),
        }),
      /reaches element/,
    );
    const got = await take(gpu, out);
    gpu.release(xb);
    const want = new Array(total).fill(-7);
    const idx = new Array(rank).fill(0);
    for (let k = 0; k < size; k++) {
      let src = 0;
      let to = offset;
      for (let d = 0; d < rank; d++) {
        src += idx[d] * inStrides[order[d]];
        to += idx[d] * dst[d];
      }
      want[to] = x[src];
      for (let d = rank - 1; d >= 0 && ++idx[d] === outShape[d]; d--) idx[d] = 0;
    }
    assert.deepEqual(Array.from(got), want, JSON.stringify({ shape, order, dst, offset }));
  },
);

const convArb = fc.record({
  ...{ n: int(1, 3), c: int(1, 6), f: int(1, 9), h: int(1, 11), w: int(1, 11) },
  // Stride 1 half the time: the input gradient is then the forward kernel, flipped.
  ...{ kh: int(1, 5), kw: int(1, 5), strideH: fc.constantFrom(1, 1, 2, 3) },
  ...{ strideW: fc.constantFrom(1, 1, 2, 3) },
  ...{ padH: int(0, 2), padW: int(0, 2), bias: fc.boolean(), seed: fc.nat(1000) },
  // Block sizes: forced (any the template takes) or, when absent, the cost model's.
  direct: fc.option(fc.record({
    ...{ th: int(1, 3), tw: int(1, 3), cf: int(1, 2) },
    ...{ v: fc.constantFrom(1 as const, 4 as const), unrollKy: fc.boolean() },
  })),
  gather: fc.option(fc.record({ tw: int(1, 4), cf: int(1, 2) })),
  weightGrad: fc.option(weightGradPlanArb),
});

property(
  "WebGPU convolutions (forward with an epilogue, both gradients) agree with the oracle for any block size",
  convArb,
  20,
  async (p) => {
    if (!gpu) return;
    const s: Conv2dSpec = fitKernel(p);
    const plans = {
      ...(p.direct ? { direct: p.direct } : {}),
      ...(p.gather ? { gather: p.gather } : {}),
      ...(p.weightGrad ? { weightGrad: p.weightGrad } : {}),
    };
    const [ho, wo] = conv2dOutSize(s);
    const data = (n: number, k: number) =>
      Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + k + p.seed) * 2);
    const x = data(s.n * s.c * s.h * s.w, 1);
    const w = data(s.f * s.c * s.kh * s.kw, 2);
    const dy = data(s.n * s.f * ho * wo, 3);
    const bias = data(s.f, 4);
    // relu(acc + bias[f]) over the output [n, f, ho, wo].
    const body = unary("relu", binary("add", ACC, load(0, [0, 1, 0, 0])));
    const on = (be: Backend, d: number[]) => put(be, d);
    const [xg, wg, dyg, biasg] = [x, w, dy, bias].map((d) => gpu.rt.check(on(gpu, d), "test"));
    const epi = p.bias ? { body, inputs: [biasg] } : undefined;
    const got = [
      conv.conv2d(gpu.rt, xg, wg, s, epi, plans),
      conv.conv2dInputGrad(gpu.rt, dyg, wg, s, plans),
      conv.conv2dWeightGrad(gpu.rt, xg, dyg, s, plans),
    ];
    [xg, wg, dyg, biasg].forEach((buf) => gpu.release(buf));
    const abs = (d: number[]) => d.map(Math.abs);
    const oracle = async (xs: number[], ws: number[], dys: number[], e?: typeof body) => {
      const [xc, wc, dyc, bc] = [xs, ws, dys, bias].map((d) => on(cpu, d));
      const out = [
        await take(cpu, cpu.conv2d(xc, wc, s, e && { body: e, inputs: [bc] })),
        await take(cpu, cpu.conv2dInputGrad(dyc, wc, s)),
        await take(cpu, cpu.conv2dWeightGrad(xc, dyc, s)),
      ];
      [xc, wc, dyc, bc].forEach((buf) => cpu.release(buf));
      return out;
    };
    const want = await oracle(x, w, dy, p.bias ? body : undefined);
    const scale = await oracle(abs(x), abs(w), abs(dy));
    const names = ["conv2d", "conv2dInputGrad", "conv2dWeightGrad"];
    for (const [k, out] of got.entries()) {
      const g = await take(gpu, out);
      assert.equal(g.length, want[k].length, names[k]);
      for (let i = 0; i < g.length; i++) {
        const tol = 1e-5 * (scale[k][i] + (k === 0 && p.bias ? Math.abs(bias[0]) + 2 : 0)) + 1e-6;
        if (!(Math.abs(g[i] - want[k][i]) <= tol)) {
          throw new Error(
            `${names[k]} ${JSON.stringify({ s, plans })}: element ${i} is ${g[i]}, ` +
              `the oracle's ${want[k][i]} (tolerance ${tol})`,
          );
        }
      }
    }
  },
);
