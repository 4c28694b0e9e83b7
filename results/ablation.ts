/**
 * Issue 22's ablation, summarized: for each experiment of `ABLATIONS` (train/reproduce.ts) and
 * each configuration, over its seeds, the epochs and the wall-clock seconds (`epoch_time`, the
 * training time at the end of each epoch) until the test accuracy first reaches the experiment's
 * target (the seed's published SGN(3) mean), and the final test accuracy, as a markdown table.
 *
 * ```sh
 * deno run -A cli.ts reproduce ablation_mnist --path results/ablation
 * deno run -A cli.ts reproduce ablation_fashion --path results/ablation
 * deno run -A results/ablation.ts [results/ablation]
 * ```
 */
import { ABLATIONS, gridGroups } from "../train/reproduce.ts";

const root = Deno.args[0] ?? new URL("./ablation", import.meta.url).pathname;

interface Run {
  testAcc: number[];
  epochTime: number[];
}

async function readRun(dir: string): Promise<Run | undefined> {
  try {
    const r = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
    if (r.status && r.status !== "finished") return undefined;
    return { testAcc: r.test_acc, epochTime: r.epoch_time };
  } catch {
    return undefined; // no results.json yet
  }
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const range = (v: number[], f: (x: number) => string) =>
  v.length ? `${f(mean(v))} (${f(Math.min(...v))}-${f(Math.max(...v))})` : "-";

for (const [experiment, grid] of Object.entries(ABLATIONS)) {
  const target = grid.target!;
  console.log(
    `\n### ${experiment}: ${grid.description}\n\nTarget: test accuracy ${
      (100 * target.testAcc).toFixed(2)
    }% (the seed's SGN(3) after epoch ${target.epoch}); ${grid.epochs} epochs per run.\n`,
  );
  console.log(
    "| configuration | runs | reached | epochs to target | seconds to target | s / epoch | " +
      `final test accuracy (epoch ${grid.epochs}) |`,
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const group of gridGroups(grid)) {
    const runs: Run[] = [];
    for (let seed = 1; seed <= 100; seed++) {
      const r = await readRun(`${root}/${experiment}/res_${group}_${seed}`);
      if (r) runs.push(r);
    }
    if (runs.length === 0) continue;
    const hits = runs.map((r) => r.testAcc.findIndex((a) => a >= target.testAcc));
    const reached = runs.filter((_, i) => hits[i] >= 0);
    const epochs = hits.filter((h) => h >= 0).map((h) => h + 1);
    const seconds = reached.map((r) => r.epochTime[hits[runs.indexOf(r)]]);
    const perEpoch = runs.map((r) => r.epochTime.at(-1)! / r.epochTime.length);
    const finals = runs.map((r) => r.testAcc.at(-1)!);
    console.log(
      `| ${group} | ${runs.length} | ${reached.length}/${runs.length} | ${
        range(epochs, (x) => x.toFixed(1))
      } | ${range(seconds, (x) => x.toFixed(1))} | ${range(perEpoch, (x) => x.toFixed(2))} | ${
        range(finals, (x) => (100 * x).toFixed(2) + "%")
      } |`,
    );
  }
}
