/**
 * The kernel layer: random fused kernels of the IR on every lowering (WGSL, compiled native
 * loops) against the reference interpreter; views that do not copy; element-wise chains that run
 * as one kernel; epilogues fused into matmul; and the dispatch counts of the seed's W1 workload.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import type { DType, TypedArray } from "../kernel/shape.ts";
import * as ir from "../kernel/ir.ts";
import { interpret } from "../kernel/interpret.ts";
import { lazyStats } from "../kernel/lazy.ts";
import { cpu, native, Random, skipped, webgpu } from "./harness.ts";
import { ops, scope, type Tensor, tensor } from "../mod.ts";
import { valueAndGrad } from "../autodiff/transforms.ts";
import { w1 } from "../bench/sgn_step_cases.ts";
import { hvp } from "../autodiff/transforms.ts";
import { ggnvp } from "../autodiff/curvature.ts";
import { convNet } from "../models/conv_net.ts";
import { ARCHITECTURE_1, ARCHITECTURE_4 } from "../models/architectures.ts";
import { oneHot, softmaxCrossEntropy } from "../models/losses.ts";
import type { WebGpuBackend } from "../wgsl/webgpu.ts";

const gpu = await webgpu();
const nat = await native();
const targets: [string, Backend, DType][] = [
  ...(nat ? [["native float32", nat, "float32"], ["native float64", nat, "float64"]] as const : []),
  ...(gpu ? [["webgpu", gpu, "float32"]] as const : []),
].map(([l, b, d]) => [l, b as Backend, d as DType]);
if (!gpu) skipped("kernel: WebGPU lowering", "no WebGPU adapter");

const UN = ["neg", "sigmoid", "tanh", "relu", "square", "abs", "step", "sign", "exp"] as const;
const BIN = ["add", "sub", "mul", "max", "min", "gt", "le"] as const;

/** A random kernel over `inputs` buffers of `sizes` elements: views, ops, maybe a reduction. */
function randomKernel(rng: Random): { kernel: ir.Kernel; sizes: number[] } {
  const rank = 1 + rng.int(3);
  const shape = Array.from({ length: rank }, () => 1 + rng.int(6));
  const reduce = rng.uniform() < 0.5
    ? { op: (["sum", "max", "argmax"] as const)[rng.int(3)], shape: [1 + rng.int(9)] }
    : undefined;
  const loop = [...shape, ...(reduce?.shape ?? [])];
  const inputs = 1 + rng.int(3);
  const sizes = new Array<number>(inputs).fill(1);
  /** A load through a random view: permuted, broadcast (stride 0) or sliced (offset). */
  const view = (dims: number[]): ir.Expr => {
    const input = rng.int(inputs);
    const order = dims.map((_, i) => i).sort(() => rng.uniform() - 0.5);
    const strides = new Array<number>(dims.length).fill(0);
    let s = 1;
    for (const d of order) {
      if (rng.uniform() < 0.25) continue; // broadcast
      strides[d] = s;
      s *= dims[d];
    }
    const offset = rng.int(3);
    sizes[input] = Math.max(sizes[input], offset + s);
    return ir.load(input, strides, offset);
  };
  const expr = (dims: number[], depth: number, acc = false): ir.Expr => {
    const r = rng.uniform();
    if (depth === 0 || r < 0.2) {
      if (acc && rng.uniform() < 0.5) return ir.ACC;
      return rng.uniform() < 0.15 ? ir.constant(rng.range(-2, 2)) : view(dims);
    }
    if (r < 0.5) return ir.unary(UN[rng.int(UN.length)], expr(dims, depth - 1, acc));
    if (r < 0.85) {
      return ir.binary(
        BIN[rng.int(BIN.length)],
        expr(dims, depth - 1, acc),
        expr(dims, depth - 1, acc),
      );
    }
    if (r < 0.93) return { k: "cast", to: "float32", x: expr(dims, depth - 1, acc) };
    return ir.where(
      expr(dims, depth - 1, acc),
      expr(dims, depth - 1, acc),
      expr(dims, depth - 1, acc),
    );
  };
  const body = expr(loop, 4);
  const kernel: ir.Kernel = {
    shape,
    inputs,
    body,
    ...(reduce ? { reduce } : {}),
    ...(reduce && rng.uniform() < 0.5
      ? { epilogue: ir.binary("add", ir.ACC, expr(shape, 2, true)) }
      : {}),
  };
  return { kernel, sizes };
}

function close(got: TypedArray, want: TypedArray, scale: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (g === w) continue;
    const tol = 1e-4 * (Math.abs(w) + scale);
    if (!(Math.abs(g - w) <= tol)) {
      throw new Error(`${what}: element ${i} is ${g}, the interpreter gives ${w}`);
    }
  }
}

Deno.test("kernel: 300 random fused kernels agree with the interpreter on every lowering", async () => {
  const rng = new Random(7);
  let checked = 0;
  for (let trial = 0; trial < 300; trial++) {
    const { kernel, sizes } = randomKernel(rng);
    const data = sizes.map((n) => rng.array(n, (r) => r.range(-2, 2)));
    for (const [label, be, dtype] of targets) {
      const Arr = dtype === "float64" ? Float64Array : Float32Array;
      const host = data.map((d) => Arr.from(d));
      const want = new Arr(kernel.shape.reduce((a, b) => a * b, 1));
      interpret(kernel, host, want);
      const bufs = host.map((h) => be.upload(h));
      const out = be.run(kernel, bufs, dtype);
      const got = await be.read(out);
      be.release(out);
      bufs.forEach((b) => be.release(b));
      // Sums of up to 9 terms of magnitude up to ~16 (square of 4): an absolute scale.
      const scale = kernel.reduce?.op === "sum" ? 10 : 1;
      close(got, want, scale, `${label} trial ${trial} ${JSON.stringify(kernel).slice(0, 300)}`);
      checked++;
    }
  }
  assert.ok(checked >= 300 * targets.length, `checked ${checked}`);
});

/** Kernels run and WebGPU dispatches recorded while `fn` runs (and its result is read). */
async function count(be: Backend, fn: () => Tensor | Tensor[]): Promise<[number, number]> {
  const k0 = lazyStats.kernels + lazyStats.routines;
  const d0 = (be as WebGpuBackend).rt?.stats.dispatches ?? 0;
  const out = fn();
  for (const t of [out].flat()) {
    await t.data();
    t.dispose();
  }
  const d1 = (be as WebGpuBackend).rt?.stats.dispatches ?? 0;
  return [lazyStats.kernels + lazyStats.routines - k0, d1 - d0];
}

for (const [label, be] of [["cpu", cpu] as const, ...targets.filter((t) => t[2] === "float32")]) {
  Deno.test(`kernel: a chain of 12 element-wise ops with broadcasts and views is one kernel (${label})`, async () => {
    const x = tensor([1, 2, 3, 4, 5, 6], undefined, { backend: be });
    const row = tensor([0.5, -1, 2], undefined, { backend: be });
    await x.data();
    await row.data();
    const [kernels, dispatches] = await count(be, () =>
      scope(() => {
        // A reshape and a transpose of x, a broadcast of row, a chain, then a split reshape.
        let y = ops.add(ops.transpose(ops.reshape(x, [3, 2]), [1, 0]), row);
        for (let i = 0; i < 4; i++) y = ops.sigmoid(ops.mul(ops.sub(y, 0.25), 1.5));
        return ops.mul(ops.reshape(y, [2, 1, 3]), 2);
      }));
    assert.equal(kernels, 1);
    if (be.name === "webgpu") assert.equal(dispatches, 1);
    x.dispose();
    row.dispose();
  });

  Deno.test(`kernel: reshape, transpose and broadcast of a computed tensor copy nothing (${label})`, async () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]], undefined, { backend: be });
    await x.data();
    const live = be.liveBuffers();
    const k0 = lazyStats.kernels;
    const r = ops.reshape(x, [3, 2]);
    const t = ops.transpose(x, [1, 0]);
    const b = ops.broadcastTo(x, [4, 2, 3]);
    assert.equal(lazyStats.kernels, k0, "no kernel ran");
    assert.equal(be.liveBuffers(), live, "no buffer was allocated");
    assert.deepEqual(Array.from(await r.data()), [1, 2, 3, 4, 5, 6]);
    assert.equal(lazyStats.kernels, k0, "a contiguous reshape shares the buffer");
    assert.deepEqual(Array.from(await t.data()), [1, 4, 2, 5, 3, 6]);
    assert.equal((await b.data()).length, 24);
    for (const v of [x, r, t, b]) v.dispose();
    assert.equal(be.liveBuffers(), live - 1);
  });

  Deno.test(`kernel: bias and activation fuse into the matmul, sum of a sum is one reduction (${label})`, async () => {
    const a = tensor(new Float32Array(12).map((_, i) => i / 10), [3, 4], { backend: be });
    const w = tensor(new Float32Array(8).map((_, i) => 1 - i / 5), [4, 2], { backend: be });
    const bias = tensor([0.1, -0.2], undefined, { backend: be });
    for (const v of [a, w, bias]) await v.data();
    const r0 = lazyStats.routines;
    const [kernels] = await count(be, () => ops.sigmoid(ops.add(ops.matmul(a, w), bias)));
    assert.equal(kernels, 1);
    assert.equal(lazyStats.routines - r0, 1, "one routine: the matmul with its epilogue");
    const [sums] = await count(be, () => ops.sum(ops.sum(ops.square(a), [1]), [0]));
    assert.equal(sums, 1);
    const want = Array.from(await a.data()).reduce((s, v) => s + v * v, 0);
    const got = ops.sum(ops.sum(ops.square(a), [1]), [0]);
    assert.ok(Math.abs((await got.data())[0] - want) < 1e-4);
    got.dispose();
    for (const v of [a, w, bias]) v.dispose();
  });
  Deno.test(`kernel: an element-wise op on a reshape of a pending product fuses into its epilogue (${label})`, async () => {
    // g = a w [3, 4] seen as [3, 2, 2]; g * m (m [3, 2, 2]) is the product's epilogue, in the
    // product's shape. With a mask broadcast over the split axis ([3, 2, 1]) the loads do not
    // take [3, 4]: a product and a map.
    const a = tensor(new Float32Array(6).map((_, i) => i / 3 - 0.5), [3, 2], { backend: be });
    const w = tensor(new Float32Array(8).map((_, i) => 1 - i / 4), [2, 4], { backend: be });
    const m = tensor(new Float32Array(12).map((_, i) => (i % 3) - 1), [3, 2, 2], { backend: be });
    const col = tensor([[[2], [-1]], [[0.5], [3]], [[1], [0]]], undefined, { backend: be });
    for (const v of [a, w, m, col]) await v.data();
    const av = Array.from(await a.data());
    const wv = Array.from(await w.data());
    const g = (i: number, j: number) => av[2 * i] * wv[j] + av[2 * i + 1] * wv[4 + j];
    for (const [mask, kernels] of [[m, 1], [col, 2]] as const) {
      const r0 = lazyStats.routines;
      const k0 = lazyStats.kernels;
      const y = scope(() => ops.mul(ops.reshape(ops.matmul(a, w), [3, 2, 2]), mask));
      const got = Array.from(await y.data());
      const mv = Array.from(await mask.data());
      const want = got.map((_, e) => {
        const [i, j] = [Math.floor(e / 4), e % 4];
        return g(i, j) * (mask === m ? mv[e] : mv[2 * i + (j >> 1)]);
      });
      got.forEach((v, e) => assert.ok(Math.abs(v - want[e]) < 1e-5, `${e}: ${v} vs ${want[e]}`));
      assert.equal(lazyStats.routines - r0 + lazyStats.kernels - k0, kernels, `mask ${mask.shape}`);
      y.dispose();
    }
    for (const v of [a, w, m, col]) v.dispose();
  });

  Deno.test(`kernel: a chain of consumers fused into a reduction reads its buffer once it is computed (${label})`, async () => {
    // s = sum(x, 1); a = exp(s) fuses s; b = neg(a) fuses a; c = b y fuses b. Computing a must
    // rebuild b over a's buffer, and c over that b: c must not compute the sum again.
    const x = tensor(new Float32Array(12).map((_, i) => Math.sin(i)), [4, 3], { backend: be });
    const y = tensor([1, -2, 0.5, 3], undefined, { backend: be });
    for (const v of [x, y]) await v.data();
    const re0 = lazyStats.recomputed;
    const k0 = lazyStats.kernels;
    const [a, c] = scope(() => {
      const a = ops.exp(ops.sum(x, [1]));
      return [a, ops.mul(ops.neg(a), y)];
    });
    const av = Array.from(await a.data());
    const cv = Array.from(await c.data());
    assert.equal(lazyStats.recomputed, re0, "nothing computed twice");
    assert.equal(lazyStats.kernels - k0, 2, "the sum with exp, then the map of c");
    const yv = [1, -2, 0.5, 3];
    cv.forEach((v, i) => assert.ok(Math.abs(v + av[i] * yv[i]) < 1e-5, `c[${i}] = ${v}`));
    // Three levels, the sum itself computed first: exp(s) is rebuilt over its buffer, then
    // -exp(s), then d = -exp(s) y, which must not compute the sum again either.
    const k1 = lazyStats.kernels;
    const [s2, d] = scope(() => {
      const s2 = ops.sum(x, [1]);
      return [s2, ops.mul(ops.neg(ops.exp(s2)), y)];
    });
    const sv = Array.from(await s2.data());
    const dv = Array.from(await d.data());
    assert.equal(lazyStats.recomputed, re0, "nothing computed twice down three levels");
    assert.equal(lazyStats.kernels - k1, 2, "the sum, then the map of d");
    dv.forEach((v, i) => assert.ok(Math.abs(v + Math.exp(sv[i]) * yv[i]) < 1e-4, `d[${i}] = ${v}`));
    for (const v of [x, y, a, c, s2, d]) v.dispose();
  });
}

Deno.test("kernel: the seed's conv nets compute nothing twice in loss + gradient, G v and H v", async () => {
  for (const be of [cpu, ...(nat ? [nat] : []), ...(gpu ? [gpu] : [])]) {
    for (
      const [spec, shape] of [[ARCHITECTURE_1, [1, 28, 28]], [ARCHITECTURE_4, [3, 32, 32]]] as const
    ) {
      const net = convNet(spec, shape, 10);
      const rng = new Random(3);
      const n = 2;
      const size = shape.reduce((a: number, b: number) => a * b, 1);
      const x = tensor(Float64Array.from({ length: n * size }, () => rng.normal()), [n, ...shape], {
        backend: be,
      });
      const y = oneHot([1, 7], 10, { backend: be });
      const loss = softmaxCrossEntropy(y);
      const params = net.init({ seed: 1, backend: be });
      const v = params.map((p) => ops.mul(p, 0.5));
      const model = (...q: Tensor[]) => net.forward(q, x);
      const re0 = lazyStats.recomputed;
      const products = {
        "loss + gradient": () =>
          valueAndGrad((...q: Tensor[]) => loss.value(model(...q)))(...params)[1],
        "G v": () => ggnvp(model, loss, params, v),
        "H v": () => hvp((...q: Tensor[]) => loss.value(model(...q)), params, v),
      };
      for (const [what, product] of Object.entries(products)) {
        for (const t of scope(product)) {
          await t.data();
          t.dispose();
        }
        assert.equal(
          lazyStats.recomputed,
          re0,
          `${be.name} ${shape}: ${what} computed something twice`,
        );
      }
      for (const t of [x, y, ...params, ...v]) t.dispose();
    }
  }
});

Deno.test("kernel: W1 loss + gradient computes nothing twice, in at most 20 dispatches on WebGPU", async () => {
  for (const be of [cpu, ...(nat ? [nat] : []), ...(gpu ? [gpu] : [])]) {
    const p = w1(be);
    const params = p.net.init({ seed: 1, backend: be });
    const objective = (...q: Tensor[]) => p.loss.value(p.model(...q));
    const re0 = lazyStats.recomputed;
    const [, dispatches] = await count(
      be,
      () => scope(() => valueAndGrad(objective)(...params)[1]),
    );
    assert.equal(lazyStats.recomputed, re0, `${be.name}: nothing recomputed`);
    if (be.name === "webgpu") assert.ok(dispatches <= 20, `${dispatches} dispatches`);
    for (const t of [p.x, p.y, ...params]) t.dispose();
  }
});

Deno.test("kernel: long reductions with few outputs (split in two passes on WebGPU) agree with the interpreter", async () => {
  const rng = new Random(17);
  // A conv layer's bias gradient: [n, f, h, w] summed over n, h, w; and a max over the same.
  const shape = [64, 3, 24, 24];
  const x = Float32Array.from(rng.array(shape.reduce((a, b) => a * b, 1), (r) => r.range(-2, 2)));
  for (const op of ["sum", "max"] as const) {
    const kernel: ir.Kernel = {
      shape: [3],
      inputs: 1,
      body: ir.load(0, [576, 1728, 24, 1]),
      reduce: { op, shape: [64, 24, 24] },
      epilogue: ir.binary("mul", ir.ACC, ir.constant(0.5)),
    };
    assert.ok(ir.splitReduction(kernel, 8), "the kernel splits");
    const want = new Float32Array(3);
    interpret(kernel, [x], want);
    for (const [label, be] of targets.filter((t) => t[2] === "float32")) {
      const buf = be.upload(x);
      const out = be.run(kernel, [buf], "float32");
      const got = await be.read(out);
      be.release(out);
      be.release(buf);
      close(got, want, op === "sum" ? 100 : 1, `${label} ${op}`);
    }
  }
});
