/**
 * Throughput of the vectorized float32 exp, log, tanh and sigmoid of `cpu/wasm/math.ts`, inlined
 * into a loop over 2^20 values in one WebAssembly memory, as the generated float32 kernels use
 * them; and of the float64 map kernels `y = op(x)` over 2^20 values as the native backend runs
 * them: in WebAssembly (the op table's functions imported, cpu/wasm/imports.ts) and as
 * JavaScript loops. Divide a measured time by 2^20 for nanoseconds per value (figures in
 * bench/README.md).
 *
 * ```sh
 * deno bench -A bench/math_bench.ts
 * ```
 */
import { WasmModule } from "../cpu/wasm/module.ts";
import { MathFns, type MathOp } from "../cpu/wasm/math.ts";
import { compileWasmKernel } from "../cpu/wasm/codegen.ts";
import { compileKernel } from "../cpu/compile.ts";
import * as ir from "../kernel/ir.ts";

const N = 1 << 20;
const OPS = ["exp", "log", "tanh", "sigmoid"] as const;

/** A function applying `op` in place to the N float32 values at the start of `memory`. */
function kernel(op: MathOp, memory: WebAssembly.Memory): () => void {
  const m = new WasmModule().importMemory("env", "memory");
  const lib = new MathFns(m);
  m.func(["i32", "i32"], [], (f) => {
    f.block().loop().get(0).get(1).op("i32.ge_u").brIf(1);
    f.get(0).get(0).mem("v128.load");
    lib.inline(f, op);
    f.mem("v128.store");
    f.get(0).i32(16).op("i32.add").set(0).br(0).end().end();
  }, "run");
  const run = new WebAssembly.Instance(new WebAssembly.Module(m.bytes()), { env: { memory } })
    .exports.run as (from: number, to: number) => void;
  return () => run(0, N * 4);
}

/** Values of [-10, 10) (exp's and tanh's interesting range; log sees their magnitudes). */
function fill(a: Float32Array | Float64Array, op: MathOp): void {
  for (let i = 0; i < a.length; i++) {
    const v = ((i * 7919) % 2000) / 100 - 10;
    a[i] = op === "log" ? Math.abs(v) + 1e-3 : v;
  }
}

for (const op of OPS) {
  const memory = new WebAssembly.Memory({ initial: 4 * N / 65536 + 1 });
  const a = new Float32Array(memory.buffer, 0, N);
  const run = kernel(op, memory);
  Deno.bench({
    name: `${op} on f32x4, 2^20 values`,
    group: "math f32x4",
    fn(b) {
      fill(a, op);
      b.start();
      run();
      b.end();
    },
  });
}

for (const op of OPS) {
  const k: ir.Kernel = { shape: [N], inputs: 1, body: ir.unary(op, ir.load(0, [1])) };
  const memory = new WebAssembly.Memory({ initial: 16 * N / 65536 + 1 });
  const x = new Float64Array(memory.buffer, 0, N), y = new Float64Array(memory.buffer, 8 * N, N);
  const w = compileWasmKernel(k, "float64", memory)!;
  const js = compileKernel(k, "float64");
  for (
    const [path, run] of [
      ["WebAssembly", () => w.run([0], 8 * N, w.consts)],
      ["JavaScript loops", () => js.run([x], y, js.consts)],
    ] as const
  ) {
    Deno.bench({
      name: `${op} float64 kernel, ${path}, 2^20 values`,
      group: `float64 ${op}`,
      fn(b) {
        fill(x, op);
        b.start();
        run();
        b.end();
      },
    });
  }
}
