/**
 * Choosing the backend that new tensors live on. "auto" takes a hardware GPU through WebGPU when
 * there is one; on a machine whose only adapter is a software rasterizer (lavapipe, llvmpipe,
 * SwiftShader) or that has none, the native CPU backend (BLAS through FFI) when it loads; else
 * whatever exists, the plain TypeScript backend last. One line says which backend was chosen and
 * why. `SGN_BACKEND` (`webgpu`, `native`, `cpu` or `auto`) or {@link init}'s option name a
 * backend explicitly and always win.
 *
 * @module
 */

import type { Backend } from "../kernel/backend.ts";

import type { DType } from "../kernel/shape.ts";

import { SgnError, showValue } from "../errors.ts";
import { CpuBackend } from "../cpu/oracle.ts";
import { NativeBackend } from "../cpu/native.ts";
import { WebGpuBackend } from "../wgsl/webgpu.ts";

/** Which backend {@link init} should select. */
export type BackendChoice = "auto" | "webgpu" | "native" | "cpu";

/** The accepted values of `SGN_BACKEND` and `--backend`. */
export const BACKEND_CHOICES: readonly BackendChoice[] = ["auto", "webgpu", "native", "cpu"];

/** Options of {@link init}. */
export interface InitOptions {
  /** Overrides `SGN_BACKEND`; default "auto". */
  backend?: BackendChoice;
  /**
   * Receives the one line that says which backend "auto" chose and why (the library itself
   * never prints; the command line prints it). {@link backendNotice} keeps the last one.
   */
  onNotice?: (message: string) => void;
  /**
   * The element type the caller will compute in; "float64" rules out WebGPU (float32 only):
   * "auto" then picks the native CPU backend, else the plain TypeScript one. Default "float32".
   */
  dtype?: DType;
}

let current: Backend | undefined;
let notice: string | undefined;

/**
 * The line that says which backend the last "auto" choice of {@link init} took and why, or
 * undefined when no auto choice was made (a backend named explicitly needs no reason).
 *
 * @example
 * ```ts
 * import { backendNotice, init } from "./device.ts";
 * await init({ backend: "cpu" });
 * console.log(backendNotice() ?? "chosen explicitly");
 * ```
 */
export function backendNotice(): string | undefined {
  return notice;
}
let cpu: CpuBackend | undefined;
let native: ReturnType<typeof NativeBackend.create> | undefined;
let gpu: Promise<WebGpuBackend | undefined> | undefined;

/** The process-wide plain TypeScript backend. */
export function cpuBackend(): CpuBackend {
  return (cpu ??= new CpuBackend());
}

/**
 * The process-wide native CPU backend, or the one-line reason it is unavailable (no FFI
 * permission, no BLAS library).
 */
export function nativeBackend(): ReturnType<typeof NativeBackend.create> {
  return (native ??= NativeBackend.create());
}

/** The process-wide WebGPU backend (the device is requested once), or undefined without one. */
export function webgpuBackend(): Promise<WebGpuBackend | undefined> {
  return (gpu ??= WebGpuBackend.create());
}

/** Reads `SGN_BACKEND`; undefined when unset or unreadable. */
export function envBackendChoice(): BackendChoice | undefined {
  let v: string | undefined;
  try {
    v = (globalThis as { Deno?: typeof Deno }).Deno?.env.get("SGN_BACKEND");
  } catch {
    return undefined; // no permission to read the environment: not an error
  }
  if (v === undefined || v === "") return undefined;
  return checkBackendChoice(v, "SGN_BACKEND");
}

/** Validates a backend name given by a user (`what` names where it came from). */
export function checkBackendChoice(v: string, what: string): BackendChoice {
  if (!(BACKEND_CHOICES as readonly string[]).includes(v)) {
    throw new SgnError(`${what} must be one of ${BACKEND_CHOICES.join(", ")}, not "${v}"`);
  }
  return v as BackendChoice;
}

/**
 * Selects the default backend and returns it. With "auto" (the default) a hardware GPU wins,
 * then the native CPU backend, then a software WebGPU adapter, then the plain TypeScript
 * backend; one line (to `onNotice`) says which and why. "webgpu" and "native" fail with a clear
 * error when unavailable; "cpu" always works.
 *
 * @example
 * ```ts
 * import { init, tensor } from "../mod.ts";
 * const backend = await init({ backend: "cpu" });
 * const t = tensor([1, 2, 3]);
 * console.log(backend.name, await t.data());
 * ```
 */
export async function init(options: InitOptions = {}): Promise<Backend> {
  if (typeof options !== "object" || options === null) {
    throw new SgnError(
      `init: options must be an object such as { backend: "cpu" }, got ${showValue(options)}`,
    );
  }
  const choice = options.backend ?? envBackendChoice() ?? "auto";
  if (!BACKEND_CHOICES.includes(choice)) checkBackendChoice(String(choice), "init's backend");
  const float64 = options.dtype === "float64";
  if (choice === "webgpu" && float64) {
    throw new SgnError(
      "float64 needs a CPU backend (WebGPU computes in float32): use SGN_BACKEND=native or cpu",
    );
  }
  notice = undefined;
  if (choice === "cpu") return (current = cpuBackend());
  if (choice === "native") {
    const r = nativeBackend();
    if (!r.backend) {
      throw new SgnError(
        `the native CPU backend is unavailable: ${r.reason}; ` +
          "use SGN_BACKEND=cpu (plain TypeScript) or webgpu",
      );
    }
    return (current = r.backend);
  }
  const be = float64 ? undefined : await webgpuBackend();
  if (choice === "webgpu") {
    if (be) return (current = be);
    throw new SgnError(
      "no WebGPU adapter was found; on Linux install Mesa's Vulkan driver " +
        "(apt-get install mesa-vulkan-drivers), or use a CPU backend (SGN_BACKEND=native or cpu)",
    );
  }
  const [chosen, why] = autoChoice(be, float64);
  notice = `sgn: using the ${chosen.name} backend: ${why}`;
  options.onNotice?.(notice);
  return (current = chosen);
}

/** The "auto" rule: the backend and the reason, in words. */
function autoChoice(gpu: WebGpuBackend | undefined, float64: boolean): [Backend, string] {
  if (gpu && !gpu.software) return [gpu, `a hardware GPU (${gpu.description})`];
  const nat = nativeBackend();
  const noGpu = float64
    ? "float64 needs a CPU backend"
    : gpu
    ? `the only WebGPU adapter is a software one (${gpu.description})`
    : "no WebGPU adapter was found";
  if (nat.backend) return [nat.backend, `${noGpu}; BLAS loaded (${nat.backend.description})`];
  if (gpu) {
    return [gpu, `${noGpu}, and the native CPU backend is unavailable (${nat.reason})`];
  }
  return [
    cpuBackend(),
    `${noGpu}, and the native CPU backend is unavailable (${nat.reason}); ` +
    "the plain TypeScript backend is slow",
  ];
}

/** Makes `backend` the default for new tensors. */
export function setBackend(backend: Backend): void {
  current = backend;
}

/** The default backend; throws if neither {@link init} nor {@link setBackend} has run. */
export function getBackend(): Backend {
  if (!current) {
    throw new SgnError(
      "no backend selected yet: call `await init()` (WebGPU, else CPU) or `setBackend(...)` first",
    );
  }
  return current;
}
