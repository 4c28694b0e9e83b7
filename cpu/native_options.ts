/**
 * What the native CPU backend (cpu/native.ts) can be asked for: {@link NativeOptions}, and
 * whether its WebAssembly kernels run, or the one-line reason they do not.
 *
 * @module
 */

import { env } from "./ffi.ts";
import { simdAvailable } from "./wasm/module.ts";

/** Options of {@link NativeBackend.create}. */
export interface NativeOptions {
  /**
   * WebAssembly SIMD kernels over one memory arena (default: where WebAssembly SIMD is there,
   * unless `SGN_WASM=none`); false: the compiled JavaScript loops on JavaScript-heap buffers.
   */
  wasm?: boolean;
  /** The arena's initial size in bytes (it grows as needed; default 16 MiB). */
  arenaBytes?: number;
  /**
   * The arena's largest size in bytes (default 4 GiB, the most a WebAssembly memory holds);
   * buffers beyond it live on the JavaScript heap, and kernels reading them run as loops.
   */
  arenaMaxBytes?: number;
  /**
   * oneDNN for float32 convolutions and max pooling (default: where the library loads, unless
   * `SGN_DNNL=none`); false: im2col + BLAS and the JavaScript argmax.
   */
  dnnl?: boolean;
}

/** Whether the WebAssembly kernels are wanted and possible, or the one-line reason not. */
export function wasmChoice(opt: boolean | undefined): { on: boolean; why: string } {
  if (opt === false) return { on: false, why: "create({ wasm: false })" };
  if (opt === undefined && env("SGN_WASM") === "none") return { on: false, why: "SGN_WASM=none" };
  if (!simdAvailable()) return { on: false, why: "no WebAssembly SIMD here" };
  return { on: true, why: "" };
}
