/**
 * How the native CPU backend (cpu/native.ts) runs a kernel of the IR: in WebAssembly SIMD
 * (cpu/wasm/codegen.ts) where the kernel has a form there and every buffer is in the arena,
 * else as compiled JavaScript loops (cpu/compile.ts).
 *
 * A kernel of several outputs (kernel/ir.ts, `Kernel.more`) runs in the arena one output after
 * the other, each as a kernel of its own would (the same function, so the same numbers as
 * before outputs were joined); on the JavaScript heap in one pass of the loops, whose sums keep
 * each output's order.
 *
 * @module
 */

import type { DType } from "../kernel/shape.ts";
import { type Kernel, singleOutputs } from "../kernel/ir.ts";
import { compileKernel } from "./compile.ts";
import type { CpuBuffer } from "./oracle.ts";
import { type Arena, ArenaBuffer } from "./wasm/arena.ts";
import { compileWasmKernel } from "./wasm/codegen.ts";

/** Kernels run by each lowering (tests read them through `NativeBackend.kernelRuns`). */
export interface KernelRuns {
  wasm: number;
  js: number;
}

/**
 * Runs `kernel` over `inputs` into `out` (sized for all its outputs), counting the runs of each
 * lowering in `runs`.
 */
export function runNativeKernel(
  kernel: Kernel,
  inputs: readonly CpuBuffer[],
  out: CpuBuffer,
  dtype: DType,
  arena: Arena | undefined,
  runs: KernelRuns,
): void {
  const datas = inputs.map((b) => b.data);
  if (!arena || !(out instanceof ArenaBuffer) || !inputs.every((b) => b instanceof ArenaBuffer)) {
    runs.js++;
    const { run, consts } = compileKernel(kernel, dtype);
    run(datas, out.data, consts);
    return;
  }
  const ptrs = inputs.map((b) => (b as ArenaBuffer).ptr);
  const parts = kernel.more ? singleOutputs(kernel) : [kernel];
  const n = out.size / parts.length;
  parts.forEach((part, j) => {
    const w = compileWasmKernel(part, dtype, arena.memory);
    if (w) {
      runs.wasm++;
      w.run(ptrs, out.ptr + j * n * out.data.BYTES_PER_ELEMENT, w.consts);
      return;
    }
    runs.js++;
    const { run, consts } = compileKernel(part, dtype);
    run(datas, out.data.subarray(j * n, (j + 1) * n), consts);
  });
}
