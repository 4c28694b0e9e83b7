/**
 * What replay saves (issue 23's target: W1's cached G v at least 1.3x faster replayed on native,
 * in the same run): the cached G v and its replay (bench/products_cases.ts) timed in alternating
 * rounds, so that a machine whose load changes during the run changes both alike. Prints each
 * round's ms per product and ratio, then the best of each and the median of the rounds' ratios.
 *
 * With `--steps`, the line search's replay instead (sgn/objective.ts): W1 SGN steps (3 CG
 * iterations) with every speculative try, later try and backtracking iterate evaluated plainly or
 * replayed (`tryReplay`), two optimizers stepping in alternating rounds, per backend and case;
 * prints ms per step, their ratio (median of the rounds'), line-search tries, readbacks and, on
 * WebGPU, dispatches per step of each.
 *
 * With `--launches`, each launch of the replayed G v instead, timed one by one inside `--products`
 * replays (the backend's prepared launches wrapped with a timer), on the CPU backends: what the
 * replay's time is made of, and how little of it lies outside the launches.
 *
 * Run: `deno run -A bench/replay_report.ts [--only W1] [--rounds 9] [--products 300]`, or
 * `deno run -A bench/replay_report.ts --steps [--rounds 9]`, or
 * `deno run -A bench/replay_report.ts --launches [--products 2000]`.
 */
import { parseArgs } from "node:util";
import { type Product, productCases } from "./products_cases.ts";
import { lsReplayRounds } from "./sgn_step_cases.ts";
import { type Launch, launchPreparer, prepareLaunchesWith, runLaunch } from "../kernel/record.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string", default: "W1" },
    rounds: { type: "string", default: "9" },
    products: { type: "string", default: "300" },
    steps: { type: "boolean", default: false },
    launches: { type: "boolean", default: false },
  },
});
const rounds = Math.max(1, Number(flags.rounds));
const n = Math.max(1, Number(flags.products));
const PAIR: Product[] = ["G v (cached)", "G v (replayed)"];
if (flags.steps) {
  await lsReplayRounds(rounds);
  Deno.exit(0);
}

if (flags.launches) {
  await launchTimes();
  Deno.exit(0);
}

/** Each launch of the replayed G v timed over `n` replays, per workload and backend. */
async function launchTimes(): Promise<void> {
  const name = (l: Launch) =>
    l.kind === "kernel"
      ? `kernel [${l.kernel.shape}]${l.kernel.reduce ? ` summing [${l.kernel.reduce.shape}]` : ""}`
      : l.routine.op === "matmul"
      ? `matmul ${l.routine.spec.m}x${l.routine.spec.k}x${l.routine.spec.n}` +
        `${l.routine.spec.sums ? " +sums" : ""}${l.epilogue ? " +epilogue" : ""}`
      : l.routine.op;
  for (const c of await productCases(false, flags.only)) {
    const be = c.backend, prepare = launchPreparer(be);
    if (!be.hostReadback) {
      // WebGPU's launches only encode work: their host-side times say nothing of the device's.
      c.dispose();
      continue;
    }
    const times: { name: string; ms: number }[] = [];
    prepareLaunchesWith(be, (l) => {
      const run = prepare?.(l) ?? ((ins) => runLaunch(be, l, ins));
      const t = { name: name(l), ms: 0 };
      times.push(t);
      return (ins) => {
        const t0 = performance.now();
        const out = run(ins);
        t.ms += performance.now() - t0;
        return out;
      };
    });
    try {
      const replayed = c.runN["G v (replayed)"];
      await replayed(Math.ceil(n / 10)); // the recording, and warm-up
      for (const t of times) t.ms = 0;
      const t0 = performance.now();
      await replayed(n);
      const total = (performance.now() - t0) / n;
      const inLaunches = times.reduce((s, t) => s + t.ms, 0) / n;
      console.log(`\n${c.workload} on ${be.name}, ${n} replays (ms per replay)\n`);
      console.log("| launch | ms |\n|---|---:|");
      for (const t of times) console.log(`| ${t.name} | ${(t.ms / n).toFixed(4)} |`);
      console.log(
        `\nreplay ${total.toFixed(4)} ms: ${inLaunches.toFixed(4)} in its ${times.length} ` +
          `launches, ${(total - inLaunches).toFixed(4)} outside them`,
      );
    } finally {
      if (prepare) prepareLaunchesWith(be, prepare);
      c.dispose();
    }
  }
}

console.log(`| workload | backend | round | ${PAIR.join(" ms | ")} ms | ratio |`);
console.log("|---|---|---:|---:|---:|---:|");
const summary: string[] = [];
for (const c of await productCases(false, flags.only)) {
  // WebGPU's products take ~10x longer: fewer per round there.
  const reps = c.backend.name === "webgpu" ? Math.ceil(n / 10) : n;
  for (const p of PAIR) await c.runN[p](Math.ceil(reps / 5)); // warm-up, and the recording
  const best = [Infinity, Infinity];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const times: number[] = [];
    for (const [i, p] of PAIR.entries()) {
      const t0 = performance.now();
      await c.runN[p](reps);
      times[i] = (performance.now() - t0) / reps;
      best[i] = Math.min(best[i], times[i]);
    }
    ratios.push(times[0] / times[1]);
    console.log(
      `| ${c.workload.slice(0, 2)} | ${c.backend.name} | ${r + 1} | ` +
        `${times.map((t) => t.toFixed(3)).join(" | ")} | ${(times[0] / times[1]).toFixed(2)}x |`,
    );
  }
  ratios.sort((a, b) => a - b);
  summary.push(
    `${c.workload.slice(0, 2)} ${c.backend.name}: best ${best[0].toFixed(3)} -> ` +
      `${best[1].toFixed(3)} ms (${(best[0] / best[1]).toFixed(2)}x); median of the rounds' ` +
      `ratios ${ratios[ratios.length >> 1].toFixed(2)}x (${rounds} rounds of ${reps})`,
  );
  c.dispose();
}
console.log(`\n${summary.join("\n")}`);
