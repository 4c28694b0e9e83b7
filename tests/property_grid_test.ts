/**
 * How work is laid over the grid, on every backend: split reductions (kernel/ir.ts
 * splitReduction, used on hardware GPUs only) checked against the float64 reference
 * (tests/kernel_reference.ts), and sizes past one WebGPU dispatch dimension (65,535 workgroups)
 * with awkward tails, checked element by element.
 */

import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import * as ir from "../kernel/ir.ts";
import { fc, property } from "./property.ts";
import { ops, tensor } from "../mod.ts";
import { vjp } from "../autodiff/transforms.ts";
import {
  check,
  digits,
  leafData,
  ND,
  sizeOf,
  stridesOf,
  TARGETS,
  unravel,
} from "./kernel_reference.ts";

const splitArb = fc.record({
  out: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 2 }),
  red: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 2 }),
  op: fc.constantFrom("sum" as const, "max" as const),
  perm: fc.nat(23),
  offset: fc.nat(3),
  parts: fc.integer({ min: 2, max: 9 }),
  epilogue: fc.boolean(),
  seed: fc.nat(1000),
});

property("split reductions agree with the reference on every backend", splitArb, 30, async (p) => {
  // The loop is [...out, ...red]; the input is read through a permutation of its axes.
  const loop = [...p.out, ...p.red];
  const pick = digits(p.perm);
  const free = loop.map((_, i) => i);
  const order: number[] = [];
  while (free.length) order.push(free.splice(pick(free.length), 1)[0]);
  const stored = order.map((i) => loop[i]);
  const st = stridesOf(stored);
  const strides = loop.map((_, i) => st[order.indexOf(i)]);
  const data = leafData(sizeOf(loop) + p.offset, p.seed);
  const kernel: ir.Kernel = {
    shape: p.out,
    inputs: 1,
    body: ir.load(0, strides, p.offset),
    reduce: { op: p.op, shape: p.red },
    ...(p.epilogue ? { epilogue: ir.binary("mul", ir.ACC, ir.constant(-0.5)) } : {}),
  };
  const split = ir.splitReduction(kernel, p.parts);
  const nOut = sizeOf(p.out), nRed = sizeOf(p.red);
  const want = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let acc = p.op === "sum" ? 0 : -Infinity;
    for (let r = 0; r < nRed; r++) {
      const idx = [...unravel(o, p.out), ...unravel(r, p.red)];
      const v = data[p.offset + idx.reduce((a, x, d) => a + x * strides[d], 0)];
      acc = p.op === "sum" ? acc + v : Math.max(acc, v);
    }
    want[o] = p.epilogue ? -0.5 * acc : acc;
  }
  // Sums of at most 144 quarters are exact in float32.
  const ref = new ND(p.out, want);
  for (const t of TARGETS) {
    const arr = t.dtype === "float64" ? Float64Array.from(data) : Float32Array.from(data);
    const inp = t.be.upload(arr);
    const read = async (b: ReturnType<Backend["run"]>) => {
      const v = await t.be.read(b);
      t.be.release(b);
      return v;
    };
    try {
      check(await read(t.be.run(kernel, [inp], t.dtype)), ref, t, "the kernel");
      if (split) {
        const partial = t.be.run(split[0], [inp], t.dtype);
        const out = t.be.run(split[1], [inp, partial], t.dtype);
        t.be.release(partial);
        check(await read(out), ref, t, `the kernel split in ${split[0].shape.at(-1)} parts`);
      }
    } finally {
      t.be.release(inp);
    }
  }
});

// --- 4. past one dispatch dimension (65,535 workgroups) ---------------------------------------

/** Large cases: WebGPU (where the grid matters) and the native compiled loops. */
const LARGE = TARGETS.filter((t) =>
  t.label === "webgpu" || t.label === "native float32" || t.label === "native-js float32"
);

Deno.test({
  name: "kernel: maps, reductions and pooling past 65,535 workgroups, checked element by element",
  // Without WebGPU and the native backend (CI requires both) there is nothing to check.
  ignore: LARGE.length === 0,
  fn: async () => {
    // 65,537 workgroups of 64: a 2-D grid whose rows do not divide the count evenly.
    const N = 65536 * 64 + 37;
    const O = 65537, R = 67;
    const big = new Float32Array(O * R + 5);
    for (let i = 0; i < big.length; i++) big[i] = (i % 1013) - 506;
    for (const t of LARGE) {
      const opts = { backend: t.be, dtype: t.dtype };
      const x = tensor(big, [big.length], opts);
      try {
        // An element-wise map over a window at an offset.
        const y = ops.add(ops.mul(ops.slice(x, [3], [N]), 3), 1);
        const yd = await y.data();
        y.dispose();
        assert.equal(yd.length, N);
        for (let i = 0; i < N; i++) {
          if (yd[i] !== 3 * big[i + 3] + 1) {
            throw new Error(
              `${t.label} map: element ${i} is ${yd[i]}, expected ${3 * big[i + 3] + 1}`,
            );
          }
        }
        // 65,537 outputs of 67 terms (a workgroup per output): sums along rows, maxima along
        // columns of the transposed view.
        const flat = ops.slice(x, [0], [O * R]);
        const s = ops.sum(ops.reshape(flat, [O, R]), [1]);
        const m = ops.max(ops.transpose(ops.reshape(flat, [R, O])), [1]);
        const [sd, md] = [await s.data(), await m.data()];
        for (const v of [flat, s, m]) v.dispose();
        for (let o = 0; o < O; o++) {
          let sum = 0, max = -Infinity;
          for (let r = 0; r < R; r++) {
            sum += big[o * R + r];
            max = Math.max(max, big[r * O + o]);
          }
          if (sd[o] !== sum) throw new Error(`${t.label} row sum ${o}: ${sd[o]}, expected ${sum}`);
          if (md[o] !== max) {
            throw new Error(`${t.label} column max ${o}: ${md[o]}, expected ${max}`);
          }
        }
        // Pooling (1 x 1 windows, stride 1) over N pixels, forward and backward.
        const img = ops.reshape(ops.slice(x, [0], [N]), [1, 1, 1, N]);
        const dy = tensor(
          Float32Array.from({ length: N }, (_, i) => (i % 7) - 3),
          [1, 1, 1, N],
          opts,
        );
        const [[p], pullback] = vjp((a) => [ops.maxPool2d(a, 1, 1)], [img]);
        const [dx] = pullback(dy);
        const [pd, dxd] = [await p.data(), await dx.data()];
        for (const v of [img, dy, p, dx]) v.dispose();
        pullback.dispose?.();
        for (let i = 0; i < N; i++) {
          if (pd[i] !== big[i]) throw new Error(`${t.label} pool: element ${i} is ${pd[i]}`);
          if (dxd[i] !== (i % 7) - 3) throw new Error(`${t.label} pool backward: element ${i}`);
        }
      } finally {
        x.dispose();
      }
    }
  },
});
