/**
 * Prints the products benchmark as a markdown table: milliseconds per product (best of a few
 * timed runs of `reps` products + one readback each) and the ratio to loss + gradient.
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
  for (const p of PRODUCTS) {
    await c.run[p](); // warm-up: pipelines compile, pools fill
    let best = Infinity;
    for (let t = 0; t < (c.backend === "cpu" ? 1 : 3); t++) {
      const t0 = performance.now();
      await c.run[p]();
      best = Math.min(best, (performance.now() - t0) / c.reps);
    }
    ms[p] = best;
  }
  const base = ms["loss+grad"];
  const cells = PRODUCTS.map((p) => `${ms[p].toFixed(1)} (${(ms[p] / base).toFixed(2)}x)`);
  console.log(`| ${c.workload} | ${c.backend} | ${cells.join(" | ")} |`);
  c.dispose();
}
