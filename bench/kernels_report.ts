/**
 * Prints the kernel benchmark as a markdown table with GFLOP/s or GB/s: best of `TRIALS` timed
 * runs of each case (each run = `reps` kernels + one readback, so WebGPU times include 1/reps of a
 * readback round trip). Run: `deno run -A bench/kernels_report.ts`.
 */
import { kernelCases } from "./kernel_cases.ts";

const TRIALS = 5;
console.log("| kernel | backend | ms / kernel | throughput |");
console.log("|---|---|---:|---:|");
for (const c of await kernelCases()) {
  await c.run(); // warm-up: pipelines compile, pools fill
  let best = Infinity;
  for (let t = 0; t < (c.backend === "cpu" ? 2 : TRIALS); t++) {
    const t0 = performance.now();
    await c.run();
    best = Math.min(best, (performance.now() - t0) / c.reps);
  }
  const rate = c.work / (best / 1000) / 1e9;
  console.log(`| ${c.group} | ${c.backend} | ${best.toFixed(3)} | ${rate.toFixed(2)} ${c.unit} |`);
}
