/**
 * deno bench for the autodiff products on W1-W4 (see products_cases.ts). A group is one workload
 * on one backend, its baseline loss + gradient, so Deno's summary gives each product's cost
 * relative to a gradient. Every row of every group runs the workload's `reps` products (10 on W1
 * and W2, 3 on W3 and W4, on every backend) and one readback per iteration. After Deno's table
 * the bench prints ms per product and WebGPU dispatches per product from the same calls;
 * `deno run -A bench/products_report.ts` prints the table of bench/README.md.
 *
 * The plain TypeScript backend takes seconds per product on W2 and W3: it is measured only with
 * `SGN_BENCH_CPU=1`.
 */
import { type Product, productCases, PRODUCTS } from "./products_cases.ts";
import { benchPlainCpu } from "./devices.ts";
import { type Measured, measured, perCall, printAfterBench } from "./summary.ts";

console.log(
  "products_bench: one iteration = reps products (10 on W1, W2; 3 on W3, W4; on every backend) " +
    "+ 1 readback; ms and dispatches per product follow the table (see bench/products_report.ts)",
);

// Rows by workload and product, so that each product's backends are printed together.
const rows = new Map<string, (() => string[] | undefined)[]>();
for (const c of await productCases(benchPlainCpu())) {
  const results = {} as Record<Product, Measured>;
  for (const p of PRODUCTS) {
    const { fn, result } = measured(c.backend, () => c.runN[p](c.reps));
    results[p] = result;
    Deno.bench({
      name: `${p} [${c.backend.name}]`,
      group: `${c.workload} [${c.backend.name}]`,
      baseline: p === "loss+grad",
      n: c.backend.name === "cpu" ? 1 : 5,
      warmup: 1,
      fn,
    });
    const key = `${c.workload} ${p}`;
    if (!rows.has(key)) rows.set(key, []);
    rows.get(key)!.push(() => {
      if (result.calls === 0) return undefined;
      const base = results["loss+grad"];
      const ms = result.bestMs / c.reps;
      return [
        c.workload,
        p,
        c.backend.name,
        ms.toFixed(1),
        base.calls > 0 ? `${(result.bestMs / base.bestMs).toFixed(2)}x` : "-",
        perCall(result, "dispatches", c.reps),
      ];
    });
  }
}
printAfterBench(
  "Per product (best iteration / reps; WebGPU's includes 1/reps of a readback):",
  [
    "workload",
    "product",
    "backend",
    "ms per product",
    "x loss+grad",
    "WebGPU dispatches per product",
  ],
  3,
  () => [...rows.values()].flat().map((r) => r()).filter((r) => r !== undefined),
);
