/**
 * The backend entry point (`sgn/backend` in deno.json's exports): the backend classes and their
 * kernel-level types, for work below the tensor API: conformance tests, benchmarks, a backend
 * of one's own. Most programs need only `init()` from the main module.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./backends.ts";
 * const cpu = new CpuBackend();
 * const a = cpu.upload(new Float64Array([1, 2, 3, 4]));
 * console.log(await cpu.read(cpu.matmul(a, a, { m: 2, k: 2, n: 2 }))); // [7, 10, 15, 22]
 * ```
 *
 * @module
 */

export type {
  Backend,
  Conv2dSpec,
  DeviceBuffer,
  Epilogue,
  MatmulCall,
  MatmulSpec,
  Pool2dSpec,
  Prologue,
} from "./kernel/backend.ts";
export { isPrologue } from "./kernel/backend.ts";

export {
  BINARY,
  BINARY_OPS,
  type BinaryOp,
  type Expr,
  type Kernel,
  type KernelOutput,
  type OpText,
  type ReduceOp,
  UNARY,
  UNARY_OPS,
  type UnaryOp,
} from "./kernel/ir.ts";

export type { DType, TypedArray } from "./kernel/shape.ts";
export { CpuBackend, type CpuBuffer } from "./cpu/oracle.ts";
export { NativeBackend, type NativeOptions } from "./cpu/native.ts";
export { Arena, ArenaBuffer } from "./cpu/wasm/arena.ts";
export { type Blas, type BlasResult, loadBlas } from "./cpu/blas.ts";
export {
  type ConvKind,
  type ConvLayout,
  convLayout,
  type Dnnl,
  type DnnlResult,
  loadDnnl,
} from "./cpu/dnnl.ts";
export { type Schedule, WebGpuBackend } from "./wgsl/webgpu.ts";
export { GpuBuffer, GpuRuntime, Params, type RuntimeStats } from "./wgsl/runtime.ts";
export { type Lazy, lazyStats, type Recipe } from "./kernel/lazy.ts";
export { type Recipe as RecipeOf, type Source as RecipeSource } from "./kernel/recipe.ts";
export { type Routine, type RoutineOp, ROUTINES, runRoutine } from "./kernel/routines.ts";
export * as kernels from "./kernel/kernels.ts";
export {
  type AutoPlace,
  BACKEND_CHOICES,
  BACKEND_NAMES,
  type BackendClasses,
  type BackendName,
  type BackendOf,
  type BackendRow,
  BACKENDS,
  checkBackendChoice,
  findBackend,
  type Found,
} from "./autodiff/device.ts";
