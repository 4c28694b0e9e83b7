/**
 * deno bench for the autodiff products on W1-W3 (see products_cases.ts). The ratios to the
 * loss + gradient time are printed by `deno run -A bench/products_report.ts`.
 */
import { productCases, PRODUCTS } from "./products_cases.ts";

// The CPU backend takes seconds per product on W2 and W3: bench it only when asked.
const withCpu = Deno.env.get("SGN_BENCH_CPU") === "1";
for (const c of await productCases(withCpu)) {
  for (const p of PRODUCTS) {
    Deno.bench({
      name: `${p} [${c.backend}]`,
      group: `${c.workload} [${c.backend}]`,
      baseline: p === "loss+grad",
      n: c.backend === "cpu" ? 1 : 5,
      warmup: 1,
      fn: c.run[p],
    });
  }
}
