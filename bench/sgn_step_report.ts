/**
 * Prints the SGN step table: `deno run -A bench/sgn_step_report.ts`. Per backend: the parts of a
 * step measured alone, then per CG budget and line-search mode the ms per step, readbacks and
 * line-search tries per step (from the step records) and, on WebGPU, the runtime's dispatches
 * and submits per step.
 */
import { parts, stepBackends, stepTime } from "./sgn_step_cases.ts";

const CASES = [[3, "adaptive"], [3, "all"], [10, "adaptive"], [10, "all"]] as const;
/** A WebGPU count per step; "-" on the CPU backends, which have no runtime counters. */
const count = (x: number | undefined) => x === undefined ? "-" : x.toFixed(1);

for (const be of await stepBackends()) {
  const reps = be.name === "cpu" ? 1 : 5;
  // CPU backends decide on the host (no speculation): one row per CG budget.
  const cases = be.hostReadback ? CASES.filter(([, s]) => s === "adaptive") : CASES;
  const p = await parts(be, reps);
  console.log(
    `\n${be.name}: loss+grad ${p.lossGrad.toFixed(1)} ms, cached G v ${p.gv.toFixed(1)} ms, ` +
      `forward ${p.forward.toFixed(1)} ms, readback ${p.readback.toFixed(1)} ms`,
  );
  console.log(
    "| CG iterations | LS speculation | step ms | x loss+grad | readbacks/step | " +
      "LS tries/step | dispatches/step | submits/step | est. grad + CG + LS + readbacks |",
  );
  console.log("|---:|---|---:|---:|---:|---:|---:|---:|---|");
  for (const [iters, speculation] of cases) {
    const s = await stepTime(be, iters, be.name === "cpu" ? 3 : 10, speculation);
    const mode = be.hostReadback ? "host (none)" : speculation;
    const est = `${p.lossGrad.toFixed(0)} + ${(iters * p.gv).toFixed(0)} + ` +
      `${(s.tries * p.forward).toFixed(0)} + ${(s.readbacks * p.readback).toFixed(0)}`;
    console.log(
      `| ${iters} | ${mode} | ${s.ms.toFixed(1)} | ${(s.ms / p.lossGrad).toFixed(1)} | ` +
        `${s.readbacks.toFixed(2)} | ${s.tries.toFixed(2)} | ${count(s.dispatches)} | ` +
        `${count(s.submits)} | ${est} |`,
    );
  }
}
