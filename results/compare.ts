/**
 * Compares our reproduction runs (results/<experiment>/res_*) with the seed's published runs
 * (../shared/seed/results, or the directory given as the first argument): the mean and range of
 * the metric over seeds after given epochs, and seconds per epoch, as a markdown table.
 * Run: `deno run -A results/compare.ts [seed-results-dir]`.
 */

const seedDir = Deno.args[0] ?? new URL("../../shared/seed/results/", import.meta.url).pathname;
const ourDir = new URL("./", import.meta.url).pathname;

interface Run {
  metric: number[];
  perEpoch: number;
}

async function runs(dir: string, prefix: string): Promise<Run[]> {
  const out: Run[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isDirectory || !e.name.startsWith(prefix)) continue;
      try {
        const r = JSON.parse(await Deno.readTextFile(`${dir}/${e.name}/results.json`));
        const metric: number[] = r.test_acc ?? r.test_loss;
        out.push({ metric, perEpoch: r.tot_time / metric.length });
      } catch {
        // a run without results.json (still running, or failed) is left out
      }
    }
  } catch {
    // no such experiment directory
  }
  return out;
}

function stat(rs: Run[], epoch: number, pct: boolean): string {
  const v = rs.filter((r) => r.metric.length >= epoch).map((r) => r.metric[epoch - 1]);
  if (v.length === 0) return "-";
  const f = (x: number) => (pct ? (100 * x).toFixed(2) + "%" : x.toFixed(4));
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return `${f(mean)} (${f(Math.min(...v))}-${f(Math.max(...v))}, n=${v.length})`;
}

/** [label, our folder, the seed's folder, run prefix, epochs to show, metric is a percentage]. */
const EXPERIMENTS: [string, string, string, string, number[], boolean][] = [
  ["mnist", "mnist", "mnist", "res_SGN_3_", [1, 2, 5], true],
  ["mnist (float64, CPU)", "float64/mnist", "mnist", "res_SGN_3_", [1, 2, 5], true],
  ["mnist", "mnist", "mnist", "res_SGD_1_", [1, 2, 5], true],
  ["mnist (float64, CPU)", "float64/mnist", "mnist", "res_SGD_1_", [1, 2], true],
  ["fashion", "fashion", "fashion", "res_SGN_3_", [1, 2], true],
  ["fashion", "fashion", "fashion", "res_SGD_0.1_", [1, 2], true],
  ["sine_10", "sine_10", "sine_10", "res_SGN_10_", [1, 2, 5, 10], false],
  ["sine_10 (float64, CPU)", "float64/sine_10", "sine_10", "res_SGN_10_", [1, 2, 5, 10], false],
  ["sine_100 (seed's data)", "sine_100", "sine_100", "res_SGN_10_", [1, 2, 5, 10], false],
  ["boston", "boston", "boston", "res_SGN_10_", [1, 2, 5, 10], false],
  ["boston (float64, CPU)", "float64/boston", "boston", "res_SGN_10_", [1, 2, 5, 10], false],
];

console.log("| experiment | run | epoch | ours: mean (range, runs) | seed: mean (range, runs) |");
console.log("|---|---|---:|---:|---:|");
const times: string[] = [];
for (const [exp, ourFolder, seedFolder, prefix, epochs, pct] of EXPERIMENTS) {
  const ours = await runs(`${ourDir}/${ourFolder}`, prefix);
  const seed = await runs(`${seedDir}/${seedFolder}`, prefix);
  for (const e of epochs) {
    console.log(`| ${exp} | ${prefix.slice(4, -1)} | ${e} | ${stat(ours, e, pct)} | ${stat(seed, e, pct)} |`);
  }
  const mean = (rs: Run[]) => rs.length ? (rs.reduce((a, r) => a + r.perEpoch, 0) / rs.length).toFixed(2) : "-";
  times.push(`| ${exp} | ${prefix.slice(4, -1)} | ${mean(ours)} | ${mean(seed)} |`);
}
console.log("\n| experiment | run | ours: s/epoch | seed: s/epoch |");
console.log("|---|---|---:|---:|");
for (const t of times) console.log(t);
