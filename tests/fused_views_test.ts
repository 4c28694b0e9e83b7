/**
 * A reduction kept with its reduced axes (a reshape of the reduction's own result, no copy) whose
 * element-wise consumer fused it through that reshape (kernel/graph.ts fuseThroughReshape), while
 * something else also reads the reshape: a concat, another reduction, a transpose, the caller.
 * The reduction is then needed on its own, so it must be computed once, first, and the consumer
 * rebuilt over its buffer (kernel/lazy.ts settle and #heldElsewhere): generated programs on every
 * backend and dtype, checked against float64 loops, counting recomputations
 * (`lazyStats.recomputed`). Found by the lazy-program fuzzer (seed 1721999896): the host's
 * holders were counted one per fused consumer, which missed the reader of the view.
 */

import assert from "node:assert/strict";
import { lazyStats } from "../kernel/lazy.ts";
import { backendTargets } from "./harness.ts";
import { fc, property } from "./property.ts";
import { ops, scope, type Tensor, tensor } from "../mod.ts";

const targets = await backendTargets();

/** The consumers: element-wise ops of the kept reduction, in float64. */
const CONSUMERS = {
  half: { f: (t: Tensor) => ops.mul(t, 0.5), ref: (v: number) => v * 0.5 },
  exp: { f: (t: Tensor) => ops.exp(t), ref: Math.exp },
  neg: { f: (t: Tensor) => ops.neg(t), ref: (v: number) => -v },
  square: { f: (t: Tensor) => ops.square(t), ref: (v: number) => v * v },
} as const;

/** What else reads the kept reduction `k` beside its consumer `c`; each result in float64. */
const READERS = ["concat", "concatFirst", "sum", "transpose", "both"] as const;

const caseArb = fc.record({
  shape: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 3 }),
  axesMask: fc.integer({ min: 1, max: 7 }),
  op: fc.constantFrom("sum" as const, "max" as const),
  consumer: fc.constantFrom(...(Object.keys(CONSUMERS) as (keyof typeof CONSUMERS)[])),
  reader: fc.constantFrom(...READERS),
  seed: fc.integer({ min: 0, max: 1000 }),
});

/** Row-major values of `shape` reduced over `axes` (kept as ones) in float64. */
function refReduce(x: number[], shape: number[], axes: number[], op: "sum" | "max"): number[] {
  const out = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const size = out.reduce((a, b) => a * b, 1);
  const acc = new Array<number>(size).fill(op === "sum" ? 0 : -Infinity);
  for (let e = 0; e < x.length; e++) {
    let rest = e;
    let o = 0;
    let stride = 1;
    const idx: number[] = [];
    for (let i = shape.length - 1; i >= 0; i--) {
      idx[i] = rest % shape[i];
      rest = Math.floor(rest / shape[i]);
    }
    for (let i = shape.length - 1; i >= 0; i--) {
      o += (axes.includes(i) ? 0 : idx[i]) * stride;
      stride *= out[i];
    }
    acc[o] = op === "sum" ? acc[o] + x[e] : Math.max(acc[o], x[e]);
  }
  return acc;
}

property(
  "a reduction fused through its kept axes and read elsewhere is computed once",
  caseArb,
  40,
  async ({ shape, axesMask, op, consumer, reader, seed }) => {
    const axes = shape.map((_, i) => i).filter((i) => axesMask & (1 << i));
    if (!axes.length) axes.push(0);
    const size = shape.reduce((a, b) => a * b, 1);
    const x = Array.from({ length: size }, (_, i) => Math.sin(seed + 1.3 * i));
    const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const k = refReduce(x, shape, axes, op);
    const c = k.map(CONSUMERS[consumer].ref);
    // The expected values of what the program returns, by reader.
    const want: number[][] = {
      concat: [[...c, ...k]],
      concatFirst: [[...k, ...c]],
      sum: [c, [k.reduce((a, b) => a + b, 0)]],
      transpose: [c, k],
      both: [c, k],
    }[reader];
    for (const t of targets) {
      const xt = tensor(x, shape, { backend: t.be, dtype: t.dtype });
      await xt.data();
      const re0 = lazyStats.recomputed;
      const outs = scope(() => {
        const kt = ops[op](xt, axes, true);
        const ct = CONSUMERS[consumer].f(kt);
        switch (reader) {
          case "concat":
            return [ops.concat([ct, kt], 0)];
          case "concatFirst":
            return [ops.concat([kt, ct], 0)];
          case "sum":
            return [ct, ops.sum(kt)];
          case "transpose": {
            // Reversed axes read back in the original order: a view of the view.
            const perm = kept.map((_, i) => kept.length - 1 - i);
            return [ct, ops.transpose(ops.transpose(kt, perm), perm)];
          }
          case "both":
            return [ct, kt];
        }
      });
      try {
        for (const [i, o] of outs.entries()) {
          const got = await o.data();
          assert.equal(got.length, want[i].length, `${t.label} ${reader}: output ${i} length`);
          const tol = t.dtype === "float64" ? 1e-12 : 1e-5;
          got.forEach((v, j) => {
            const w = want[i][j];
            assert.ok(
              Math.abs(v - w) <= tol * Math.max(1, Math.abs(w)),
              `${t.label} ${reader}: output ${i} element ${j} is ${v}, expected ${w}`,
            );
          });
        }
        assert.equal(
          lazyStats.recomputed,
          re0,
          `${t.label}: ${op} over [${axes}] of [${shape}], ${consumer} of it and a ${reader} ` +
            `reading it: the reduction was computed twice`,
        );
      } finally {
        for (const o of outs) o.dispose();
        xt.dispose();
      }
    }
  },
);
