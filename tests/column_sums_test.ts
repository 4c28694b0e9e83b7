/**
 * A layer's bias gradient folded into its weight gradient's product: `MatmulSpec.sums` (one more
 * output row, B's sums over k) on every backend against a float64 definition written here, and
 * on WebGPU through every tile and a split K; then kernel/matmul.ts's `foldColumnSums`, which
 * folds a (product, sums) pair of a flat vector's parts into one product only when the sums are
 * exactly that product's B summed over its first axis, on a network's gradient (same values, one
 * product per layer) and on pairs that must stay apart.
 *
 * Data are multiples of 1/2 in [-2, 2] and k <= 40, so every product and sum here is exact in
 * float32: the backends must give the definition's numbers exactly.
 */
import assert from "node:assert/strict";
import { fc, property } from "./property.ts";
import { backendTargets, cpu } from "./harness.ts";
import type { Backend, MatmulSpec } from "../kernel/backend.ts";
import * as ir from "../kernel/ir.ts";
import * as k from "../kernel/lazy.ts";
import * as g from "../kernel/graph.ts";
import { foldColumnSums } from "../kernel/matmul.ts";
import { matmul as gpuMatmul, type MatmulTile } from "../wgsl/matmul.ts";
import type { GpuBuffer } from "../wgsl/runtime.ts";
import type { WebGpuBackend } from "../wgsl/webgpu.ts";
import { scope, tensor } from "../autodiff/tensor.ts";
import { valueAndGrad } from "../autodiff/transforms.ts";
import { mlp } from "../models/networks.ts";
import { meanSquaredError } from "../models/losses.ts";
import { concatFlat } from "../sgn/vectors.ts";

const TARGETS = await backendTargets();

/** Multiples of 1/2 in [-2, 2] from a seed. */
function halves(n: number, seed: number): Float64Array {
  let s = (seed * 2654435761 + 7) >>> 0;
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s >>> 9) % 9 - 4) / 2;
  });
}

/** [A B; 1^T B] of stored operands by definition (A^T, B^T as the spec says), and epilogue. */
function reference(a: Float64Array, b: Float64Array, s: Required<MatmulSpec>): number[] {
  const { m, k, n, transA, transB, offsetA, offsetB } = s;
  const at = (i: number, p: number) => i === m ? 1 : a[offsetA + (transA ? p * m + i : i * k + p)];
  const bt = (p: number, j: number) => b[offsetB + (transB ? j * k + p : p * n + j)];
  const out: number[] = [];
  for (let i = 0; i <= m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += at(i, p) * bt(p, j);
      out.push(acc);
    }
  }
  return out;
}

const specArb = fc.record({
  m: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom(4, 8, 12)),
  k: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(4, 16, 32)),
  n: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom(4, 8)),
  transA: fc.boolean(),
  transB: fc.boolean(),
  offsetA: fc.constantFrom(0, 0, 1, 4),
  offsetB: fc.constantFrom(0, 0, 3, 4),
  epilogue: fc.boolean(),
  seed: fc.nat(100000),
});

/** -0 and 0 alike (WGSL does not keep a zero's sign). */
const plain = (xs: ArrayLike<number>) => Array.from(xs, (x) => (x === 0 ? 0 : x));

property(
  "matmul with sums: the product and B's sums over k as one more row, on every backend",
  specArb,
  25,
  async (c) => {
    const spec: Required<MatmulSpec> = { ...c, batch: 1, batchA: false, batchB: false, sums: true };
    const a = halves(c.offsetA + c.m * c.k, c.seed);
    const b = halves(c.offsetB + c.k * c.n, c.seed + 1);
    const bias = halves(c.n, c.seed + 2);
    let want = reference(a, b, spec);
    // The epilogue reads a [n] bias broadcast over the rows: acc * 2 + bias.
    const body = ir.binary(
      "add",
      ir.binary("mul", ir.ACC, ir.constant(2)),
      ir.load(0, [0, 1]),
    );
    if (c.epilogue) want = want.map((v, i) => v * 2 + bias[i % c.n]);
    for (const t of TARGETS) {
      const up = (d: Float64Array) =>
        t.be.upload(t.dtype === "float64" ? Float64Array.from(d) : Float32Array.from(d));
      const [da, db, dbias] = [up(a), up(b), up(bias)];
      const epi = c.epilogue ? { body, inputs: [dbias] } : undefined;
      try {
        const runs: [string, () => ReturnType<Backend["matmul"]>][] = [
          [t.label, () => t.be.matmul(da, db, spec, epi)],
        ];
        if (t.label === "webgpu") {
          const rt = (t.be as WebGpuBackend).rt;
          const g = (x: typeof da) => x as GpuBuffer;
          const ge = epi && { body, inputs: [g(dbias)] };
          const tile: MatmulTile = {
            r: 4 * (1 + (c.seed % 4)),
            c: 4 * (1 + (c.seed >> 2) % 4),
            wx: 2,
            wy: 4,
          };
          runs.push([
            `webgpu tile ${JSON.stringify(tile)}`,
            () => gpuMatmul(rt, g(da), g(db), spec, tile, ge),
          ]);
          const aligned = c.k % 8 === 0 && (c.transA ? c.m : c.k) % 4 === 0 &&
            (c.transB ? c.k : c.n) % 4 === 0 && c.offsetA % 4 === 0 && c.offsetB % 4 === 0;
          if (aligned) {
            runs.push([
              "webgpu split 2",
              () => gpuMatmul(rt, g(da), g(db), spec, undefined, ge, 2),
            ]);
          }
        }
        for (const [what, run] of runs) {
          const out = run();
          const got = await t.be.read(out);
          t.be.release(out);
          assert.deepEqual(plain(got), plain(want), `${what}: ${JSON.stringify(spec)}`);
        }
      } finally {
        for (const x of [da, db, dbias]) t.be.release(x);
      }
    }
  },
);

Deno.test("matmul with sums: batch 1 only, and the output shape names the row", () => {
  const a = cpu.upload(new Float32Array(8));
  try {
    assert.throws(
      () => cpu.matmul(a, a, { m: 2, k: 1, n: 2, batch: 2, sums: true }),
      /sums .* need batch 1, got 2/,
    );
  } finally {
    cpu.release(a);
  }
});

// --- foldColumnSums ---------------------------------------------------------------------------

/**
 * Counts the products with sums a backend runs while `fn` runs, one by one or together
 * (`Backend.matmuls`, WebGPU).
 */
async function productsWithSums<T>(be: Backend, fn: () => Promise<T>): Promise<[T, number]> {
  const own = be.matmul;
  const group = be.matmuls;
  let n = 0;
  be.matmul = function (this: Backend, a, b, spec, epi) {
    if (spec.sums) n++;
    return own.call(this, a, b, spec, epi);
  };
  if (group) {
    be.matmuls = function (this: Backend, items) {
      n += items.filter((x) => x.spec.sums).length;
      return group.call(this, items);
    };
  }
  try {
    return [await fn(), n];
  } finally {
    be.matmul = own;
    if (group) be.matmuls = group;
  }
}

for (const t of TARGETS) {
  Deno.test(`fold (${t.label}): a network's flat gradient, one product per layer, same values`, async () => {
    const live = t.be.liveBuffers();
    const net = mlp({ inputs: 5, hidden: [6, 3], outputs: 2 });
    const opts = { backend: t.be, dtype: t.dtype };
    const x = tensor(Array.from(halves(8 * 5, 3)), [8, 5], opts);
    const y = tensor(Array.from(halves(8 * 2, 4)), [8, 2], opts);
    const params = net.init({ seed: 1, ...opts });
    const loss = meanSquaredError(y);
    const grads = () =>
      scope(() => valueAndGrad((...p) => loss.value(net.forward(p, x)))(...params)[1]);
    try {
      // Each part computed on its own, then the flat vector with the pairs folded.
      const parts = grads();
      const want: number[] = [];
      for (const g of parts) want.push(...await g.data());
      const [got, folded] = await productsWithSums(t.be, async () => {
        const gs = grads();
        const flat = concatFlat(gs);
        const v = Array.from(await flat.data());
        for (const g of [...gs, flat]) g.dispose();
        return v;
      });
      assert.equal(folded, 3, "three layers, three products with sums");
      const tol = t.dtype === "float64" ? 0 : 1e-6;
      got.forEach((v, i) =>
        assert.ok(
          Math.abs(v - want[i]) <= tol * (1 + Math.abs(want[i])),
          `element ${i}: ${v} vs ${want[i]}`,
        )
      );
      for (const g of parts) g.dispose();
    } finally {
      for (const p of [...params, x, y]) p.dispose();
    }
    assert.equal(t.be.liveBuffers(), live, "every buffer freed");
  });
}

Deno.test("fold: only a product's own B summed over its first axis joins it", async () => {
  const live = cpu.liveBuffers();
  const up = (n: number, seed: number, shape: number[]) =>
    k.Lazy.of(cpu, cpu.upload(Float32Array.from(halves(n, seed))), shape);
  const xs = up(12, 1, [4, 3]); // [k = 4, m = 3]
  const dy = up(8, 2, [4, 2]); // [k = 4, n = 2]
  const other = up(8, 3, [4, 2]);
  const dyT = up(8, 2, [2, 4]); // dy^T's layout: [n = 2, k = 4]
  const temps: k.Lazy[] = [];
  const t = (l: k.Lazy) => (temps.push(l), l);
  // Each case gets its own pending product (a computed one has nothing left to fold).
  const dW = (transB = false) =>
    g.routine({ op: "matmul", spec: { m: 3, k: 4, n: 2, transA: true, transB } }, [
      xs,
      transB ? dyT : dy,
    ], [3, 2]);
  const cases: [string, () => k.Lazy[], number][] = [
    ["its sums", () => [dW(), g.reduce("sum", dy, [0])], 1],
    ["another array's sums", () => [dW(), g.reduce("sum", other, [0])], 0],
    ["a max", () => [dW(), g.reduce("max", dy, [0])], 0],
    ["scaled sums", () => [
      dW(),
      g.binary("mul", t(g.reduce("sum", dy, [0])), t(g.full(cpu, [], 2, "float32"))),
    ], 0],
    ["the sums first", () => [g.reduce("sum", dy, [0]), dW()], 0],
    // B stored transposed: its sums over k are a reduction over its last axis.
    ["B transposed", () => [dW(true), g.reduce("sum", dyT, [1])], 0],
  ];
  for (const [what, make, want] of cases) {
    const parts = make();
    const folded = foldColumnSums(parts);
    assert.equal(parts.length - folded.length, want, what);
    // Folded or not, the parts hold the same numbers (the folded ones computed first).
    const got: number[] = [], expected: number[] = [];
    for (const p of folded) got.push(...await cpu.read(p.realize()));
    for (const p of parts) expected.push(...await cpu.read(p.realize()));
    assert.deepEqual(got, expected, what);
    for (const p of [...folded, ...parts]) p.release();
  }
  for (const l of [xs, dy, dyT, other, ...temps]) l.release();
  assert.equal(cpu.liveBuffers(), live, "every buffer freed");
});
