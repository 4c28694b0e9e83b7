/**
 * Prints the products benchmark as a markdown table: milliseconds per product (best of a few
 * timed runs of `reps` products + one readback each; one product on the plain TypeScript
 * backend, whose readback is free) and the ratio to loss + gradient.
 * Run: `deno run -A bench/products_report.ts [--no-cpu] [--only W4] [--torch PYTHON]`.
 *
 * `--torch PYTHON` adds, after each workload's rows, PyTorch's (bench/torch_port.py run by that
 * interpreter, which must import torch): the same network, batch and float32, each product the
 * fastest of the ways PyTorch 1.13 offers (listed under the table), best of 3 runs of `reps`.
 */
import { parseArgs } from "node:util";
import { productCases, PRODUCTS } from "./products_cases.ts";
import { runTorchPort, torchAboutOrExit } from "./torch.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    "no-cpu": { type: "boolean", default: false },
    only: { type: "string", default: "" },
    torch: { type: "string" },
  },
});
const withCpu = !flags["no-cpu"];
const about = await torchAboutOrExit(flags.torch);

const row = (workload: string, backend: string, ms: Record<string, number>) => {
  const base = ms["loss+grad"];
  // Two decimals under 10 ms, where one cannot tell a tie from a 15% difference.
  const cells = PRODUCTS.map((p) =>
    ms[p] === undefined
      ? "-"
      : `${ms[p].toFixed(ms[p] < 10 ? 2 : 1)} (${(ms[p] / base).toFixed(2)}x)`
  );
  console.log(`| ${workload} | ${backend} | ${cells.join(" | ")} |`);
};

console.log(`| workload | backend | ${PRODUCTS.join(" | ")} |`);
console.log(`|---|---|${PRODUCTS.map(() => "---:").join("|")}|`);
// Workload by workload (W1, W2, ...), every backend, then PyTorch's row.
const cases = (await productCases(withCpu, flags.only)).sort((a, b) =>
  a.workload.localeCompare(b.workload)
);
const methods: string[] = [];
for (const [i, c] of cases.entries()) {
  const ms: Record<string, number> = {};
  const cpu = c.backend.name === "cpu";
  const reps = cpu ? 1 : c.reps;
  for (const p of PRODUCTS) {
    await c.runN[p](reps); // warm-up: pipelines compile, pools fill
    let best = Infinity;
    for (let t = 0; t < (cpu ? 1 : 3); t++) {
      const t0 = performance.now();
      await c.runN[p](reps);
      best = Math.min(best, (performance.now() - t0) / reps);
    }
    ms[p] = best;
  }
  row(c.workload, c.backend.name, ms);
  c.dispose();
  if (flags.torch && cases[i + 1]?.workload !== c.workload) {
    const lines = await runTorchPort(flags.torch, ["products", "--only", c.workload.slice(0, 3)]);
    const torchMs: Record<string, number> = {};
    const chosen: string[] = [];
    for (const line of lines) {
      const r = JSON.parse(line);
      if (r.workload !== c.workload) continue;
      torchMs[r.product] = r.ms;
      if (Object.keys(r.methods).length > 1) chosen.push(`${r.product}: ${r.method}`);
    }
    row(c.workload, "torch", torchMs);
    methods.push(`${c.workload.slice(0, 2)}: ${chosen.join(", ")}`);
  }
}
if (flags.torch) {
  console.log(`\ntorch: ${about}; the fastest way of each product:\n${methods.join("\n")}`);
}
