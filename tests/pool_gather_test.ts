/**
 * The max-pool backward as kernels of the IR (kernel/pool.ts poolBackwardKernels, for windows
 * apart, overlapping or leaving a border, with the argmax first or not) and the IR's `index` leaf
 * and masked loads past a buffer it stands on. Checked against computations written here: a plain scatter of dy to
 * each window's first maximum (the first NaN, else the first maximum; dy summed into zeros, so
 * -0 gives +0), and for the leaf, the loop index through its view computed directly. Every
 * lowering (the interpreter, the native backend's loops, WGSL) must give those bit for bit: the
 * generated values are small integers, ±0, infinities and NaN, so no rounding enters.
 */
import assert from "node:assert/strict";
import { pool2dOutSize, type Pool2dSpec } from "../kernel/backend.ts";
import * as ir from "../kernel/ir.ts";
import { interpret } from "../kernel/interpret.ts";
import type { DType, TypedArray } from "../kernel/shape.ts";
import { disjoint, poolBackwardKernels, tiles } from "../kernel/pool.ts";
import { wgslKernel } from "../wgsl/codegen.ts";
import { backendTargets, put, take, webgpu } from "./harness.ts";
import { fc, property } from "./property.ts";

const targets = await backendTargets();

/** The values as strings, so that NaN equals NaN and -0 differs from 0. */
const bits = (xs: ArrayLike<number>) =>
  Array.from(xs, (v) => (Object.is(v, -0) ? "-0" : String(v)));

/**
 * The transpose of max pooling as a scatter: dy of each window added at its argmax, the window's
 * first element that no earlier one beats (NaN beats a number; a number beats a smaller one).
 */
function scatter(x: ArrayLike<number>, dy: ArrayLike<number>, s: Pool2dSpec): number[] {
  const [ho, wo] = pool2dOutSize(s);
  const dx = new Array<number>(s.n * s.c * s.h * s.w).fill(0);
  const beats = (a: number, b: number) => b === b && (a !== a || a > b);
  for (let o = 0; o < dy.length; o++) {
    const [plane, oy, ox] = [Math.floor(o / (ho * wo)), Math.floor(o / wo) % ho, o % wo];
    const window = Array.from(
      { length: s.kh * s.kw },
      (_, t) =>
        (plane * s.h + oy * s.strideH + Math.floor(t / s.kw)) * s.w + ox * s.strideW + (t % s.kw),
    );
    dx[window.reduce((best, i) => (beats(x[i], x[best]) ? i : best))] += dy[o];
  }
  return dx;
}

const int = (min: number, max: number) => fc.integer({ min, max });
const special = [NaN, Infinity, -Infinity, 0, -0, 1, 2, -1, 3];
/** Any spec: windows that tile the plane, leave a border, overlap, or reach the cells' edge. */
const specArb = fc.record({
  ...{ n: int(1, 2), c: int(1, 3), h: int(1, 9), w: int(1, 9), sh: int(1, 4), sw: int(1, 4) },
  ...{ kh: int(1, 4), kw: int(1, 4), seed: fc.nat(1000), once: fc.boolean() },
  xs: fc.array(fc.constantFrom(...special), { minLength: 1, maxLength: 30 }),
  dys: fc.array(fc.constantFrom(...special), { minLength: 1, maxLength: 30 }),
});

/** The corner [n, c, h, w] of planes laid out as `plane`. */
function corner(data: ArrayLike<number>, plane: readonly number[], s: Pool2dSpec): number[] {
  const [, , hp, wp] = plane;
  return Array.from({ length: s.n * s.c * s.h * s.w }, (_, i) => {
    const [p, y, x] = [Math.floor(i / (s.h * s.w)), Math.floor(i / s.w) % s.h, i % s.w];
    return data[(p * hp + y) * wp + x];
  });
}

type SpecCase = typeof specArb extends fc.Arbitrary<infer T> ? T : never;

/** A case's spec (windows clipped to the plane), x, dy, and the scatter's dx as bits. */
function caseOf(p: SpecCase) {
  const s: Pool2dSpec = {
    ...{ n: p.n, c: p.c, h: p.h, w: p.w, kh: Math.min(p.kh, p.h), kw: Math.min(p.kw, p.w) },
    ...{ strideH: p.sh, strideW: p.sw },
  };
  const [ho, wo] = pool2dOutSize(s);
  const x = Array.from(
    { length: s.n * s.c * s.h * s.w },
    (_, i) => p.xs[(i * 7 + p.seed) % p.xs.length],
  );
  const dy = Array.from(
    { length: s.n * s.c * ho * wo },
    (_, i) => p.dys[(i * 3 + p.seed) % p.dys.length],
  );
  return { s, ho, wo, x, dy, want: bits(scatter(x, dy, s)) };
}

/** The kernels through the interpreter, one after the other, then the plane's corner. */
function interpreted(p: SpecCase): { got: string[]; want: string[]; what: string } {
  const { s, ho, wo, x, dy, want } = caseOf(p);
  const { argmax, gather, plane } = poolBackwardKernels(s, ho, wo, p.once);
  assert.equal(!argmax, disjoint(s) && !p.once, "the argmax first where windows overlap or asked");
  const run = (kernel: ir.Kernel, inputs: Float64Array[]) => {
    const out = new Float64Array(kernel.shape.reduce((a, b) => a * b, 1));
    interpret(kernel, inputs, out);
    return out;
  };
  const [xh, dh] = [Float64Array.from(x), Float64Array.from(dy)];
  const cells = run(gather, [argmax ? run(argmax, [xh]) : xh, dh]);
  return { got: bits(corner(cells, plane, s)), want, what: JSON.stringify({ ...s, x, dy }) };
}

/** Windows that overlap more often than not, and x with fewer ties. */
const overlapArb = specArb.chain((p) =>
  fc.record({
    ...{ sh: int(1, Math.max(1, p.kh - 1)), sw: int(1, Math.max(1, p.kw - 1)) },
    xs: fc.array(fc.oneof(fc.constantFrom(...special), int(-50, 50)), {
      minLength: 1,
      maxLength: 40,
    }),
  }).map((q) => ({ ...p, ...q }))
);

property(
  "the max-pool backward kernels of the IR, interpreted, equal a scatter bit for bit (many specs)",
  fc.oneof(specArb, overlapArb),
  400,
  (p) => {
    const { got, want, what } = interpreted(p);
    assert.deepEqual(got, want, what);
  },
);

property(
  "the max-pool backward kernels of the IR equal a scatter bit for bit on every backend and dtype",
  specArb,
  60,
  async (p) => {
    const { s, ho, wo, x, dy, want } = caseOf(p);
    const { argmax, gather, plane } = poolBackwardKernels(s, ho, wo, p.once);
    const viaInterpreter = interpreted(p);
    assert.deepEqual(viaInterpreter.got, want, `interpreter ${viaInterpreter.what}`);
    for (const { label, be, dtype } of targets) {
      const [xb, db] = [put(be, x, dtype), put(be, dy, dtype)];
      const index = argmax && be.run(argmax, [xb], dtype);
      const out = be.run(gather, [index ?? xb, db], dtype);
      if (index) be.release(index);
      const viaRun = bits(corner(await take(be, out), plane, s));
      const viaRoutine = bits(await take(be, be.maxPool2dBackward(xb, db, s)));
      [xb, db].forEach((b) => be.release(b));
      const what = `${label} ${JSON.stringify({ ...s, x, dy })}`;
      assert.deepEqual(viaRun, want, `the kernels on ${what}`);
      assert.deepEqual(viaRoutine, want, `maxPool2dBackward on ${what}`);
    }
  },
);

Deno.test("max-pool backward: the seed's pools tile their maps, a pool that leaves a border does not", () => {
  // architecture_1 and _2 pool 24 x 24 and 8 x 8 maps by 2 x 2; architecture_4 also 13 x 13.
  const spec = (h: number, k: number, stride: number): Pool2dSpec => ({
    ...{ n: 1, c: 1, h, w: h, kh: k, kw: k, strideH: stride, strideW: stride },
  });
  const out = (s: Pool2dSpec) => Math.floor((s.h - s.kh) / s.strideH) + 1;
  for (const s of [spec(24, 2, 2), spec(8, 2, 2), spec(30, 2, 2), spec(9, 2, 3)]) {
    assert.ok(tiles(s, out(s), out(s)), JSON.stringify(s));
  }
  for (const s of [spec(13, 2, 2), spec(8, 3, 2), spec(8, 2, 3)]) {
    assert.ok(!tiles(s, out(s), out(s)), JSON.stringify(s));
  }
});

/** The value of an index leaf at loop index `at`, from its definition. */
const indexAt = (e: ir.Expr & { k: "index" }, at: readonly number[]) =>
  e.strides.reduce((a, s, d) => a + s * at[d], e.offset);

/** A kernel that mixes loads and index leaves: views over `rank` loop dimensions. */
const leafKernelArb = fc.record({
  shape: fc.array(int(1, 4), { minLength: 1, maxLength: 3 }),
  reduce: fc.option(fc.record({ op: fc.constantFrom("sum", "max", "argmax"), n: int(1, 4) }), {
    nil: undefined,
  }),
  // Index strides: contiguous ones (which collapse() merges) or any small ones, negative too.
  contiguous: fc.boolean(),
  strides: fc.array(int(-3, 3), { minLength: 4, maxLength: 4 }),
  offset: int(-5, 5),
  op: fc.constantFrom("add", "mul", "eq", "lt", "max") as fc.Arbitrary<ir.BinaryOp>,
  where: fc.boolean(),
  epilogueIndex: fc.boolean(),
  data: fc.array(int(-4, 4), { minLength: 64, maxLength: 64 }),
});

property(
  "kernels with index leaves agree with the leaf's definition and the interpreter on every backend",
  leafKernelArb,
  60,
  async (p) => {
    const red = p.reduce ? [p.reduce.n] : [];
    const loop = [...p.shape, ...red];
    const strides = p.contiguous ? ir.contiguous(loop) : p.strides.slice(0, loop.length);
    const idx = ir.index(strides, p.offset) as ir.Expr & { k: "index" };
    const x = ir.load(0, ir.contiguous(loop));
    const body = p.where
      ? ir.where(ir.binary("lt", idx, ir.constant(1)), x, ir.binary(p.op, x, idx))
      : ir.binary(p.op, idx, x);
    const outIdx = ir.index(ir.contiguous(p.shape).map((s) => -s), 2);
    const kernel: ir.Kernel = {
      shape: p.shape,
      inputs: 1,
      body,
      ...(p.reduce ? { reduce: { op: p.reduce.op, shape: red } } : {}),
      ...(p.reduce && p.epilogueIndex ? { epilogue: ir.binary("add", ir.ACC, outIdx) } : {}),
    };
    const size = loop.reduce((a, b) => a * b, 1);
    const data = Array.from({ length: size }, (_, i) => p.data[i % p.data.length]);
    // The leaf's value from its definition, through a map kernel of the index alone.
    if (!p.reduce) {
      const alone: ir.Kernel = { shape: p.shape, inputs: 0, body: idx };
      const got = new Float64Array(size);
      interpret(alone, [], got);
      const at = (i: number) =>
        ir.contiguous(p.shape).map((s, d) => Math.floor(i / s) % p.shape[d]);
      assert.deepEqual([...got], Array.from({ length: size }, (_, i) => indexAt(idx, at(i))));
    }
    const outSize = p.shape.reduce((a, b) => a * b, 1);
    const want = new Float64Array(outSize);
    interpret(kernel, [Float64Array.from(data)], want);
    for (const { label, be, dtype } of targets) {
      const xb = put(be, data, dtype as DType);
      const got: TypedArray = await take(be, be.run(kernel, [xb], dtype));
      be.release(xb);
      // WGSL lets an implementation ignore the sign of a zero (llvmpipe folds 0.0 + x to x, so
      // a sum of one -0 is -0 there): on WebGPU, -0 and +0 are the same result.
      const exact = be.name === "webgpu"
        ? (xs: ArrayLike<number>) => bits(xs).map((v) => (v === "-0" ? "0" : v))
        : bits;
      assert.deepEqual(exact(got), exact(want), `${label}: ${JSON.stringify(kernel)}`);
    }
  },
);

/** A map through a view whose strides and offset may be negative, kept inside its buffer. */
const negativeViewArb = fc.record({
  shape: fc.array(int(1, 4), { minLength: 1, maxLength: 3 }),
  strides: fc.array(int(-3, 3), { minLength: 3, maxLength: 3 }),
  before: int(0, 2),
  after: int(0, 2),
  scaled: fc.boolean(),
});

property(
  "loads through views with negative strides and offsets read what the view names on every backend",
  negativeViewArb,
  40,
  async (p) => {
    const strides = p.strides.slice(0, p.shape.length);
    // The view's lowest and highest address from offset 0; the offset lifts the lowest to
    // `before` (negative exactly when a stride is).
    const span = (pick: (a: number, b: number) => number) =>
      p.shape.reduce((a, d, i) => a + pick(0, strides[i] * (d - 1)), 0);
    const offset = p.before - span(Math.min);
    const size = offset + span(Math.max) + 1 + p.after;
    const data = Array.from({ length: size }, (_, i) => i * 3 - 7);
    const view = ir.load(0, strides, offset);
    const body = p.scaled ? ir.binary("mul", view, ir.constant(2)) : view;
    const kernel: ir.Kernel = { shape: p.shape, inputs: 1, body };
    const count = p.shape.reduce((a, b) => a * b, 1);
    const at = (i: number) =>
      ir.contiguous(p.shape).map((st, d) => Math.floor(i / st) % p.shape[d]);
    const want = Array.from({ length: count }, (_, i) => {
      const v = data[at(i).reduce((a, x, d) => a + x * strides[d], offset)];
      return p.scaled ? v * 2 : v;
    });
    const host = new Float64Array(count);
    interpret(kernel, [Float64Array.from(data)], host);
    assert.deepEqual([...host], want, "interpreter");
    for (const { label, be, dtype } of targets) {
      const xb = put(be, data, dtype);
      const got = await take(be, be.run(kernel, [xb], dtype));
      be.release(xb);
      assert.deepEqual([...got], want, `${label}: ${JSON.stringify({ strides, offset, size })}`);
    }
  },
);

Deno.test("max-pool gather in WGSL: dy, which the epilogue tests and keeps, is read once", () => {
  const s: Pool2dSpec = { n: 2, c: 3, h: 8, w: 8, kh: 2, kw: 2, strideH: 2, strideW: 2 };
  const code = wgslKernel(poolBackwardKernels(s, 4, 4).gather).plan.code;
  assert.equal(code.match(/in1\[/g)?.length, 1, code);
});

Deno.test("load: WGSL adds a negative stride or offset as its two's complement in u32", () => {
  const k: ir.Kernel = { shape: [2, 3], inputs: 1, body: ir.load(0, [-3, 1], -1) };
  const code = wgslKernel(k).plan.code;
  assert.match(code, /in0\[o0 \* bitcast<u32>\(-3i\) \+ o1 \+ bitcast<u32>\(-1i\)\]/, code);
});

Deno.test("index leaf: WGSL computes it in i32, so negative strides and offsets hold", () => {
  const k: ir.Kernel = { shape: [2, 3], inputs: 0, body: ir.index([-3, 1], -1) };
  const code = wgslKernel(k).plan.code;
  assert.match(code, /f32\(i32\(o0\) \* \(-3\) \+ i32\(o1\) \* \(1\) \+ \(-1\)\)/);
});

Deno.test("max-pool backward on WebGPU: the IR's kernels only, one where the windows tile the plane unless the argmax comes first", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const rt = gpu.rt;
  const dispatch = rt.dispatch;
  const was = gpu.poolArgmaxOnce;
  const codes: string[] = [];
  rt.dispatch = (code, ...rest) => (codes.push(code), dispatch.call(rt, code, ...rest));
  // [h, window, stride, kernels]. Tiles: the gather. A border: the gather, then the plane's
  // corner. Overlapping: the argmax, then the gather (8 rows are 4 cells of 2: no corner to
  // copy). With poolArgmaxOnce, the argmax comes first where windows are apart too.
  const cases = [[8, 2, 2, 1], [9, 2, 2, 2], [8, 3, 2, 2], [9, 3, 2, 3]];
  try {
    for (const once of [false, true]) {
      gpu.poolArgmaxOnce = once;
      for (const [h, k, stride, alone] of cases) {
        const s = { n: 2, c: 3, h, w: h, kh: k, kw: k, strideH: stride, strideW: stride };
        const [ho, wo] = pool2dOutSize(s);
        const [xb, db] = [
          put(gpu, new Array(2 * 3 * s.h * s.w).fill(1)),
          put(gpu, new Array(6 * ho * wo).fill(1)),
        ];
        codes.length = 0;
        gpu.release(gpu.maxPool2dBackward(xb, db, s));
        [xb, db].forEach((b) => gpu.release(b));
        const what = JSON.stringify({ ...s, once });
        assert.equal(codes.length, once && k <= stride ? alone + 1 : alone, what);
        const { argmax, gather } = poolBackwardKernels(s, ho, wo, once);
        const ir = [...(argmax ? [argmax] : []), gather].map((k) => wgslKernel(k).plan.code);
        assert.deepEqual(codes.slice(0, ir.length), ir, what);
      }
    }
  } finally {
    rt.dispatch = dispatch;
    gpu.poolArgmaxOnce = was;
  }
});
