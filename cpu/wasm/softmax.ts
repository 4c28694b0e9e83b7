/**
 * Softmax and log-softmax along the rows of a float32 matrix in WebAssembly SIMD, in place in an
 * arena's memory: per row the maximum (NaN wins), exp(x - max) with `cpu/wasm/math.ts`'s exp, their
 * sum accumulated in float64 (as the JavaScript loops do), then exp / sum, or x - max - log(sum)
 * with `cpu/wasm/math.ts`'s log. Each step rounds to float32 (the JavaScript loops keep float64 until
 * the store): x - max rounds, so exp(x - max) is off by up to |x - max| 2^-24 relative on top of
 * exp's own ulp (about 6e-7 at |x - max| = 10).
 *
 * @example
 * ```ts
 * import { wasmSoftmax } from "./softmax.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const x = new Float32Array(memory.buffer, 0, 4);
 * x.set([1, 2, 3, 4]);
 * wasmSoftmax(memory)(0, 16, 1, 4, 0);
 * console.log(new Float32Array(memory.buffer, 16, 4)); // sums to 1
 * ```
 *
 * @module
 */

import { MathFns } from "./math.ts";
import { WasmModule } from "./module.ts";

/** `(in, out, rows, cols, log)`: byte addresses of the input and output; log 1 or 0. */
export type SoftmaxFn = (
  input: number,
  out: number,
  rows: number,
  cols: number,
  log: number,
) => void;

const compiled: { module?: WebAssembly.Module } = {};
const instances = new WeakMap<WebAssembly.Memory, SoftmaxFn>();

/** The softmax function over `memory` (compiled once, instantiated once per memory). */
export function wasmSoftmax(memory: WebAssembly.Memory): SoftmaxFn {
  let fn = instances.get(memory);
  if (fn) return fn;
  compiled.module ??= new WebAssembly.Module(softmaxModule());
  fn = new WebAssembly.Instance(compiled.module, { env: { memory } }).exports.softmax as SoftmaxFn;
  instances.set(memory, fn);
  return fn;
}

function softmaxModule(): Uint8Array<ArrayBuffer> {
  const m = new WasmModule().importMemory("env", "memory");
  const lib = new MathFns(m);
  m.func(["i32", "i32", "i32", "i32", "i32"], [], (f) => {
    const [inp, out, rows, cols, log] = [0, 1, 2, 3, 4];
    const r = f.local("i32"), k = f.local("i32"), mx = f.local("v128"), e = f.local("v128");
    const lo = f.local("v128"), hi = f.local("v128"), tail = f.local("f64");
    const s = f.local("v128"), cv = f.local("i32"), es = f.local("f32");
    const sum = f.local("f64");
    const exp = lib.index("exp"), ln = lib.index("log");
    // cv: the number of columns in whole vectors.
    f.get(cols).i32(-4).op("i32.and").set(cv);
    /** for (k = 0 or on; k < limit; k += step) body, with the element address on the stack. */
    const cols4 = (limit: number, step: number, body: () => void, from0 = true) => {
      if (from0) f.i32(0).set(k);
      f.block().loop().get(k).get(limit).op("i32.ge_u").brIf(1);
      body();
      f.get(k).i32(step).op("i32.add").set(k).br(0).end().end();
    };
    const at = (base: number) => f.get(base).get(k).i32(2).op("i32.shl").op("i32.add");
    f.block().loop().get(r).get(rows).op("i32.ge_u").brIf(1);
    // The maximum (NaN wins: min/max propagate it).
    f.f32x4(-Infinity).set(mx);
    cols4(cv, 4, () => {
      f.get(mx);
      at(inp).mem("v128.load");
      f.op("f32x4.max").set(mx);
    });
    f.get(mx).lane("f32x4.extract_lane", 0).get(mx).lane("f32x4.extract_lane", 1).op("f32.max");
    f.get(mx).lane("f32x4.extract_lane", 2).op("f32.max");
    f.get(mx).lane("f32x4.extract_lane", 3).op("f32.max").set(es);
    cols4(cols, 1, () => {
      f.get(es);
      at(inp).mem("f32.load").op("f32.max").set(es);
    }, false);
    f.get(es).op("f32x4.splat").set(mx);
    // exp(x - max) into out, summed in float64.
    f.f64x2(0).set(lo).f64x2(0).set(hi).f64(0).set(tail);
    cols4(cv, 4, () => {
      at(out);
      at(inp).mem("v128.load").get(mx).op("f32x4.sub").call(exp).tee(e).mem("v128.store");
      f.get(lo).get(e).op("f64x2.promote_low_f32x4").op("f64x2.add").set(lo);
      f.get(hi).get(e).get(e).shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
      f.op("f64x2.promote_low_f32x4").op("f64x2.add").set(hi);
    });
    cols4(cols, 1, () => {
      at(out);
      at(inp).mem("f32.load").op("f32x4.splat").get(mx).op("f32x4.sub").call(exp);
      f.lane("f32x4.extract_lane", 0).tee(es).mem("f32.store");
      f.get(es).op("f64.promote_f32").get(tail).op("f64.add").set(tail);
    }, false);
    // The sum, as float32 lanes.
    f.get(lo).lane("f64x2.extract_lane", 0).get(lo).lane("f64x2.extract_lane", 1).op("f64.add");
    f.get(hi).lane("f64x2.extract_lane", 0).get(hi).lane("f64x2.extract_lane", 1).op("f64.add");
    f.op("f64.add").get(tail).op("f64.add").tee(sum);
    f.op("f32.demote_f64").op("f32x4.splat").set(s);
    f.get(log).if();
    {
      // x - max - log(sum), with log(sum) = log(h) + (sum - h) / h for h = sum in float32 (the
      // sum is near 1 when one value dominates: its float32 rounding would be most of the log).
      f.get(s).call(ln).lane("f32x4.extract_lane", 0).op("f64.promote_f32");
      f.get(sum).get(s).lane("f32x4.extract_lane", 0).op("f64.promote_f32").op("f64.sub");
      f.get(s).lane("f32x4.extract_lane", 0).op("f64.promote_f32").op("f64.div").op("f64.add");
      f.op("f32.demote_f64").op("f32x4.splat").set(s);
      cols4(cv, 4, () => {
        at(out);
        at(inp).mem("v128.load").get(mx).op("f32x4.sub").get(s).op("f32x4.sub");
        f.mem("v128.store");
      });
      cols4(cols, 1, () => {
        at(out);
        at(inp).mem("f32.load").get(mx).lane("f32x4.extract_lane", 0).op("f32.sub");
        f.get(s).lane("f32x4.extract_lane", 0).op("f32.sub").mem("f32.store");
      }, false);
    }
    f.op("else");
    {
      // exp / sum
      cols4(cv, 4, () => {
        at(out);
        at(out).mem("v128.load").get(s).op("f32x4.div").mem("v128.store");
      });
      cols4(cols, 1, () => {
        at(out);
        at(out).mem("f32.load").get(s).lane("f32x4.extract_lane", 0).op("f32.div");
        f.mem("f32.store");
      }, false);
    }
    f.end();
    // The next row.
    f.get(inp).get(cols).i32(2).op("i32.shl").op("i32.add").set(inp);
    f.get(out).get(cols).i32(2).op("i32.shl").op("i32.add").set(out);
    f.get(r).i32(1).op("i32.add").set(r).br(0).end().end();
  }, "softmax");
  return m.bytes();
}
