/**
 * The WebAssembly SIMD layer's foundations: the module builder (LEB128, instruction encodings run
 * against JavaScript) and the vectorized exp/log/tanh/sigmoid against `Math.*` over the whole
 * float32 range (the error bounds of cpu/wasm/math.ts asserted). The generated kernels are tested
 * in tests/wasm_kernels_test.ts (float64's bits in tests/native_paths_test.ts), the arena and the
 * native backend on it in tests/wasm_arena_test.ts.
 */

import assert from "node:assert/strict";
import { MathFns, type MathOp, MAX_ULPS } from "../cpu/wasm/math.ts";
import { simdAvailable, sleb, uleb, WasmModule } from "../cpu/wasm/module.ts";

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
