/**
 * The WebAssembly SIMD layer: the module builder (LEB128, instruction encodings run against
 * JavaScript), the vectorized exp/log/tanh/sigmoid against `Math.*` over the whole float32 range
 * (the error bounds of wasm/math.ts asserted), generated kernels compiled to WebAssembly against
 * the JavaScript loops of cpu/compile.ts and the reference interpreter, the memory arena (size
 * classes, reuse, growth in the middle of work, trim) and BLAS through Deno FFI on arena views.
 */
import assert from "node:assert/strict";
import type { Backend } from "../kernel/backend.ts";
import type { DType, TypedArray } from "../kernel/shape.ts";
import { BINARY_OPS, UNARY_OPS } from "../kernel/ir.ts";
import * as ir from "../kernel/ir.ts";
import { compileKernel } from "../cpu/compile.ts";
import { compileWasmKernel, float32Exact, wasmSupport } from "../wasm/codegen.ts";
import { MathFns, type MathOp, MAX_ULPS, MAX_ULPS_64 } from "../wasm/math.ts";
import { Arena, ArenaBuffer, sizeClass } from "../wasm/arena.ts";
import { NativeBackend } from "../cpu/native.ts";
import { assertClose, cpu, native } from "./harness.ts";
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
  softplus: (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))),
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

/** Float64 ulps at the magnitude of `e` (the smallest subnormal below 2^-1022). */
function ulp64(e: number): number {
  const a = Math.abs(e);
  if (a < 2 ** -1022) return 2 ** -1074;
  let p = Math.floor(Math.log2(a));
  if (2 ** p > a) p--;
  if (2 ** (p + 1) <= a) p++;
  return 2 ** (p - 52);
}

Deno.test("wasm math: float64 exp, log, tanh, sigmoid within their stated ulps of Math.*", () => {
  const memory = new WebAssembly.Memory({ initial: 512 });
  const m = new WasmModule().importMemory("env", "memory");
  const lib = new MathFns(m, "f64x2");
  for (const op of Object.keys(REF) as MathOp[]) {
    m.func(["i32", "i32"], [], (f) => {
      f.block().loop().get(0).get(1).op("i32.ge_u").brIf(1);
      f.get(0).get(0).mem("v128.load").call(lib.index(op)).mem("v128.store");
      f.get(0).i32(16).op("i32.add").set(0).br(0).end().end();
    }, op);
  }
  const fns = new WebAssembly.Instance(new WebAssembly.Module(m.bytes()), { env: { memory } })
    .exports as Record<MathOp, (a: number, b: number) => void>;
  const N = 1 << 20;
  const bits = new BigUint64Array(memory.buffer as ArrayBuffer, 0, N);
  const vals = new Float64Array(memory.buffer as ArrayBuffer, 0, N);
  const rng = new Random(64);
  const u64 = () => (BigInt(rng.nextU32()) << 32n) | BigInt(rng.nextU32());
  const specials = [
    ...SPECIAL,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
    Number.MIN_VALUE,
    -Number.MIN_VALUE,
    2 ** -1022,
    709.782712893384, // the largest x with exp(x) finite
    709.7827128933841,
    -745.1332191019411, // exp rounds to the smallest subnormal
    -745.1332191019412,
    -746,
    2 ** -55,
    22,
  ];
  for (const op of Object.keys(REF) as MathOp[]) {
    let worst = 0, at = 0;
    // Random bit patterns (every exponent), random points of [-750, 750] and [-2, 2], specials.
    for (let pass = 0; pass < 4; pass++) {
      let n = N;
      if (pass === 0) { for (let i = 0; i < N; i++) bits[i] = u64(); }
      else if (pass === 1) { for (let i = 0; i < N; i++) vals[i] = rng.range(-750, 750); }
      else if (pass === 2) { for (let i = 0; i < N; i++) vals[i] = rng.range(-2, 2); }
      else (vals.set(specials), n = specials.length + (specials.length % 2));
      const xs = vals.slice(0, n);
      fns[op](0, n * 8);
      for (let i = 0; i < n; i++) {
        const x = xs[i], y = vals[i], e = REF[op](x);
        if (e !== e || y !== y) {
          if ((e !== e) !== (y !== y)) assert.fail(`${op}(${x}) = ${y}, expected ${e}`);
          continue;
        }
        if (!Number.isFinite(e) || !Number.isFinite(y) || e === 0) {
          if (!Object.is(e, y)) assert.fail(`${op}(${x}) = ${y}, expected ${e}`);
          continue;
        }
        const err = Math.abs(y - e) / ulp64(e);
        if (err > worst) (worst = err, at = x);
      }
    }
    console.log(`${op} (float64): at most ${worst} ulps from the reference (at x = ${at})`);
    assert.ok(worst <= MAX_ULPS_64[op], `${op}: ${worst} ulps at x = ${at}`);
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

const MATH_OPS = new Set(["exp", "log", "tanh", "sigmoid", "softplus"]);

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

// --- the arena ---------------------------------------------------------------------------------

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
