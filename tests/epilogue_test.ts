/**
 * Matrix products with epilogues and operand windows, on every backend against the CPU oracle:
 * random epilogue expressions (constants, broadcast loads, unary and binary ops) over aligned
 * and unaligned shapes, every transpose, and operands read at offsets inside larger buffers.
 */
import assert from "node:assert/strict";
import type { Backend, MatmulSpec } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import * as ir from "../kernel/ir.ts";
import { backendTargets, cpu, native, Random, skipped, webgpu } from "./harness.ts";
import { fc, property } from "./property.ts";
import * as ops from "../autodiff/ops.ts";
import { scope, tensor } from "../autodiff/tensor.ts";
import * as mm from "../wgsl/matmul.ts";
import { splitK } from "../wgsl/matmul.ts";
import { WebGpuBackend } from "../wgsl/webgpu.ts";
import type { GpuBuffer } from "../wgsl/runtime.ts";

const gpu = await webgpu();
const nat = await native();
const targets: [string, Backend, DType][] = [
  ...(nat ? [["native", nat, "float32"] as [string, Backend, DType]] : []),
  ...(gpu ? [["webgpu", gpu as Backend, "float32"] as [string, Backend, DType]] : []),
];

/** A random epilogue over an [m, n] output reading `inputs` buffers ([n] rows or [m, n]). */
function epilogue(rng: Random, m: number, n: number): { body: ir.Expr; shapes: number[][] } {
  const shapes: number[][] = [];
  const leaf = (): ir.Expr => {
    const r = rng.uniform();
    if (r < 0.35) return ir.ACC;
    if (r < 0.6) return ir.constant(rng.range(-2, 2));
    const row = rng.uniform() < 0.5;
    shapes.push(row ? [n] : [m, n]);
    return ir.load(shapes.length - 1, row ? [0, 1] : [n, 1]);
  };
  const expr = (depth: number): ir.Expr => {
    if (depth === 0) return leaf();
    const r = rng.uniform();
    if (r < 0.3) {
      return ir.unary(
        (["sigmoid", "tanh", "relu", "neg", "square"] as const)[rng.int(5)],
        expr(depth - 1),
      );
    }
    return ir.binary(
      (["add", "sub", "mul", "max"] as const)[rng.int(4)],
      expr(depth - 1),
      expr(depth - 1),
    );
  };
  return { body: ir.binary("add", ir.ACC, expr(3)), shapes };
}

Deno.test("matmul epilogues and windows: random cases agree with the oracle on every backend", async () => {
  const rng = new Random(11);
  let checked = 0;
  for (let trial = 0; trial < 40; trial++) {
    const [m, k, n] = [1 + rng.int(40), 1 + rng.int(40), 1 + rng.int(40)];
    const transA = rng.uniform() < 0.5;
    const transB = rng.uniform() < 0.5;
    const offsetA = rng.uniform() < 0.5 ? rng.int(9) : 0;
    const offsetB = rng.uniform() < 0.5 ? rng.int(9) : 0;
    const spec: MatmulSpec = { m, k, n, transA, transB, offsetA, offsetB };
    const a = rng.array(offsetA + m * k + rng.int(5));
    const b = rng.array(offsetB + k * n + rng.int(5));
    const { body, shapes } = epilogue(rng, m, n);
    const extra = shapes.map((s) => rng.array(s.reduce((x, y) => x * y, 1)));
    const run = async (be: Backend) => {
      const bufs = [a, b, ...extra].map((d) => be.upload(Float32Array.from(d)));
      const out = be.matmul(bufs[0], bufs[1], spec, { body, inputs: bufs.slice(2) });
      const got = await be.read(out);
      be.release(out);
      bufs.forEach((x) => be.release(x));
      return got;
    };
    const want = await run(cpu);
    for (const [label, be] of targets) {
      const got = await run(be);
      for (let i = 0; i < want.length; i++) {
        const tol = 1e-4 * (Math.abs(want[i]) + k);
        if (!(Math.abs(got[i] - want[i]) <= tol)) {
          throw new Error(
            `${label} trial ${trial} ${JSON.stringify(spec)}: element ${i} is ${got[i]}, ` +
              `the oracle gives ${want[i]}`,
          );
        }
      }
      checked++;
    }
  }
  assert.equal(checked, 40 * targets.length);
});

Deno.test("conv2d epilogues (bias per channel, activations, constants) agree with the oracle", async () => {
  const rng = new Random(12);
  let checked = 0;
  for (let trial = 0; trial < 12; trial++) {
    const s = {
      n: 1 + rng.int(3),
      c: 1 + rng.int(4),
      h: 5 + rng.int(8),
      w: 5 + rng.int(8),
      f: 1 + rng.int(9),
      kh: 1 + rng.int(3),
      kw: 1 + rng.int(3),
      strideH: 1 + rng.int(2),
      strideW: 1 + rng.int(2),
      padH: rng.int(2),
      padW: rng.int(2),
    };
    const ho = Math.floor((s.h + 2 * s.padH - s.kh) / s.strideH) + 1;
    const wo = Math.floor((s.w + 2 * s.padW - s.kw) / s.strideW) + 1;
    const x = rng.array(s.n * s.c * s.h * s.w);
    const w = rng.array(s.f * s.c * s.kh * s.kw);
    const bias = rng.array(s.f);
    const other = rng.array(s.n * s.f * ho * wo);
    const act = (["relu", "sigmoid", "tanh"] as const)[rng.int(3)];
    const body = ir.binary(
      "mul",
      ir.unary(act, ir.binary("add", ir.ACC, ir.load(0, [0, 1, 0, 0]))),
      ir.binary("add", ir.constant(rng.range(0.5, 2)), ir.load(1, [s.f * ho * wo, ho * wo, wo, 1])),
    );
    const run = async (be: Backend) => {
      const bufs = [x, w, bias, other].map((d) => be.upload(Float32Array.from(d)));
      const out = be.conv2d(bufs[0], bufs[1], s, { body, inputs: bufs.slice(2) });
      const got = await be.read(out);
      be.release(out);
      bufs.forEach((b) => be.release(b));
      return got;
    };
    const want = await run(cpu);
    for (const [label, be] of targets) {
      const got = await run(be);
      for (let i = 0; i < want.length; i++) {
        const tol = 1e-4 * (Math.abs(want[i]) + s.c * s.kh * s.kw);
        if (!(Math.abs(got[i] - want[i]) <= tol)) {
          throw new Error(
            `${label} ${JSON.stringify(s)}: element ${i} is ${got[i]}, the oracle gives ${want[i]}`,
          );
        }
      }
      checked++;
    }
  }
  assert.equal(checked, 12 * targets.length);
});

Deno.test("thin products split along K (W1's shapes) agree with the oracle, with an epilogue", async () => {
  if (!gpu) return skipped("thin products on WebGPU", "no WebGPU adapter");
  const rng = new Random(13);
  const cases: MatmulSpec[] = [
    { m: 1000, k: 784, n: 20 },
    { m: 784, k: 1000, n: 20, transA: true },
    { m: 20, k: 1000, n: 20, transA: true, offsetA: 8, offsetB: 4 },
  ];
  for (const spec of cases) {
    const split = splitK(spec.m, spec.k, spec.n);
    assert.ok(split > 1, `${JSON.stringify(spec)} is split`);
    const a = rng.array((spec.offsetA ?? 0) + spec.m * spec.k);
    const b = rng.array((spec.offsetB ?? 0) + spec.k * spec.n);
    const bias = rng.array(spec.n);
    const body = ir.unary("sigmoid", ir.binary("add", ir.ACC, ir.load(0, [0, 1])));
    const run = async (be: Backend) => {
      const bufs = [a, b, bias].map((d) => be.upload(Float32Array.from(d)));
      const epi = { body, inputs: [bufs[2]] };
      const out = be instanceof WebGpuBackend
        ? mm.matmul(be.rt, bufs[0] as GpuBuffer, bufs[1] as GpuBuffer, spec, undefined, {
          body,
          inputs: [bufs[2] as GpuBuffer],
        }, split)
        : be.matmul(bufs[0], bufs[1], spec, epi);
      const got = await be.read(out);
      be.release(out);
      bufs.forEach((x) => be.release(x));
      return got;
    };
    const want = await run(cpu);
    const got = await run(gpu);
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(got[i] - want[i]) <= 1e-4, `${JSON.stringify(spec)}: element ${i}`);
    }
  }
});

const everyTarget = await backendTargets();

/**
 * A batch of one kept as [1, m, n] (3-D operands with a leading 1) cannot host an element-wise
 * consumer: the backends apply a product's epilogue over [m, n], and the consumer's loads index
 * [1, m, n] (before kernel/graph.ts `hosts` checked the rank, `x - a @ b` read out of range: NaN
 * on the CPU backends). Generated shapes, operand ranks and broadcasts, on every backend.
 */
property(
  "element-wise ops on a product of a batch of one (3-D operands, leading 1) equal host loops",
  fc.record({
    m: fc.integer({ min: 1, max: 4 }),
    k: fc.integer({ min: 1, max: 4 }),
    n: fc.integer({ min: 1, max: 5 }),
    // The other operand: [1, m, n], [m, n], [n], [1, 1, n] or a scalar shape [1].
    other: fc.constantFrom([1, -1, -2], [-1, -2], [-2], [1, 1, -2], [1]),
    aRank3: fc.boolean(),
    op: fc.constantFrom("sub" as const, "mul" as const, "add" as const),
    seed: fc.nat(1000),
  }),
  20,
  async ({ m, k, n, other, aRank3, op, seed }) => {
    const rng = new Random(seed);
    const oShape = other.map((d) => (d === -1 ? m : d === -2 ? n : d));
    const ad = rng.array(m * k, (r) => r.normal());
    const bd = rng.array(k * n, (r) => r.normal());
    const od = rng.array(oShape.reduce((p, d) => p * d, 1), (r) => r.normal());
    // The reference: (a @ b)[i, j] op o broadcast to [m, n].
    const want: number[] = [];
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let t = 0; t < k; t++) s += ad[i * k + t] * bd[t * n + j];
        const oi = oShape.length >= 2 && oShape.at(-2) === m && m > 1 ? i * n : 0;
        const o = od[oi + (oShape.at(-1) === n ? j : 0)];
        want.push(op === "sub" ? o - s : op === "mul" ? o * s : o + s);
      }
    }
    for (const { label, be, dtype } of everyTarget) {
      const opts = { backend: be, dtype };
      const a = tensor(ad, aRank3 ? [1, m, k] : [m, k], opts);
      const b = tensor(bd, [1, k, n], opts);
      const o = tensor(od, oShape, opts);
      const y = scope(() => ops[op](o, ops.matmul(a, b)));
      const got = await y.data();
      const what = `${label} ${JSON.stringify({ m, k, n, oShape, aRank3, op })}`;
      assert.equal(got.length, m * n, what);
      got.forEach((v, i) => {
        if (!(Math.abs(v - want[i]) <= 1e-4 * (1 + Math.abs(want[i])))) {
          assert.fail(`${what}: [${i}] ${v}, expected ${want[i]}`);
        }
      });
      for (const t of [a, b, o, y]) t.dispose();
    }
  },
);
