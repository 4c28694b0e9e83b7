/**
 * Seconds per training epoch of the seed's runs, each in its own process, second epoch (the
 * first pays for compiling and loading): `deno run -A bench/epoch_report.ts [--runs mnist,fashion]
 * [--backends native,webgpu,cpu] [--repo DIR]...`. Each `--repo` names a checkout of this
 * repository (default: this one), so that old and new code run side by side in one session.
 * Run it on a quiet machine.
 *
 * `--torch PYTHON` adds, after each run's rows, the same run in PyTorch (bench/torch_port.py, a
 * port of the seed's SGN written here from SGN-ALGORITHM.md) with that interpreter, which must
 * import torch: same data, initialization, mini-batch order and hyperparameters, in each dtype the
 * backends above ran (float32, and float64 when a `...64` backend is listed). Its epoch time, as
 * ours, runs from the epoch's first step to the end of its test evaluation.
 */
import { parseArgs } from "node:util";
import { runTorchPort, torchAboutOrExit } from "./torch.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "mnist" },
    backends: { type: "string", default: "native" },
    repo: { type: "string", multiple: true },
    epochs: { type: "string", default: "2" },
    torch: { type: "string" },
  },
});
const about = await torchAboutOrExit(flags.torch);

/** The seed's runs (as `reproduce --dry-run` prints them), without path, name and epochs. */
const RUNS: Record<string, string[]> = {
  // MNIST SGN(3): the seed's check run (10 CG iterations for the first 10 steps, then 3).
  mnist: [
    ...["--dataset", "mnist", "--layers", "20", "20", "20", "--batch_size", "1000"],
    ...["--solver", "SGN", "--rho", "0.0001", "--rho_min", "0.000001", "--TR", "true"],
    ...["--LS", "true", "--cg_min_iter", "10", "--K_cg", "10", "--cg_max_iter", "3", "--seed", "1"],
  ],
  // Fashion-MNIST architecture_1 SGN(3).
  fashion: [
    ...["--dataset", "fashion", "--architecture", "architecture_1", "--batch_size", "1000"],
    ...["--solver", "SGN", "--rho", "0.0001", "--rho_min", "0.000001", "--TR", "true"],
    ...["--LS", "true", "--cg_min_iter", "10", "--K_cg", "10", "--cg_max_iter", "3", "--seed", "1"],
  ],
};

const here = new URL("..", import.meta.url).pathname;
const repos = flags.repo?.length ? flags.repo : [here];
const out = await Deno.makeTempDir({ prefix: "sgn-epochs-" });
console.log(
  "| run | backend | dtype | code | epoch 1 s | epoch 2 s | epoch 1 loss | test metric |",
);
console.log("|---|---|---|---|---:|---:|---:|---:|");
/** A table row from a results record (epoch_time: cumulative seconds at each epoch's end). */
function row(run: string, backend: string, dtype: string, code: string, r: {
  epoch_time: number[];
  avg_loss: number[];
  test_acc?: number[];
  test_loss?: number[];
}): string {
  const t = r.epoch_time;
  const metric = r.test_acc ? `${(100 * r.test_acc.at(-1)!).toFixed(2)}%` : r.test_loss!.at(-1);
  const second = t.length > 1 ? (t[1] - t[0]).toFixed(2) : "-";
  return `| ${run} | ${backend} | ${dtype} | ${code} | ${t[0].toFixed(2)} | ${second} | ` +
    `${r.avg_loss[0].toFixed(4)} | ${metric} |`;
}
for (const run of flags.runs.split(",")) {
  for (const spec of flags.backends.split(",")) {
    // "native64" / "cpu64": the same backend in float64.
    const float64 = spec.endsWith("64");
    const backend = spec.replace(/64$/, "");
    for (const repo of repos) {
      const f = `${run}_${spec}_${repos.indexOf(repo)}`;
      const args = [
        "run",
        "-A",
        `${repo}/cli.ts`,
        "train",
        ...RUNS[run],
        ...["--epochs", flags.epochs, "--backend", backend, "--path", out, "--f", f],
        ...(float64 ? ["--float64"] : []),
      ];
      const p = await new Deno.Command(Deno.execPath(), {
        args,
        cwd: repo,
        stdout: "null",
        stderr: "piped",
      }).output();
      if (p.code !== 0) {
        console.log(
          `| ${run} | ${spec} | - | ${repo} | failed: ` +
            `${new TextDecoder().decode(p.stderr).trim().split("\n").at(-1)} | | | |`,
        );
        continue;
      }
      const r = JSON.parse(await Deno.readTextFile(`${out}/${f}/results.json`));
      console.log(row(run, backend, float64 ? "float64" : "float32", repo, r));
    }
  }
  if (flags.torch) {
    const dtypes = new Set(flags.backends.split(",").map((s) => s.endsWith("64")));
    for (const float64 of dtypes) {
      const args = ["train", "--run", run, "--epochs", flags.epochs];
      try {
        const lines = await runTorchPort(flags.torch, [...args, ...(float64 ? ["--float64"] : [])]);
        const r = JSON.parse(lines.at(-1)!);
        console.log(row(run, "torch", float64 ? "float64" : "float32", "bench/torch_port.py", r));
      } catch (e) {
        console.log(
          `| ${run} | torch | - | bench/torch_port.py | failed: ${(e as Error).message} | | | |`,
        );
      }
    }
  }
}
if (flags.torch) console.log(`\ntorch: ${about}`);
await Deno.remove(out, { recursive: true });
