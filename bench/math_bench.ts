/**
 * Throughput of the vectorized exp, log, tanh and sigmoid of `cpu/wasm/math.ts`, inlined into a
 * loop over 2^20 values in one WebAssembly memory, as the generated kernels use them; beside
 * them, `Math.exp` in a JavaScript loop over the same values. Divide a measured time by 2^20 for
 * nanoseconds per value (figures in bench/README.md).
 *
 * ```sh
 * deno bench -A bench/math_bench.ts
 * ```
 */
import { WasmModule } from "../cpu/wasm/module.ts";
import { type Lanes, MathFns, type MathOp } from "../cpu/wasm/math.ts";

const N = 1 << 20;

/** A function applying `op` in place to the N values at the start of `memory`. */
function kernel(op: MathOp, lanes: Lanes, memory: WebAssembly.Memory): () => void {
  const m = new WasmModule().importMemory("env", "memory");
  const lib = new MathFns(m, lanes);
  m.func(["i32", "i32"], [], (f) => {
    f.block().loop().get(0).get(1).op("i32.ge_u").brIf(1);
    f.get(0).get(0).mem("v128.load");
    lib.inline(f, op);
    f.mem("v128.store");
    f.get(0).i32(16).op("i32.add").set(0).br(0).end().end();
  }, "run");
  const run = new WebAssembly.Instance(new WebAssembly.Module(m.bytes()), { env: { memory } })
    .exports.run as (from: number, to: number) => void;
  const bytes = N * (lanes === "f32x4" ? 4 : 8);
  return () => run(0, bytes);
}

/** Values of [-10, 10) (exp's and tanh's interesting range; log sees their magnitudes). */
function fill(a: Float32Array | Float64Array, op: MathOp): void {
  for (let i = 0; i < a.length; i++) {
    const v = ((i * 7919) % 2000) / 100 - 10;
    a[i] = op === "log" ? Math.abs(v) + 1e-3 : v;
  }
}

for (const lanes of ["f32x4", "f64x2"] as const) {
  for (const op of ["exp", "log", "tanh", "sigmoid"] as const) {
    const memory = new WebAssembly.Memory({ initial: 8 * N / 65536 + 1 });
    const a = lanes === "f32x4"
      ? new Float32Array(memory.buffer, 0, N)
      : new Float64Array(memory.buffer, 0, N);
    const run = kernel(op, lanes, memory);
    Deno.bench({
      name: `${op} on ${lanes}, 2^20 values`,
      group: `math ${lanes}`,
      fn(b) {
        fill(a, op);
        b.start();
        run();
        b.end();
      },
    });
  }
}

const js = new Float32Array(N);
Deno.bench({
  name: "Math.exp in a JavaScript loop, 2^20 float32 values",
  group: "math f32x4",
  fn(b) {
    fill(js, "exp");
    b.start();
    for (let i = 0; i < N; i++) js[i] = Math.exp(js[i]);
    b.end();
  },
});
