/**
 * The backends the benchmarks measure, in table order: WebGPU (when an adapter exists), the
 * native CPU backend (when BLAS loads) and, when asked, the plain TypeScript oracle.
 */
import type { Backend } from "../backend.ts";
import { CpuBackend } from "../cpu/backend.ts";
import { NativeBackend } from "../cpu/native.ts";
import { WebGpuBackend } from "../wgsl/backend.ts";

/** Every available backend; `cpu: false` leaves out the plain TypeScript one. */
export async function benchBackends({ cpu = true } = {}): Promise<Backend[]> {
  const out: Backend[] = [];
  const gpu = await WebGpuBackend.create();
  if (gpu) out.push(gpu);
  const native = NativeBackend.create();
  if (native.backend) out.push(native.backend);
  else console.error(`[bench] native backend unavailable: ${native.reason}`);
  if (cpu) out.push(new CpuBackend());
  return out;
}
