/**
 * The WebAssembly SIMD layer: the module builder (LEB128, instruction encodings run against
 * JavaScript), the vectorized exp/log/tanh/sigmoid against `Math.*` over the whole float32 range
 * (the error bounds of wasm/math.ts asserted), generated kernels compiled to WebAssembly against
 * the JavaScript loops of cpu/compile.ts and the reference interpreter, the memory arena (size
 * classes, reuse, growth in the middle of work, trim) and BLAS through Deno FFI on arena views.
 */
import assert from "node:assert/strict";
import type { DType, TypedArray } from "../backend.ts";
import { BINARY_OPS, UNARY_OPS } from "../backend.ts";
import * as ir from "../kernel/ir.ts";
import { compileKernel } from "../cpu/compile.ts";
import { compileWasmKernel, wasmSupport } from "../wasm/codegen.ts";
import { MathFns, type MathOp, MAX_ULPS } from "../wasm/math.ts";
import { simdAvailable, sleb, uleb, WasmModule } from "../wasm/module.ts";
import { fc, property } from "./property.ts";
import { Random } from "../random.ts";

// --- the module builder ------------------------------------------------------------------------

Deno.test("wasm module: LEB128 encodings", () => {
  assert.deepEqual(uleb(0), [0]);
  assert.deepEqual(uleb(127), [127]);
  assert.deepEqual(uleb(128), [0x80, 1]);
  assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(uleb(2 ** 32 - 1), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.deepEqual(sleb(0), [0]);
  assert.deepEqual(sleb(-1), [0x7f]);
  assert.deepEqual(sleb(63), [63]);
  assert.deepEqual(sleb(64), [0xc0, 0]);
  assert.deepEqual(sleb(-64), [0x40]);
  assert.deepEqual(sleb(-65), [0xbf, 0x7f]);
  assert.deepEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
  assert.throws(() => uleb(-1), RangeError);
});

Deno.test("wasm module: SIMD is available here, and a module with an import, locals and loops runs", () => {
  assert.ok(simdAvailable(), "WebAssembly SIMD in Deno");
  // sum of i for i < n, with a loop and a local.
  const m = new WasmModule();
  m.func(["i32"], ["i32"], (f) => {
    const i = f.local("i32"), s = f.local("i32");
    f.block().loop().get(i).get(0).op("i32.ge_s").brIf(1);
    f.get(s).get(i).op("i32.add").set(s).get(i).i32(1).op("i32.add").set(i).br(0).end().end();
    f.get(s);
  }, "tri");
  const tri = new WebAssembly.Instance(new WebAssembly.Module(m.bytes())).exports.tri as (
    n: number,
  ) => number;
  assert.equal(tri(100), 4950);
  assert.equal(tri(0), 0);
});

/** Runs a lane-wise binary instruction on f32x4 or f64x2 data from memory. */
function laneOp(op: string, lanes: "f32x4" | "f64x2", a: number[], b: number[]): number[] {
  const m = new WasmModule().importMemory("env", "memory");
  m.func([], [], (f) => {
    f.i32(32).i32(0).mem("v128.load").i32(16).mem("v128.load");
    f.op(op as never).mem("v128.store");
  }, "k");
  const memory = new WebAssembly.Memory({ initial: 1 });
  const T = lanes === "f32x4" ? Float32Array : Float64Array;
  const v = new T(memory.buffer as ArrayBuffer, 0, 48 / T.BYTES_PER_ELEMENT);
  const n = 16 / T.BYTES_PER_ELEMENT;
  v.set(a, 0);
  v.set(b, n);
  (new WebAssembly.Instance(new WebAssembly.Module(m.bytes()), { env: { memory } }).exports
    .k as () => void)();
  // Comparison masks read as integers: -1 (all bits) or 0.
  if (/\.(eq|ne|lt|gt|le|ge)$/.test(op)) {
    const I = lanes === "f32x4" ? Int32Array : BigInt64Array;
    return [...new I(memory.buffer as ArrayBuffer, 32, n)].map(Number);
  }
  return [...v.slice(2 * n, 3 * n)];
}

Deno.test("wasm module: the float instruction encodings compute what their names say", () => {
  const a = [1.5, -2, 0, NaN], b = [0.25, 3, -0, 1];
  const cases: [string, (x: number, y: number) => number][] = [
    ["add", (x, y) => x + y],
    ["sub", (x, y) => x - y],
    ["mul", (x, y) => x * y],
    ["div", (x, y) => x / y],
    ["min", (x, y) => (x !== x || y !== y ? NaN : Math.min(x, y))],
    ["max", (x, y) => (x !== x || y !== y ? NaN : Math.max(x, y))],
    ["eq", (x, y) => (x === y ? -1 : 0)],
    ["ne", (x, y) => (x !== y ? -1 : 0)],
    ["lt", (x, y) => (x < y ? -1 : 0)],
    ["gt", (x, y) => (x > y ? -1 : 0)],
    ["le", (x, y) => (x <= y ? -1 : 0)],
    ["ge", (x, y) => (x >= y ? -1 : 0)],
  ];
  for (const lanes of ["f32x4", "f64x2"] as const) {
    const n = lanes === "f32x4" ? 4 : 2;
    for (const off of [0, 2]) {
      const x = a.slice(off, off + n), y = b.slice(off, off + n);
      if (n === 4 && off === 2) continue;
      for (const [op, fn] of cases) {
        const got = laneOp(`${lanes}.${op}`, lanes, x, y);
        const round = lanes === "f32x4" ? Math.fround : (v: number) => v;
        const want = x.map((v, i) => round(fn(v, y[i])));
        assert.deepEqual(got, want, `${lanes}.${op} of ${x}, ${y}`);
      }
    }
  }
});

// --- vectorized math against Math.* -----------------------------------------------------------

const REF: Record<MathOp, (x: number) => number> = {
  exp: Math.exp,
  log: Math.log,
  tanh: Math.tanh,
  sigmoid: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
};

/** The float32 ulp at the magnitude of `e` (the smallest subnormal below 2^-126). */
function ulp32(e: number): number {
  const a = Math.abs(e);
  if (a < 2 ** -126) return 2 ** -149;
  let p = Math.floor(Math.log2(a));
  if (2 ** p > a) p--;
  if (2 ** (p + 1) <= a) p++;
  return 2 ** (p - 23);
}

/** An exported `f(from, to)` applying `op` to the f32 values at [from, to) in place. */
function mathKernel(op: MathOp, memory: WebAssembly.Memory): (from: number, to: number) => void {
  const m = new WasmModule().importMemory("env", "memory");
  const lib = new MathFns(m);
  m.func(["i32", "i32"], [], (f) => {
    f.block().loop().get(0).get(1).op("i32.ge_u").brIf(1);
    f.get(0).get(0).mem("v128.load").call(lib.index(op)).mem("v128.store");
    f.get(0).i32(16).op("i32.add").set(0).br(0).end().end();
  }, "run");
  return new WebAssembly.Instance(new WebAssembly.Module(m.bytes()), { env: { memory } })
    .exports.run as (a: number, b: number) => void;
}

/** Special inputs: zeros, infinities, NaN, subnormals, and each function's thresholds. */
const SPECIAL = [
  0,
  -0,
  Infinity,
  -Infinity,
  NaN,
  2 ** -149,
  -(2 ** -149),
  2 ** -126,
  2 ** -126 - 2 ** -149,
  3.4028234663852886e38,
  -3.4028234663852886e38,
  1,
  -1,
  88.72283172607422, // the largest x with exp(x) finite in float32
  88.72284,
  89,
  -87.33654,
  -103.27893,
  -103.97208,
  -104,
  -104.5,
  0.625,
  -0.625,
  0.6249999,
  9.01,
  -9.01,
  1e-30,
  -1e-30,
  Math.SQRT1_2,
  Math.SQRT2,
];

Deno.test("wasm math: exp, log, tanh, sigmoid within their stated ulps over the float32 range", () => {
  const memory = new WebAssembly.Memory({ initial: 256 });
  const N = 1 << 22;
  const bits = new Uint32Array(memory.buffer, 0, N);
  const vals = new Float32Array(memory.buffer, 0, N);
  // Every STEPth bit pattern of all 2^32 (both signs, every exponent), then the special values.
  const STEP = 331;
  const total = Math.ceil(2 ** 32 / STEP);
  for (const op of Object.keys(REF) as MathOp[]) {
    const run = mathKernel(op, memory);
    let worst = 0, at = 0, count = 0;
    const check = (xs: Float32Array, ys: Float32Array) => {
      for (let i = 0; i < xs.length; i++) {
        const x = xs[i], y = ys[i], e = REF[op](x);
        count++;
        if (e !== e || y !== y) {
          if ((e !== e) !== (y !== y)) assert.fail(`${op}(${x}) = ${y}, expected ${e}`);
          continue;
        }
        const fe = Math.fround(e);
        if (!Number.isFinite(fe) || !Number.isFinite(y)) {
          if (fe !== y) assert.fail(`${op}(${x}) = ${y}, expected ${fe}`);
          continue;
        }
        if (Object.is(fe, -0) !== Object.is(y, -0) && fe === 0 && x === 0) {
          assert.fail(`${op}(${x}) = ${y}, expected ${fe} (the sign of zero)`);
        }
        const err = Math.abs(y - e) / ulp32(e);
        if (err > worst) (worst = err, at = x);
      }
    };
    for (let start = 0; start < total; start += N) {
      const n = Math.min(N, total - start);
      for (let i = 0; i < n; i++) bits[i] = ((start + i) * STEP) >>> 0;
      const xs = vals.slice(0, n);
      run(0, Math.ceil(n / 4) * 16);
      check(xs, vals.subarray(0, n));
    }
    const xs = Float32Array.from(SPECIAL);
    vals.set(xs);
    run(0, Math.ceil(xs.length / 4) * 16);
    check(xs, vals.subarray(0, xs.length));
    assert.ok(count > 1.2e7);
    console.log(`${op}: at most ${worst.toFixed(3)} ulps (at x = ${at}) over ${count} inputs`);
    assert.ok(
      worst <= MAX_ULPS[op],
      `${op}: ${worst.toFixed(3)} ulps at x = ${at} (stated bound ${MAX_ULPS[op]})`,
    );
  }
});

// --- generated kernels: WebAssembly against the JavaScript loops and the interpreter ------------

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

const MATH_OPS = new Set(["exp", "log", "tanh", "sigmoid"]);

property(
  "a generated kernel in WebAssembly gives the JavaScript loops' values (exactly, save partial sums' order and float32 exp/log/tanh/sigmoid)",
  fc.tuple(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom("float32", "float64")),
  500,
  ([seed, dtype]) => {
    const { kernel, inputs } = genKernel(seed, dtype as DType);
    const got = runWasm(kernel, dtype as DType, inputs);
    const why = wasmSupport(ir.collapse(kernel), dtype as DType);
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
    const tol = math ? 1e-5 : sum ? 1e-12 : 0;
    for (let i = 0; i < n; i++) {
      const a: number = got[i], e: number = js[i];
      if (same(a, e)) continue;
      if (
        tol > 0 && Number.isFinite(a) && Number.isFinite(e) &&
        Math.abs(a - e) <= tol * Math.max(1, Math.abs(e))
      ) continue;
      assert.fail(`element ${i}: ${a}, the loops give ${e}; kernel ${JSON.stringify(kernel)}`);
    }
  },
);
