/**
 * The backends the benchmarks measure, in the registry's order (autodiff/device.ts `BACKENDS`:
 * WebGPU when an adapter exists, the native CPU backend when BLAS loads and, when asked, the
 * plain TypeScript oracle); and the WebGPU runtime's counters, the one place the benchmarks read
 * them.
 */
import type { Backend } from "../kernel/backend.ts";
import { WebGpuBackend } from "../wgsl/webgpu.ts";
import { BACKEND_NAMES, findBackend } from "../autodiff/device.ts";

/**
 * Every available backend of the registry (one line on stderr for each unavailable one);
 * `cpu: false` leaves out the plain TypeScript one.
 */
export async function benchBackends({ cpu = true } = {}): Promise<Backend[]> {
  const out: Backend[] = [];
  for (const name of BACKEND_NAMES) {
    if (name === "cpu" && !cpu) continue;
    const found = await findBackend(name);
    if (found.backend) out.push(found.backend);
    else console.error(`[bench] ${name} backend unavailable: ${found.reason}`);
  }
  return out;
}

/** Whether `deno task bench` also measures the plain TypeScript backend (`SGN_BENCH_CPU=1`). */
export function benchPlainCpu(): boolean {
  return Deno.env.get("SGN_BENCH_CPU") === "1";
}

/** Work a WebGPU backend has done so far: compute dispatches, queue submits, readbacks. */
export interface GpuCounts {
  dispatches: number;
  submits: number;
  readbacks: number;
}

/** The WebGPU runtime's counters now (a copy), or undefined on a CPU backend. */
export function gpuCounts(be: Backend): GpuCounts | undefined {
  if (!(be instanceof WebGpuBackend)) return undefined;
  const { dispatches, submits, readbacks } = be.rt.stats;
  return { dispatches, submits, readbacks };
}

/** The counts done between `before` and now (undefined on a CPU backend). */
export function gpuCountsSince(be: Backend, before: GpuCounts | undefined): GpuCounts | undefined {
  const now = gpuCounts(be);
  if (!now || !before) return undefined;
  return {
    dispatches: now.dispatches - before.dispatches,
    submits: now.submits - before.submits,
    readbacks: now.readbacks - before.readbacks,
  };
}
