/**
 * The WebGPU matrix product (wgsl/matmul.ts) against a float64 nested-loop definition written
 * here (independent of the CPU backend): every transpose combination, odd sizes, batching with
 * shared operands, forced work splits, zero sizes, size validation and buffer leaks.
 *
 * Tolerance: a float32 sum of K products may differ from the exact sum by about K ulps of the
 * largest partial sums, so each element is checked against the sum of the absolute values of its
 * terms: |gpu - ref| <= 1e-5 * sum_k |a_ik * b_kj| + 1e-6.
 */
import assert from "node:assert/strict";
import type { MatmulSpec } from "../kernel/backend.ts";
import { SgnError } from "../errors.ts";
import { Random } from "../random.ts";
import type { GpuBuffer } from "../wgsl/runtime.ts";
import { matmul, type MatmulTile } from "../wgsl/matmul.ts";
import { webgpu } from "./harness.ts";

const be = await webgpu();

/** Sizes of the stored operands of a spec. */
function sizes(s: MatmulSpec): [number, number] {
  const batch = s.batch ?? 1;
  const bA = batch > 1 ? s.batchA ?? true : false;
  const bB = batch > 1 ? s.batchB ?? true : false;
  return [(bA ? batch : 1) * s.m * s.k, (bB ? batch : 1) * s.k * s.n];
}

/** The product in float64 by its definition, and the sums of |terms| for the tolerance. */
function reference(a: Float32Array, b: Float32Array, s: MatmulSpec): [Float64Array, Float64Array] {
  const { m, k, n, transA = false, transB = false } = s;
  const batch = s.batch ?? 1;
  const bA = batch > 1 ? s.batchA ?? true : false;
  const bB = batch > 1 ? s.batchB ?? true : false;
  const out = new Float64Array(batch * m * n);
  const mag = new Float64Array(batch * m * n);
  const x = new Float64Array(m * k); // this batch entry's A as [m, k]
  const y = new Float64Array(k * n); // and B as [k, n]
  for (let t = 0; t < batch; t++) {
    const oa = bA ? t * m * k : 0;
    const ob = bB ? t * k * n : 0;
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) x[i * k + p] = a[oa + (transA ? p * m + i : i * k + p)];
    }
    for (let p = 0; p < k; p++) {
      for (let j = 0; j < n; j++) y[p * n + j] = b[ob + (transB ? j * k + p : p * n + j)];
    }
    for (let i = 0; i < m; i++) {
      const row = t * m * n + i * n;
      for (let p = 0; p < k; p++) {
        const xv = x[i * k + p];
        for (let j = 0; j < n; j++) {
          const term = xv * y[p * n + j];
          out[row + j] += term;
          mag[row + j] += Math.abs(term);
        }
      }
    }
  }
  return [out, mag];
}

function describe(s: MatmulSpec, tile?: MatmulTile): string {
  return JSON.stringify(s) + (tile ? ` tile ${JSON.stringify(tile)}` : "");
}

/** Asserts the tolerance of the module documentation, naming the first element outside it. */
function check(
  got: ArrayLike<number>,
  a: Float32Array,
  b: Float32Array,
  s: MatmulSpec,
  what: string,
) {
  const [ref, mag] = reference(a, b, s);
  assert.equal(got.length, ref.length, `${what}: output size`);
  for (let i = 0; i < ref.length; i++) {
    const tol = 1e-5 * mag[i] + 1e-6;
    if (!(Math.abs(got[i] - ref[i]) <= tol)) {
      assert.fail(`${what}: element ${i} is ${got[i]}, expected ${ref[i]} (tolerance ${tol})`);
    }
  }
}

interface Case {
  spec: MatmulSpec;
  tile?: MatmulTile;
}

/**
 * Runs the cases on the GPU (queued together, then read back) and checks each one; with
 * `inputs`, also that the operands were left untouched.
 */
async function run(cases: Case[], seed: number, inputs = false): Promise<void> {
  const gpu = be!;
  const rng = new Random(seed);
  const live = gpu.liveBuffers();
  const jobs = cases.map(({ spec, tile }) => {
    const [sa, sb] = sizes(spec);
    const a = Float32Array.from(rng.array(sa));
    const b = Float32Array.from(rng.array(sb));
    const da = gpu.upload(a) as GpuBuffer;
    const db = gpu.upload(b) as GpuBuffer;
    const out = tile ? matmul(gpu.rt, da, db, spec, tile) : gpu.matmul(da, db, spec);
    return { spec, tile, a, b, da, db, out };
  });
  for (const { spec, tile, a, b, da, db, out } of jobs) {
    const got = await gpu.read(out);
    const what = describe(spec, tile);
    check(got, a, b, spec, what);
    if (inputs) {
      assert.deepEqual(await gpu.read(da), a, `${what}: A was modified`);
      assert.deepEqual(await gpu.read(db), b, `${what}: B was modified`);
    }
    for (const x of [da, db, out]) gpu.release(x);
  }
  assert.equal(gpu.liveBuffers(), live, "buffers leaked");
}

const TRANSPOSES = [[false, false], [true, false], [false, true], [true, true]] as const;
const SIZES = [1, 3, 7, 33, 257];

Deno.test({
  name: "matmul: every transpose combination on odd sizes (1, 3, 7, 33, 257)",
  ignore: !be,
  fn: async () => {
    for (const [transA, transB] of TRANSPOSES) {
      const cases: Case[] = [];
      for (const m of SIZES) {
        for (const k of SIZES) {
          for (const n of SIZES) cases.push({ spec: { m, k, n, transA, transB } });
        }
      }
      await run(cases, 1 + Number(transA) + 2 * Number(transB));
    }
  },
});

Deno.test({
  name: "matmul: large products (1000 x 784 x 256, unaligned 999 x 785 x 256, 128 x 4096 x 64)",
  ignore: !be,
  fn: async () => {
    const cases: Case[] = TRANSPOSES.map(([transA, transB]) => ({
      spec: { m: 1000, k: 784, n: 256, transA, transB },
    }));
    cases.push({ spec: { m: 999, k: 785, n: 256, transA: true, transB: true } });
    cases.push({ spec: { m: 128, k: 4096, n: 64 } });
    await run(cases, 5);
  },
});

Deno.test({
  name: "matmul: batches with both operands batched, A shared and B shared",
  ignore: !be,
  fn: async () => {
    const cases: Case[] = [];
    const shapes = [[1, 1, 1], [7, 33, 3], [33, 7, 257], [3, 257, 33], [64, 32, 48]];
    for (const [transA, transB] of TRANSPOSES) {
      for (const [m, k, n] of shapes) {
        for (const [batchA, batchB] of [[true, true], [false, true], [true, false]]) {
          cases.push({ spec: { m, k, n, transA, transB, batch: 3, batchA, batchB } });
        }
      }
    }
    // Defaults: batch > 1 batches both operands; batch 1 ignores the flags.
    cases.push({ spec: { m: 5, k: 6, n: 7, batch: 2 } });
    cases.push({ spec: { m: 5, k: 6, n: 7, batch: 1, batchA: false, batchB: true } });
    await run(cases, 6, true);
  },
});

Deno.test({
  name: "matmul: forced work splits (block sizes, arrangements, blocks larger than the matrix)",
  ignore: !be,
  fn: async () => {
    const tiles: MatmulTile[] = [
      { r: 4, c: 4, wx: 8, wy: 1 },
      { r: 8, c: 8, wx: 1, wy: 8 },
      { r: 12, c: 4, wx: 2, wy: 4 },
      { r: 4, c: 12, wx: 4, wy: 2 },
      { r: 12, c: 20, wx: 2, wy: 4 },
    ];
    const shapes = [[1, 1, 1], [5, 9, 3], [17, 8, 40], [40, 13, 17], [64, 64, 64]];
    const cases: Case[] = [];
    for (const tile of tiles) {
      for (const [transA, transB] of TRANSPOSES) {
        for (const [m, k, n] of shapes) cases.push({ spec: { m, k, n, transA, transB }, tile });
      }
      cases.push({ spec: { m: 9, k: 10, n: 11, batch: 4, batchA: false }, tile });
    }
    await run(cases, 7);
  },
});

Deno.test({
  name: "matmul: zero sizes give empty outputs and K = 0 gives zeros",
  ignore: !be,
  fn: async () => {
    const gpu = be!;
    const live = gpu.liveBuffers();
    // Recycled buffers hold garbage: fill the pool with NaNs first.
    for (const size of [6, 12, 35, 64]) gpu.release(gpu.upload(new Float32Array(size).fill(NaN)));
    for (const [m, k, n, batch] of [[0, 3, 4, 1], [3, 4, 0, 1], [0, 0, 0, 1], [2, 3, 4, 0]]) {
      const spec = { m, k, n, batch };
      const [sa, sb] = sizes(spec);
      const a = gpu.upload(new Float32Array(sa));
      const b = gpu.upload(new Float32Array(sb));
      const out = gpu.matmul(a, b, spec);
      assert.equal(out.size, 0, describe(spec));
      assert.equal((await gpu.read(out)).length, 0);
      for (const x of [a, b, out]) gpu.release(x);
    }
    for (const spec of [{ m: 2, k: 0, n: 3 }, { m: 5, k: 0, n: 7, batch: 5, batchA: false }]) {
      const [sa, sb] = sizes(spec);
      const a = gpu.upload(new Float32Array(sa));
      const b = gpu.upload(new Float32Array(sb));
      const out = gpu.matmul(a, b, spec);
      const batch = spec.batch ?? 1;
      assert.deepEqual(await gpu.read(out), new Float32Array(batch * spec.m * spec.n));
      for (const x of [a, b, out]) gpu.release(x);
    }
    assert.equal(gpu.liveBuffers(), live, "buffers leaked");
  },
});

Deno.test({
  name: "matmul: padding never reads recycled garbage",
  ignore: !be,
  fn: async () => {
    const gpu = be!;
    // Unaligned shapes go through padded copies; poison the pool buckets they will reuse.
    for (let size = 4; size <= 4096; size *= 2) {
      const bufs = [0, 1, 2].map(() => gpu.upload(new Float32Array(size).fill(NaN)));
      for (const x of bufs) gpu.release(x);
    }
    const cases: Case[] = [];
    for (const [transA, transB] of TRANSPOSES) {
      cases.push({ spec: { m: 5, k: 7, n: 9, transA, transB } });
      cases.push({ spec: { m: 30, k: 31, n: 29, transA, transB, batch: 2, batchB: false } });
    }
    await run(cases, 8, true);
  },
});

Deno.test({
  name: "matmul: sizes and dimensions are validated",
  ignore: !be,
  fn: () => {
    const gpu = be!;
    const live = gpu.liveBuffers();
    const a = gpu.upload(new Float32Array(6));
    const b = gpu.upload(new Float32Array(12));
    const expectError = (f: () => unknown, ...parts: string[]) =>
      assert.throws(f, (e: unknown) => {
        assert.ok(e instanceof SgnError, `expected an SgnError, got ${e}`);
        for (const p of ["matmul", ...parts]) {
          assert.ok(e.message.includes(p), `"${e.message}" should mention "${p}"`);
        }
        return true;
      });
    // A is 2 x 3, B is 3 x 4.
    gpu.release(gpu.matmul(a, b, { m: 2, k: 3, n: 4 }));
    expectError(() => gpu.matmul(a, b, { m: 3, k: 3, n: 4 }), "6", "9");
    expectError(() => gpu.matmul(a, b, { m: 2, k: 3, n: 5 }), "12", "15");
    expectError(() => gpu.matmul(b, a, { m: 2, k: 3, n: 4 }), "12", "6");
    expectError(() => gpu.matmul(a, b, { m: 2, k: 3, n: 4, batch: 2 }), "6", "12", "24");
    expectError(() => gpu.matmul(a, b, { m: 2, k: 3, n: 4, batch: 2, batchA: false }), "12", "24");
    expectError(() => gpu.matmul(a, b, { m: -2, k: -3, n: 4 }), "m", "-2");
    expectError(() => gpu.matmul(a, b, { m: 2, k: 1.5, n: 4 }), "k", "1.5");
    expectError(() => gpu.matmul(a, b, { m: 2, k: 3, n: NaN }), "n", "NaN");
    expectError(() => gpu.matmul(a, b, { m: 2, k: 3, n: 4, batch: 0.5 }), "batch", "0.5");
    expectError(
      () =>
        matmul(gpu.rt, a as GpuBuffer, b as GpuBuffer, { m: 2, k: 3, n: 4 }, {
          r: 6,
          c: 4,
          wx: 8,
          wy: 1,
        }),
      "tile",
    );
    expectError(
      () =>
        matmul(gpu.rt, a as GpuBuffer, b as GpuBuffer, { m: 2, k: 3, n: 4 }, {
          r: 4,
          c: 4,
          wx: 4,
          wy: 1,
        }),
      "tile",
    );
    gpu.release(a);
    gpu.release(b);
    assert.equal(gpu.liveBuffers(), live, "buffers leaked");
  },
});
