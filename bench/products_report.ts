/**
 * Prints the products benchmark as a markdown table: milliseconds per product (best of a few
 * timed runs of `reps` products + one readback each; one product on the plain TypeScript
 * backend, whose readback is free) and the ratio to loss + gradient.
 * Run: `deno run -A bench/products_report.ts [--no-cpu] [--only W4]`.
 */
import { parseArgs } from "node:util";
import { productCases, PRODUCTS } from "./products_cases.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { "no-cpu": { type: "boolean", default: false }, only: { type: "string", default: "" } },
});
const withCpu = !flags["no-cpu"];
console.log(`| workload | backend | ${PRODUCTS.join(" | ")} |`);
console.log(`|---|---|${PRODUCTS.map(() => "---:").join("|")}|`);
for (const c of await productCases(withCpu, flags.only)) {
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
  const base = ms["loss+grad"];
  const cells = PRODUCTS.map((p) => `${ms[p].toFixed(1)} (${(ms[p] / base).toFixed(2)}x)`);
  console.log(`| ${c.workload} | ${c.backend.name} | ${cells.join(" | ")} |`);
  c.dispose();
}
