/**
 * Kernels of several outputs (kernel/ir.ts `Kernel.more`, kernel/multi.ts): generated kernels on
 * every backend against the reference interpreter running each output as a kernel of its own
 * (`singleOutputs`), their two-pass split, and `realizeTogether` on generated lazy arrays against
 * computing each array alone. Data and constants are multiples of 1/2 in [-2, 2] and expressions
 * have at most four leaves, so every value and every sum here is exact in float32: every backend
 * must give the reference's numbers exactly.
 */
import assert from "node:assert/strict";
import { fc, property } from "./property.ts";
import { backendTargets, cpu } from "./harness.ts";
import type { Backend } from "../kernel/backend.ts";
import * as ir from "../kernel/ir.ts";
import { interpret } from "../kernel/interpret.ts";
import * as k from "../kernel/lazy.ts";
import * as g from "../kernel/graph.ts";
import { realizeTogether } from "../kernel/multi.ts";

const TARGETS = await backendTargets();

/** Deterministic choices from a seed: each call picks one of n. */
function chooser(seed: number): (n: number) => number {
  let s = (seed * 2654435761 + 977) >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) % n;
  };
}

/** A multiple of 1/2 in [-2, 2]. */
const half = (pick: (n: number) => number) => (pick(9) - 4) / 2;

/** Row-major strides. */
const strides = (shape: readonly number[]) => ir.contiguous(shape);
const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * A generated kernel over `inputs` buffers, each storing the loop [...out, ...red] in an axis
 * order of its own (or broadcasting an axis), at an offset; `outputs` outputs, each a small
 * expression (and, in a reduction, a sum, max or argmax with or without an epilogue).
 */
function makeKernel(
  out: number[],
  red: number[] | undefined,
  inputs: number,
  outputs: number,
  seed: number,
): { kernel: ir.Kernel; data: Float64Array[] } {
  const pick = chooser(seed);
  const loop = [...out, ...(red ?? [])];
  const views = Array.from({ length: inputs }, () => {
    const order = loop.map((_, i) => i).sort(() => pick(3) - 1);
    const st = strides(order.map((i) => loop[i]));
    const s = loop.map((_, i) => (pick(5) === 0 ? 0 : st[order.indexOf(i)]));
    return { strides: s, offset: pick(3) };
  });
  const data = views.map((v) =>
    Float64Array.from({ length: size(loop) + v.offset }, () => half(pick))
  );
  const leaf = (rank: number): ir.Expr => {
    if (pick(4) === 0) return ir.constant(half(pick));
    const j = pick(inputs);
    return ir.load(j, views[j].strides.slice(0, rank), views[j].offset);
  };
  // At most four leaves: products of at most four halves, exact and small.
  const expr = (rank: number, depth: number): ir.Expr => {
    if (depth === 0 || pick(3) === 0) return leaf(rank);
    const c = pick(4);
    if (c === 0) return ir.unary(pick(2) ? "neg" : "abs", expr(rank, depth - 1));
    if (c === 1) {
      return ir.where(ir.binary("gt", leaf(rank), leaf(rank)), leaf(rank), leaf(rank));
    }
    const op = (["add", "sub", "mul", "max", "min"] as const)[pick(5)];
    return ir.binary(op, expr(rank, depth - 1), expr(rank, depth - 1));
  };
  const one = (): ir.KernelOutput => {
    const body = expr(loop.length, 2);
    if (!red) return { body };
    const op = (["sum", "max", "argmax"] as const)[pick(3)];
    if (pick(2)) return { body, op };
    const epilogue = ir.binary(pick(2) ? "add" : "mul", ir.ACC, leaf(out.length));
    return { body, op, epilogue };
  };
  const [head, ...more] = Array.from({ length: outputs }, one);
  const kernel: ir.Kernel = {
    shape: out,
    inputs,
    body: head.body,
    ...(red ? { reduce: { op: head.op!, shape: red } } : {}),
    ...(head.epilogue ? { epilogue: head.epilogue } : {}),
    ...(more.length ? { more } : {}),
  };
  return { kernel, data };
}

/** The reference: each output as a kernel of its own, through the interpreter in float64. */
function reference(kernel: ir.Kernel, data: Float64Array[]): Float64Array {
  const n = size(kernel.shape);
  const out = new Float64Array(ir.outputSize(kernel));
  ir.singleOutputs(kernel).forEach((single, j) => {
    interpret(single, data, out.subarray(j * n, (j + 1) * n));
  });
  return out.map((x) => x === 0 ? 0 : x);
}

/** Runs kernels on a target: uploads the data, runs `go`, reads its buffer back. */
async function onTarget(
  t: (typeof TARGETS)[number],
  data: Float64Array[],
  go: (inputs: ReturnType<Backend["upload"]>[]) => ReturnType<Backend["run"]>,
): Promise<number[]> {
  const inputs = data.map((d) =>
    t.be.upload(t.dtype === "float64" ? Float64Array.from(d) : Float32Array.from(d))
  );
  try {
    const out = go(inputs);
    const v = await t.be.read(out);
    t.be.release(out);
    // WGSL does not keep the sign of a zero product: -0 and 0 count as equal here.
    return Array.from(v, (x) => x === 0 ? 0 : x);
  } finally {
    for (const b of inputs) t.be.release(b);
  }
}

const kernelArb = fc.record({
  out: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 2 }),
  red: fc.option(fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 2 }), {
    nil: undefined,
  }),
  inputs: fc.integer({ min: 1, max: 3 }),
  outputs: fc.integer({ min: 1, max: ir.MAX_OUTPUTS }),
  seed: fc.nat(100000),
});

property(
  "kernels of several outputs equal their outputs run one by one, on every backend",
  kernelArb,
  60,
  async (c) => {
    const { kernel, data } = makeKernel(c.out, c.red, c.inputs, c.outputs, c.seed);
    const want = reference(kernel, data);
    for (const t of TARGETS) {
      const got = await onTarget(t, data, (inputs) => t.be.run(kernel, inputs, t.dtype));
      assert.deepEqual(got, Array.from(want), `${t.label}: ${JSON.stringify(kernel)}`);
    }
  },
);

property(
  "a reduction of several outputs split in two passes gives the same numbers",
  kernelArb.filter((c) => c.red !== undefined).chain((c) =>
    fc.record({ c: fc.constant(c), parts: fc.integer({ min: 2, max: 9 }) })
  ),
  40,
  async ({ c, parts }) => {
    const { kernel, data } = makeKernel(c.out, c.red, c.inputs, c.outputs, c.seed);
    const split = ir.splitReduction(kernel, parts);
    const hasArgmax = ir.outputsOf(kernel).some((o) => o.op === "argmax");
    if (!split) {
      // Only argmax, or a first reduced dimension without a divisor up to `parts`, refuses.
      const r0 = ir.collapse(kernel).reduce?.shape[0] ?? 1;
      const divisor = Array.from({ length: parts - 1 }, (_, i) => i + 2).some((d) => r0 % d === 0);
      assert.ok(hasArgmax || !divisor, `a ${parts}-part split of ${JSON.stringify(kernel)}`);
      return;
    }
    const want = reference(kernel, data);
    for (const t of TARGETS) {
      const got = await onTarget(t, data, (inputs) => {
        const partial = t.be.run(split[0], inputs, t.dtype);
        const out = t.be.run(split[1], [...inputs, partial], t.dtype);
        t.be.release(partial);
        return out;
      });
      assert.deepEqual(got, Array.from(want), `${t.label}: split in ${parts}`);
    }
  },
);

// --- realizeTogether ----------------------------------------------------------------------------

/** Generated lazy arrays over shared inputs: reductions over the last axes and maps. */
const togetherArb = fc.record({
  rows: fc.integer({ min: 1, max: 3 }),
  cols: fc.integer({ min: 1, max: 40 }),
  count: fc.integer({ min: 1, max: 10 }),
  seed: fc.nat(100000),
});

property(
  "realizeTogether gives each array's value, in one kernel per group that fits",
  togetherArb,
  25,
  async (c) => {
    const pick = chooser(c.seed);
    const data = [0, 1, 2].map(() =>
      Float64Array.from({ length: c.rows * c.cols }, () => half(pick))
    );
    // Each array: kind 0 a sum, 1 a max of |.|, 2 a dot product (reductions over the columns,
    // some with an epilogue), 3 a map of the reductions' shape [rows].
    const kinds = Array.from({ length: c.count }, () => pick(4));
    const scales = kinds.map(() => half(pick));
    const build = (xs: k.Lazy[], rowsOf: k.Lazy): k.Lazy[] => {
      const temps: k.Lazy[] = [];
      const t = (l: k.Lazy) => (temps.push(l), l);
      const out = kinds.map((kind, i) => {
        const [a, b] = [xs[i % 3], xs[(i + 1) % 3]];
        const scale = t(g.full(a.backend, [], scales[i], a.dtype));
        if (kind === 3) return g.binary("mul", rowsOf, scale);
        const body = kind === 0 ? a : kind === 1 ? t(g.unary("abs", a)) : t(g.binary("mul", a, b));
        const r = g.reduce(kind === 1 ? "max" : "sum", body, [1]);
        if (i % 2 === 0) return r;
        t(r);
        return g.binary("add", r, scale);
      });
      for (const l of temps) l.release();
      return out;
    };
    for (const tg of TARGETS) {
      const be = tg.be;
      const up = (d: Float64Array) =>
        be.upload(tg.dtype === "float64" ? Float64Array.from(d) : Float32Array.from(d));
      const xs = data.map((d) => k.Lazy.of(be, up(d), [c.rows, c.cols]));
      const rowsOf = k.Lazy.of(be, up(data[0].subarray(0, c.rows)), [c.rows]);
      try {
        const alone = build(xs, rowsOf);
        const want = [];
        for (const l of alone) {
          want.push(Array.from(await be.read(l.realize())));
          l.release();
        }
        const arrays = build(xs, rowsOf);
        const before = k.lazyStats.kernels;
        realizeTogether(arrays);
        const kernels = k.lazyStats.kernels - before;
        const values = [];
        for (const l of arrays) {
          values.push(Array.from(await be.read(l.realize())));
          l.release();
        }
        assert.deepEqual(values, want, tg.label);
        // One kernel per MAX_OUTPUTS arrays (the inputs, at most 5 buffers, always fit), or
        // one for a single array.
        assert.equal(kernels, Math.ceil(c.count / ir.MAX_OUTPUTS), `${tg.label}: kernels`);
      } finally {
        for (const l of [...xs, rowsOf]) l.release();
      }
    }
  },
);

Deno.test("realizeTogether: arrays reading each other, computed ones and repeats", async () => {
  const x = k.Lazy.of(cpu, cpu.upload(new Float64Array([1, -3, 4])), [3]);
  const s = g.reduce("sum", x, [0]);
  // s * s becomes s's epilogue: one more output of the same kernel.
  const twice = g.binary("mul", s, s);
  // x * s reads s's buffer: computed after the others, on its own.
  const scaled = g.binary("mul", x, s);
  const m = g.reduce("max", x, [0]);
  const arrays = [s, twice, scaled, x, m, s];
  const before = k.lazyStats.kernels;
  realizeTogether(arrays);
  assert.equal(k.lazyStats.kernels - before, 2, "s, s * s and m together, then x * s");
  const values = [];
  for (const l of arrays) values.push(Array.from(await cpu.read(l.realize())));
  assert.deepEqual(values, [[2], [4], [2, -6, 8], [1, -3, 4], [4], [2]]);
  for (const l of [s, twice, scaled, m, x]) l.release();
  assert.equal(cpu.liveBuffers(), 0, "every buffer freed");
});
