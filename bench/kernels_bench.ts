/**
 * Kernel throughput on every backend: matmul, conv2d (forward and both gradient products) at the
 * seed's CIFAR-10 shapes, element-wise and reductions at 1e6 elements. Each WebGPU measurement
 * records `REPS` kernels and reads back once, so the ~11 ms readback round trip is amortized.
 * Run: `deno task bench` or `deno bench -A bench/kernels_bench.ts`. GFLOP/s and GB/s are printed
 * by `deno run -A bench/kernels_report.ts`.
 */
import { kernelCases } from "./kernel_cases.ts";

for (const c of await kernelCases()) {
  Deno.bench({
    name: c.name,
    group: c.group,
    n: c.backend === "webgpu" ? 10 : 3,
    warmup: 1,
    fn: async () => {
      await c.run();
    },
  });
}
