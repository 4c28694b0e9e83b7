/**
 * Choosing the backend that new tensors live on: WebGPU when an adapter exists, else the CPU
 * reference backend, with a one-line notice. The choice can be forced with the environment
 * variable `SGN_BACKEND` (`webgpu`, `cpu` or `auto`) or with {@link init}'s option.
 *
 * @module
 */

import { type Backend, SgnError } from "../backend.ts";
import { CpuBackend } from "../cpu/backend.ts";
import { WebGpuBackend } from "../wgsl/backend.ts";

/** Which backend {@link init} should select. */
export type BackendChoice = "auto" | "webgpu" | "cpu";

/** Options of {@link init}. */
export interface InitOptions {
  /** Overrides `SGN_BACKEND`; default "auto". */
  backend?: BackendChoice;
  /** Receives the one-line notice when WebGPU is missing; default `console.warn`. */
  onNotice?: (message: string) => void;
}

let current: Backend | undefined;
let cpu: CpuBackend | undefined;
let gpu: Promise<WebGpuBackend | undefined> | undefined;

/** The process-wide CPU backend. */
export function cpuBackend(): CpuBackend {
  return (cpu ??= new CpuBackend());
}

/** The process-wide WebGPU backend (the device is requested once), or undefined without one. */
export function webgpuBackend(): Promise<WebGpuBackend | undefined> {
  return (gpu ??= WebGpuBackend.create());
}

function envChoice(): BackendChoice | undefined {
  let v: string | undefined;
  try {
    v = (globalThis as { Deno?: typeof Deno }).Deno?.env.get("SGN_BACKEND");
  } catch {
    return undefined; // no permission to read the environment: not an error
  }
  if (v === undefined || v === "") return undefined;
  if (v !== "auto" && v !== "webgpu" && v !== "cpu") {
    throw new SgnError(`SGN_BACKEND must be "webgpu", "cpu" or "auto", not "${v}"`);
  }
  return v;
}

/**
 * Selects the default backend and returns it. "auto" (the default) uses WebGPU when an adapter
 * exists and otherwise the CPU backend, saying so once; "webgpu" fails when there is no adapter.
 *
 * @example
 * ```ts
 * import { init, tensor } from "./mod.ts";
 * const backend = await init({ backend: "cpu" });
 * const t = tensor([1, 2, 3]);
 * console.log(backend.name, await t.data());
 * ```
 */
export async function init(options: InitOptions = {}): Promise<Backend> {
  const choice = options.backend ?? envChoice() ?? "auto";
  if (choice === "cpu") return (current = cpuBackend());
  const be = await webgpuBackend();
  if (be) return (current = be);
  if (choice === "webgpu") {
    throw new SgnError(
      "no WebGPU adapter was found; on Linux install Mesa's Vulkan driver " +
        "(apt-get install mesa-vulkan-drivers), or use the CPU backend (SGN_BACKEND=cpu)",
    );
  }
  (options.onNotice ?? console.warn)(
    "sgn: no WebGPU adapter found, using the CPU backend (set SGN_BACKEND=cpu to silence this)",
  );
  return (current = cpuBackend());
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
