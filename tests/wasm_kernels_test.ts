/**
 * Generated kernels compiled to WebAssembly (cpu/wasm/codegen.ts) against the JavaScript loops of
 * cpu/compile.ts and the reference interpreter, value for value, and `float32Exact`, which picks
 * the maps whose float32 lanes give the float64 path's values.
 */

import assert from "node:assert/strict";
import type { DType, TypedArray } from "../kernel/shape.ts";
import { BINARY_OPS, UNARY_OPS } from "../kernel/ir.ts";
import * as ir from "../kernel/ir.ts";
import { compileKernel } from "../cpu/compile.ts";
import { compileWasmKernel, float32Exact, wasmSupport } from "../cpu/wasm/codegen.ts";
import { fc, property } from "./property.ts";
import { Random } from "../random.ts";

/** Dyadic values (exact sums in any order), with zeros of both signs and, rarely, specials. */
function value(r: Random): number {
  const u = r.uniform();
  if (u < 0.03) return [NaN, Infinity, -Infinity][r.int(3)];
  if (u < 0.08) return [0, -0][r.int(2)];
  return (r.int(49) - 24) / 8;
}

/** A random expression over loads (drawn by `leaf`), of depth at most `depth`. */
function genExpr(r: Random, depth: number, leaf: () => ir.Expr, withPow: boolean): ir.Expr {
  const u = r.uniform();
  if (depth === 0 || u < 0.25) return r.uniform() < 0.8 ? leaf() : ir.constant(value(r));
  const sub = () => genExpr(r, depth - 1, leaf, withPow);
  if (u < 0.55) return ir.unary(UNARY_OPS[r.int(UNARY_OPS.length)], sub());
  if (u < 0.9) {
    const ops = BINARY_OPS.filter((o) => withPow || o !== "pow");
    return ir.binary(ops[r.int(ops.length)], sub(), sub());
  }
  if (u < 0.96) return ir.where(sub(), sub(), sub());
  return { k: "cast", to: r.uniform() < 0.5 ? "float32" : "float64", x: sub() };
}

/** A generated kernel and inputs for it. */
function genKernel(seed: number, dtype: DType): { kernel: ir.Kernel; inputs: TypedArray[] } {
  const r = new Random(seed);
  const rank = r.int(4);
  const shape = Array.from({ length: rank }, () => 1 + r.int(r.uniform() < 0.3 ? 13 : 6));
  const reduce = r.uniform() < 0.5
    ? {
      op: (["sum", "max", "argmax"] as const)[r.int(3)],
      shape: Array.from({ length: 1 + r.int(2) }, () => 1 + r.int(r.uniform() < 0.4 ? 17 : 5)),
    }
    : undefined;
  const nIn = 1 + r.int(3);
  const sizes = new Array<number>(nIn).fill(1);
  const genLoad = (dims: number[]) => () => {
    const input = r.int(nIn);
    const kind = r.uniform();
    // Contiguous, broadcast (some strides 0) or arbitrary strides.
    let strides: number[];
    if (kind < 0.4) strides = ir.contiguous(dims);
    else if (kind < 0.7) strides = ir.contiguous(dims).map((s) => (r.uniform() < 0.4 ? 0 : s));
    else strides = dims.map(() => r.int(6));
    const offset = r.int(4);
    let last = offset;
    dims.forEach((d, i) => (last += (d - 1) * strides[i]));
    sizes[input] = Math.max(sizes[input], last + 1);
    return ir.load(input, strides, offset);
  };
  const full = [...shape, ...(reduce?.shape ?? [])];
  const withPow = r.uniform() < 0.1;
  const body = genExpr(r, 3, genLoad(full), withPow);
  const epilogue = reduce && r.uniform() < 0.6
    ? genExpr(r, 2, () => (r.uniform() < 0.5 ? ir.ACC : genLoad(shape)()), false)
    : undefined;
  const kernel: ir.Kernel = {
    shape,
    inputs: nIn,
    body,
    ...(reduce ? { reduce } : {}),
    ...(epilogue ? { epilogue } : {}),
  };
  const make = (n: number): TypedArray => {
    const a = dtype === "float32" ? new Float32Array(n) : new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = value(r);
    return a;
  };
  return { kernel, inputs: sizes.map(make) };
}

/** Runs a kernel through WebAssembly on a fresh memory; undefined without a wasm form. */
function runWasm(kernel: ir.Kernel, dtype: DType, inputs: TypedArray[]): TypedArray | undefined {
  const B = dtype === "float32" ? 4 : 8;
  const outN = kernel.shape.reduce((a, b) => a * b, 1);
  const bytes = inputs.reduce((s, x) => s + x.length * B + 16, 0) + outN * B + 64;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
  const c = compileWasmKernel(kernel, dtype, memory);
  if (!c) return undefined;
  const T = dtype === "float32" ? Float32Array : Float64Array;
  const buf = memory.buffer as ArrayBuffer;
  let at = 16;
  const ptrs = inputs.map((x) => {
    new T(buf, at, x.length).set(x);
    const p = at;
    at += Math.ceil((x.length * B) / 16) * 16;
    return p;
  });
  // The output starts after a canary, so that a store before it shows.
  new T(buf, 0, 16 / B).fill(12345);
  c.run(ptrs, at, c.consts);
  assert.deepEqual([...new T(buf, 0, 16 / B)], new Array(16 / B).fill(12345));
  return new T(buf, at, outN).slice();
}

const same = (a: number, b: number) => Object.is(a, b) || (a !== a && b !== b);

const MATH_OPS = new Set(["exp", "log", "tanh", "sigmoid", "softplus"]);

/**
 * `e` with the result of its k-th math function replaced by `wrap(result, k)`: scaled by a
 * rounding-sized factor, or rounded to the kernel's dtype (the loops compute exp, log, ... in
 * float64 and round only where the kernel says; WebAssembly's float32 lanes round each result).
 */
function rewrapped(e: ir.Expr, wrap: (u: ir.Expr, k: number) => ir.Expr): ir.Expr {
  let k = 0;
  const walk = (x: ir.Expr): ir.Expr => {
    switch (x.k) {
      case "unary": {
        const u = ir.unary(x.op, walk(x.x));
        return MATH_OPS.has(x.op) ? wrap(u, k++) : u;
      }
      case "binary":
        return ir.binary(x.op, walk(x.a), walk(x.b));
      case "where":
        return ir.where(walk(x.c), walk(x.a), walk(x.b));
      case "cast":
        return { k: "cast", to: x.to, x: walk(x.x) };
      default:
        return x;
    }
  };
  return walk(e);
}

property(
  "a generated kernel in WebAssembly gives the JavaScript loops' values (exactly, save partial sums' order and exp/log/tanh/sigmoid)",
  fc.tuple(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom("float32", "float64")),
  500,
  ([seed, dtype]) => {
    const { kernel, inputs } = genKernel(seed, dtype as DType);
    const got = runWasm(kernel, dtype as DType, inputs);
    const why = wasmSupport(ir.collapse(kernel));
    if (!got) {
      assert.ok(why, "no WebAssembly form, with a reason");
      return;
    }
    assert.equal(why, undefined);
    const n = got.length;
    const js = dtype === "float32" ? new Float32Array(n) : new Float64Array(n);
    const c = compileKernel(kernel, dtype as DType);
    c.run(inputs, js, c.consts);
    let math = false;
    const spot = (e: ir.Expr) => e.k === "unary" && MATH_OPS.has(e.op) && (math = true);
    ir.walk(kernel.body, spot);
    if (kernel.epilogue) ir.walk(kernel.epilogue, spot);
    const sum = kernel.reduce?.op === "sum";
    // Partial sums: float64 in another order; float32 math: a few float32 ulps per function.
    const tol = math ? (dtype === "float32" ? 1e-5 : 1e-9) : sum ? 1e-12 : 0;
    const close = (a: number, e: number) =>
      same(a, e) ||
      (tol > 0 && Number.isFinite(a) && Number.isFinite(e) &&
        Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)));
    // Where a math function's result meets a comparison (ne(log a, f32(log a)), a where's
    // condition, an argmax), its last ulps decide the outcome: the loops are run again with those
    // results rounded to the dtype, and moved by a tenth of the tolerance (neighbours in opposite
    // directions), and an element these move is not compared.
    const scale = (f: number) => (u: ir.Expr, k: number) =>
      ir.binary("mul", u, ir.constant(k % 2 ? 1 / f : f));
    const wraps = [
      (u: ir.Expr) => ({ k: "cast", to: dtype, x: u }) as ir.Expr,
      scale(1 + tol / 10),
      scale(1 - tol / 10),
    ];
    const moved = math
      ? wraps.map((wrap) => {
        const k: ir.Kernel = {
          ...kernel,
          body: rewrapped(kernel.body, wrap),
          ...(kernel.epilogue ? { epilogue: rewrapped(kernel.epilogue, wrap) } : {}),
        };
        const out = dtype === "float32" ? new Float32Array(n) : new Float64Array(n);
        const ck = compileKernel(k, dtype as DType);
        ck.run(inputs, out, ck.consts);
        return out;
      })
      : [];
    for (let i = 0; i < n; i++) {
      const a: number = got[i], e: number = js[i];
      if (close(a, e) || moved.some((m) => !close(m[i], e))) continue;
      assert.fail(`element ${i}: ${a}, the loops give ${e}; kernel ${JSON.stringify(kernel)}`);
    }
  },
);

Deno.test("wasm codegen: float32Exact picks the maps whose float32 lanes give the float64 path's values", () => {
  const x = ir.load(0, [1]), b = ir.load(1, [1]);
  const map = (body: ir.Expr): ir.Kernel => ({ shape: [10], inputs: 2, body });
  assert.ok(float32Exact(map(ir.unary("sigmoid", ir.binary("add", x, b))), true));
  assert.ok(float32Exact(map(ir.binary("mul", ir.unary("relu", x), b)), true));
  assert.ok(float32Exact(map(ir.binary("max", ir.unary("exp", x), ir.unary("tanh", b))), true));
  // Two roundings in a row, a constant that is no float32 number, a reduction: float64 lanes.
  assert.ok(!float32Exact(map(ir.binary("mul", ir.binary("add", x, b), b)), true));
  assert.ok(!float32Exact(map(ir.binary("mul", x, ir.constant(0.1))), false));
  assert.ok(!float32Exact(map(ir.binary("lt", ir.binary("add", x, b), b)), true));
  assert.ok(!float32Exact({ ...map(x), reduce: { op: "max", shape: [3] } }, true));
  // Generated float32 maps that qualify give the loops' values exactly (save math functions).
  let lanes4 = 0;
  for (let seed = 0; seed < 3000 && lanes4 < 60; seed++) {
    const { kernel, inputs } = genKernel(seed, "float32");
    const flat = ir.collapse(kernel);
    if (!float32Exact(flat, true) || wasmSupport(flat)) continue;
    let math = false;
    ir.walk(kernel.body, (e) => e.k === "unary" && MATH_OPS.has(e.op) && (math = true));
    if (math) continue;
    lanes4++;
    const got = runWasm(kernel, "float32", inputs)!;
    const js = new Float32Array(got.length);
    const c = compileKernel(kernel, "float32");
    c.run(inputs, js, c.consts);
    got.forEach((v, i) =>
      assert.ok(same(v, js[i]), `seed ${seed} element ${i}: ${v}, loops ${js[i]}`)
    );
  }
  assert.ok(lanes4 >= 60, `only ${lanes4} generated maps qualify`);
});
