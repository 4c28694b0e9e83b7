/**
 * Prints the kernel benchmark as a markdown table with GFLOP/s or GB/s. On WebGPU each figure is
 * (time of 12 kernels + one readback - time of 2 kernels + one readback) / 10, best of `TRIALS`,
 * so the readback round trip cancels out; the CPU backends time single kernels (best of 10 on
 * the native one, of 2 on the plain TypeScript one). (`deno task bench` runs the same cases, 10
 * kernels + one readback per iteration on every backend, and prints per-kernel figures that
 * include the readback's share.)
 * Run: `deno run -A bench/kernels_report.ts [--no-cpu] [--only TEXT]` (--only keeps the kernels
 * whose name contains TEXT, e.g. --only conv2d).
 */
import { parseArgs } from "node:util";
import { kernelCases, throughput } from "./kernel_cases.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { "no-cpu": { type: "boolean", default: false }, only: { type: "string", default: "" } },
});

const TRIALS = 5;
console.log("| kernel | backend | ms / kernel | throughput |");
console.log("|---|---|---:|---:|");
for (const c of await kernelCases({ cpu: !flags["no-cpu"] })) {
  if (!c.name.includes(flags.only)) continue;
  const backend = c.backend.name;
  await c.runN(1); // warm-up: pipelines compile, pools fill
  const time = async (n: number) => {
    const t0 = performance.now();
    await c.runN(n);
    return performance.now() - t0;
  };
  let best = Infinity;
  for (let t = 0; t < (backend === "webgpu" ? TRIALS : backend === "cpu" ? 2 : 10); t++) {
    best = Math.min(
      best,
      backend !== "webgpu" ? await time(1) : ((await time(12)) - (await time(2))) / 10,
    );
  }
  console.log(`| ${c.group} | ${backend} | ${best.toFixed(3)} | ${throughput(c, best)} |`);
}
