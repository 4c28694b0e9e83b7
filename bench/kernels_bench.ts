/**
 * Kernel throughput on every backend: matmul, conv2d (forward and both gradient products) at the
 * seed's shapes, element-wise and reductions at 1e6 elements.
 *
 * Every case, on every backend, runs `KERNELS_PER_ITERATION` (10) kernels and one readback per
 * iteration, so the rows of a group (one kernel, one row per backend) do the same work and Deno's
 * "x times faster" lines compare like with like. Deno's time/iter is the time of those 10
 * kernels and the readback; after its table the bench prints ms per kernel, GFLOP/s (GB/s for
 * memory-bound kernels) and WebGPU dispatches per kernel from the same calls. The readback-free
 * figures of bench/README.md come from `deno run -A bench/kernels_report.ts`.
 *
 * Run: `deno task bench` or `deno bench -A bench/kernels_bench.ts [--filter matmul]`; the plain
 * TypeScript backend only with `SGN_BENCH_CPU=1` (it is the oracle, not a speed target, and takes
 * seconds per iteration).
 */
import { kernelCases, KERNELS_PER_ITERATION, throughput } from "./kernel_cases.ts";
import { benchPlainCpu } from "./devices.ts";
import { measured, perCall, printAfterBench } from "./summary.ts";

const N = KERNELS_PER_ITERATION;
console.log(
  `kernels_bench: one iteration = ${N} kernels + 1 readback on every backend; ms per kernel, ` +
    "GFLOP/s and dispatches follow the table (readback-free figures: bench/kernels_report.ts)",
);

// Rows by kernel, so that each kernel's backends are printed together.
const rows = new Map<string, (() => string[] | undefined)[]>();
for (const c of await kernelCases({ cpu: benchPlainCpu() })) {
  const { fn, result } = measured(c.backend, () => c.runN(N));
  Deno.bench({
    name: c.name,
    group: c.group,
    n: c.backend.name === "cpu" ? 2 : 5,
    warmup: 1,
    fn,
  });
  if (!rows.has(c.group)) rows.set(c.group, []);
  rows.get(c.group)!.push(() => {
    if (result.calls === 0) return undefined;
    const ms = result.bestMs / N;
    return [
      c.group,
      c.backend.name,
      ms.toFixed(3),
      throughput(c, ms),
      perCall(result, "dispatches", N),
    ];
  });
}
printAfterBench(
  `Per kernel (best iteration / ${N}; WebGPU's includes 1/${N} of a readback):`,
  ["kernel", "backend", "ms per kernel", "throughput", "WebGPU dispatches per kernel"],
  2,
  () => [...rows.values()].flat().map((r) => r()).filter((r) => r !== undefined),
);
