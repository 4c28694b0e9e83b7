/**
 * The WebAssembly memory arena (size classes, reuse, growth in the middle of work, trim) and the
 * native backend on it: BLAS through Deno FFI on arena views, an arena that grows in the middle of
 * work, buffers that do not fit (on the JavaScript heap, run as loops), copies on read, and
 * SGN_WASM=none or create({ wasm: false }), which keep the JavaScript loops and say so.
 */

import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import type { DType, TypedArray } from "../kernel/shape.ts";
import * as ir from "../kernel/ir.ts";
import { Arena, ArenaBuffer, sizeClass } from "../cpu/wasm/arena.ts";
import { NativeBackend } from "../cpu/native.ts";
import { assertClose, cpu, native } from "./harness.ts";
import { Random } from "../random.ts";

Deno.test("wasm arena: size classes are at most 25% over, 16-aligned and monotone", () => {
  let prev = 0;
  for (let b = 1; b < 1 << 20; b += 1 + (b >> 6)) {
    const c = sizeClass(b);
    assert.ok(c >= b && c % 16 === 0, `class ${c} of ${b}`);
    assert.ok(b <= 256 || c <= 1.25 * b, `class ${c} of ${b} is more than 25% over`);
    assert.ok(c >= prev);
    prev = c;
  }
});

Deno.test("wasm arena: released blocks are reused, steady state does not grow, trim merges free space", () => {
  const arena = new Arena({ initialBytes: 1 << 20, poolBytes: 1 << 16 });
  const sizes = [100, 1000, 4096, 10000, 100, 7];
  // One "step": allocate all, release all.
  const step = () => {
    const ptrs = sizes.map((s) => arena.alloc(s * 4)!);
    assert.equal(new Set(ptrs).size, ptrs.length, "distinct blocks");
    for (const p of ptrs) assert.equal(p % 16, 0);
    ptrs.forEach((p) => arena.free(p));
    return ptrs;
  };
  step();
  const top = arena.stats().top;
  for (let i = 0; i < 20; i++) step();
  assert.equal(arena.stats().top, top, "the same sizes every step take no new memory");
  assert.equal(arena.stats().used, 0);
  // Beyond poolBytes, released blocks go to the free space, merged; trim moves the rest there,
  // and the top comes down when the free space reaches it.
  const big = Array.from({ length: 8 }, () => arena.alloc(20000)!);
  big.forEach((p) => arena.free(p));
  assert.ok(arena.stats().pooled <= 1 << 16);
  arena.trim();
  const st = arena.stats();
  assert.equal(st.pooled, 0);
  assert.equal(st.free, 0, "everything merged into the top");
  assert.equal(st.top, 64);
  // A block of another size reuses the space.
  const p = arena.alloc(150000)!;
  assert.equal(p, 64);
  assert.throws(() => arena.free(p + 16), /no block/);
});

Deno.test("wasm arena: growth in the middle of work re-derives buffer views; old raw views detach", () => {
  const arena = new Arena({ initialBytes: 65536 });
  const a = arena.buffer(1000, "float32")!;
  const b = arena.buffer(500, "float64")!;
  a.data.set(Float32Array.from({ length: 1000 }, (_, i) => i));
  b.data.set(Float64Array.from({ length: 500 }, (_, i) => -i / 3));
  const raw = a.data;
  const gen = arena.generation;
  // More than the initial 64 KiB: the memory grows.
  const c = arena.buffer(100000, "float32")!;
  assert.ok(arena.generation > gen, "the memory grew");
  assert.equal(raw.length, 0, "a view of the old buffer is detached");
  assert.equal(a.data.length, 1000);
  assert.equal(a.data[999], 999);
  assert.equal(b.data[499], -499 / 3);
  c.data.fill(7);
  assert.equal(a.data[0], 0, "no overlap");
  assert.equal(arena.stats().memory >= 100000 * 4, true);
  // A capped arena says no instead of growing past its cap.
  const small = new Arena({ initialBytes: 65536, maxBytes: 131072 });
  assert.ok(small.buffer(20000, "float32"));
  assert.equal(small.buffer(20000, "float32"), undefined);
});

// --- the native backend on the arena -----------------------------------------------------------

const nat = await native();

Deno.test({
  name: "wasm arena: BLAS through Deno FFI reads and writes views into the WebAssembly memory",
  ignore: !nat,
  fn: () => {
    const arena = new Arena({ initialBytes: 65536 });
    for (const dtype of ["float32", "float64"] as const) {
      const m = 5, k = 7, n = 3;
      const a = arena.buffer(m * k, dtype)!, b = arena.buffer(k * n, dtype)!;
      const c = arena.buffer(m * n, dtype)!;
      const rng = new Random(3);
      a.data.set(rng.array(m * k));
      b.data.set(rng.array(k * n));
      c.data.fill(NaN);
      nat!.blas.gemm(false, false, m, n, k, 1, a.data, k, b.data, n, 0, c.data, n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += a.data[i * k + p] * b.data[p * n + j];
          assert.ok(
            Math.abs(c.data[i * n + j] - s) <= 1e-5 * (1 + Math.abs(s)),
            `${dtype} c[${i},${j}]`,
          );
        }
      }
      // A view at an offset inside the memory (not at its start) is passed as its own address.
      assert.ok(c.ptr > 0);
    }
  },
});

/** Runs a fixed sequence of routines and kernels on a backend; returns every result read back. */
async function workload(be: Backend, dtype: DType): Promise<TypedArray[]> {
  const rng = new Random(21);
  const up = (n: number) =>
    be.upload(dtype === "float32" ? Float32Array.from(rng.array(n)) : rng.array(n));
  const out: TypedArray[] = [];
  // Large enough that a 64 KiB arena grows in the first round, with or without im2col columns.
  const s = {
    n: 6,
    c: 3,
    h: 16,
    w: 16,
    f: 4,
    kh: 3,
    kw: 3,
    strideH: 1,
    strideW: 1,
    padH: 1,
    padW: 1,
  };
  for (let round = 0; round < 3; round++) {
    const x = up(6 * 3 * 256), w = up(4 * 27), a = up(64 * 48), b = up(48 * 40);
    const y = be.conv2d(x, w, s);
    const dx = be.conv2dInputGrad(y, w, s);
    const dw = be.conv2dWeightGrad(x, y, s);
    const p = be.maxPool2d(y, { n: 6, c: 4, h: 16, w: 16, kh: 2, kw: 2, strideH: 2, strideW: 2 });
    const mm = be.matmul(a, b, { m: 64, k: 48, n: 40 });
    const sm = be.softmax(mm, 64, 40, round === 1);
    // sigmoid(mm) summed over rows, with an epilogue; a transposed max.
    const k1: ir.Kernel = {
      shape: [64],
      inputs: 1,
      body: ir.unary("sigmoid", ir.load(0, [40, 1])),
      reduce: { op: "sum", shape: [40] },
      epilogue: ir.binary("mul", ir.ACC, ir.constant(1 / 40)),
    };
    const k2: ir.Kernel = {
      shape: [40],
      inputs: 1,
      body: ir.unary("tanh", ir.load(0, [1, 40])),
      reduce: { op: "max", shape: [64] },
    };
    // relu(mm) - mm's column mean, column by column (no exp: WebAssembly in float64 too).
    const k3: ir.Kernel = {
      shape: [40],
      inputs: 1,
      body: ir.unary("relu", ir.load(0, [1, 40])),
      reduce: { op: "sum", shape: [64] },
      epilogue: ir.binary("div", ir.ACC, ir.constant(64)),
    };
    const r1 = be.run(k1, [mm], dtype), r2 = be.run(k2, [sm], dtype), r3 = be.run(k3, [mm], dtype);
    for (const t of [y, dx, dw, p, mm, sm, r1, r2, r3]) out.push(await be.read(t));
    for (const t of [x, w, a, b, y, dx, dw, p, mm, sm, r1, r2, r3]) be.release(t);
  }
  return out;
}

Deno.test({
  name: "wasm arena: a backend whose arena grows in the middle of work gives the oracle's values",
  ignore: !nat,
  fn: async () => {
    // With and without oneDNN: its convolutions take no im2col columns, so less memory.
    for (
      const [dtype, dnnl] of [["float32", true], ["float32", false], ["float64", true]] as const
    ) {
      const be = NativeBackend.create({ arenaBytes: 65536, dnnl }).backend!;
      assert.ok(be.arena, "the arena is on");
      const got = await workload(be, dtype);
      // 64 KiB at the start: it grows while buffers of the first round are alive.
      assert.ok(be.arena.generation >= 1, `the memory grew (${dtype}, oneDNN ${dnnl})`);
      assert.ok(be.kernelRuns.wasm > 0, "kernels ran in WebAssembly");
      const want = await workload(cpu, dtype);
      // float32 BLAS sums in float32: its rounding, not the arena's, sets the tolerance.
      const tol = dtype === "float32" ? { rtol: 1e-4, atol: 1e-5 } : { rtol: 1e-10, atol: 1e-12 };
      got.forEach((g, i) => assertClose(g, want[i], { ...tol, what: `${dtype} result ${i}` }));
      // The steady state: running it again takes no new memory.
      const top = be.arena.stats().top;
      await workload(be, dtype);
      assert.equal(be.arena.stats().top, top);
    }
  },
});

Deno.test({
  name: "wasm arena: buffers that do not fit live on the JavaScript heap and run as loops",
  ignore: !nat,
  fn: async () => {
    const be = NativeBackend.create({ arenaBytes: 65536, arenaMaxBytes: 131072 }).backend!;
    const big = Float32Array.from({ length: 50000 }, (_, i) => (i % 17) - 8);
    const small = Float32Array.from({ length: 5 }, (_, i) => i);
    const x = be.upload(big), s = be.upload(small);
    assert.ok(!(x instanceof ArenaBuffer) && s instanceof ArenaBuffer);
    const k: ir.Kernel = {
      shape: [10000, 5],
      inputs: 2,
      body: ir.binary("add", ir.unary("exp", ir.load(0, [5, 1])), ir.load(1, [0, 1])),
    };
    const before = { ...be.kernelRuns };
    const y = be.run(k, [x, s], "float32");
    assert.equal(be.kernelRuns.js, before.js + 1, "a JavaScript-heap input: the loops");
    const yd = await be.read(y);
    for (let i = 0; i < 50000; i++) {
      assert.equal(yd[i], Math.fround(Math.exp(big[i]) + small[i % 5]), `element ${i}`);
    }
    for (const b of [x, s, y]) be.release(b);
  },
});

Deno.test({
  name: "wasm arena: read() returns a copy, and a released buffer cannot be read",
  ignore: !nat,
  fn: async () => {
    const be = NativeBackend.create().backend!;
    const a = be.upload(Float32Array.from([1, 2, 3]));
    const copy = await be.read(a);
    be.release(a);
    // The block is reused by the next buffer of that size, written over.
    const b = be.upload(Float32Array.from([7, 8, 9]));
    assert.equal((b as ArenaBuffer).ptr, (a as ArenaBuffer).ptr, "the block was reused");
    assert.deepEqual([...copy], [1, 2, 3]);
    assert.notEqual(copy.buffer, be.arena!.memory.buffer);
    assert.throws(() => be.read(a), /already released/);
    be.release(b);
  },
});

Deno.test({
  name: "wasm: SGN_WASM=none and create({ wasm: false }) keep the JavaScript loops, and say so",
  ignore: !nat,
  fn: async () => {
    const off = NativeBackend.create({ wasm: false }).backend!;
    assert.equal(off.arena, undefined);
    assert.match(off.description, /kernels as JavaScript loops \(create\(\{ wasm: false \}\)\)/);
    assert.match(nat!.description, /kernels in WebAssembly SIMD/);
    const src = `import { NativeBackend } from "${new URL("../cpu/native.ts", import.meta.url)}";
      const be = NativeBackend.create().backend;
      console.log(be.description, be.arena === undefined);`;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["eval", src],
      env: { SGN_WASM: "none" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(r.stdout);
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
    assert.match(text, /kernels as JavaScript loops \(SGN_WASM=none\);.* true$/m);
  },
});
