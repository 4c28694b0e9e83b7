/**
 * deno bench: one SGN step on W1 with 3 and 10 CG iterations (see sgn_step_cases.ts). A group is
 * one CG budget, one row per backend, and every iteration is one step on every backend, so
 * Deno's summary compares the backends on the same step. After Deno's table the bench prints
 * ms per step, readbacks and line-search tries per step (from the step records), and the WebGPU
 * runtime's dispatches and submits per step, from the same calls;
 * `deno run -A bench/sgn_step_report.ts` adds the parts of a step (loss + gradient, G v, forward,
 * readback) and the line-search modes.
 */
import { w1Sgn } from "./sgn_step_cases.ts";
import { benchBackends } from "./devices.ts";
import { measured, perCall, printAfterBench } from "./summary.ts";

console.log(
  "sgn_step_bench: one iteration = one SGN step on every backend; readbacks and dispatches per " +
    "step follow the table (see also bench/sgn_step_report.ts)",
);

const rows: (() => string[] | undefined)[] = [];
for (const iters of [3, 10]) {
  for (const be of await benchBackends({ cpu: false })) {
    const { problem, opt } = w1Sgn(be, iters);
    let readbacks = 0;
    let tries = 0;
    const { fn, result } = measured(be, async () => {
      const r = await opt.step(problem.model, problem.loss);
      readbacks += r.readbacks;
      tries += r.lsTries;
    });
    Deno.bench({
      name: `SGN step, W1, ${iters} CG iterations [${be.name}]`,
      group: `SGN step, W1, ${iters} CG iterations`,
      n: 10,
      warmup: 2,
      fn,
    });
    rows.push(() => {
      if (result.calls === 0) return undefined;
      return [
        String(iters),
        be.name,
        result.bestMs.toFixed(1),
        (readbacks / result.calls).toFixed(2),
        (tries / result.calls).toFixed(2),
        perCall(result, "dispatches"),
        perCall(result, "submits"),
      ];
    });
  }
}
printAfterBench(
  "Per SGN step (W1; best step; counts are means over the calls):",
  [
    "CG iterations",
    "backend",
    "ms per step",
    "readbacks per step",
    "LS tries per step",
    "WebGPU dispatches per step",
    "WebGPU submits per step",
  ],
  2,
  () => rows.map((r) => r()).filter((r) => r !== undefined),
);
