/**
 * The experiment CLI: flag parsing and its errors, and a short end-to-end run that writes the
 * seed's results files and refuses to overwrite them.
 */
import assert from "node:assert/strict";
import { numpyInitSeed, runExperiment } from "../train/experiment.ts";
import { parseTrainArgs, SETTINGS, trainHelp } from "../train/settings.ts";
import { cli, cliWith } from "./data_files.ts";

Deno.test("train flags: the seed's defaults, --layers takes several values, bools as the seed's str2bool", () => {
  const d = parseTrainArgs([]);
  assert.equal(d.dataset, "boston");
  assert.deepEqual(d.layers, [16, 16]);
  assert.equal(d.seed, 12);
  assert.equal(d.rho, 0.001);
  assert.equal(d.TR, true);
  assert.equal(d.cg_max_iter, 10);
  const a = parseTrainArgs([
    "--layers",
    "20",
    "20",
    "20",
    "--TR",
    "no",
    "--rho=0.0001",
    "--cg_prec",
    "--epochs",
    "5",
  ]);
  assert.deepEqual(a.layers, [20, 20, 20]);
  assert.equal(a.TR, false);
  assert.equal(a.rho, 0.0001);
  assert.equal(a.cg_prec, true);
  assert.equal(a.epochs, 5);
});

Deno.test("train flags: unknown flags and bad values are errors that name them", () => {
  assert.throws(() => parseTrainArgs(["--learning_rate", "1"]), /unknown flag --learning_rate/);
  assert.throws(
    () => parseTrainArgs(["--epochs", "0"]),
    /--epochs must be a positive integer up to 100000, got "0"/,
  );
  assert.throws(
    () => parseTrainArgs(["--rho", "-1"]),
    /--rho must be a number >= 0, got "-1"/,
  );
  assert.throws(() => parseTrainArgs(["--TR", "maybe"]), /--TR must be a boolean/);
  assert.throws(
    () => parseTrainArgs(["--solver", "LBFGS"]),
    /--solver must be one of SGN, SGD, Adam, got "LBFGS"/,
  );
  assert.throws(
    () => parseTrainArgs(["--layers", "20", "x"]),
    /--layers must be one to 100 positive integers up to 100000, got "20 x"/,
  );
  assert.throws(() => parseTrainArgs(["--epochs"]), /--epochs needs a value/);
  assert.throws(
    () => parseTrainArgs(["--float64", "--backend", "webgpu"]),
    /--float64 needs a CPU backend/,
  );
});

Deno.test("train --help lists every flag with its default", () => {
  const help = trainHelp();
  for (const name of Object.keys(SETTINGS)) assert.ok(help.includes(`--${name}`), name);
  assert.ok(help.includes("(default: 12)"));
  assert.match(help, /Each flag is given once/);
});

Deno.test("train end to end: a short sine run writes the seed's files and refuses to overwrite them", async () => {
  const dir = await Deno.makeTempDir();
  const args = parseTrainArgs([
    "--dataset",
    "sine_10",
    "--layers",
    "8",
    "--epochs",
    "2",
    "--batch_size",
    "500",
    "--cg_max_iter",
    "3",
    "--path",
    dir,
    "--f",
    "run",
    "--seed",
    "3",
  ]);
  const events: string[] = [];
  const out = await runExperiment(args, (e) => events.push(e.kind));
  const results = JSON.parse(await Deno.readTextFile(`${dir}/run/results.json`));
  const config = JSON.parse(await Deno.readTextFile(`${dir}/run/config.json`));
  assert.deepEqual(Object.keys(results).sort(), [
    "alpha",
    "avg_loss",
    "epoch_time",
    "rho",
    "status",
    "test_loss",
    "tot_iterations",
    "tot_time",
  ]);
  assert.equal(results.avg_loss.length, 2);
  assert.equal(results.status, "finished");
  assert.equal(results.tot_iterations, 2 * 14);
  assert.equal(results.rho.length, 28);
  assert.equal(typeof results.tot_time, "number");
  assert.equal(config.config.SOLVER, "SGN");
  assert.equal(config.config.MAX_CG_ITERS, 3);
  assert.deepEqual(config.layers, [8]);
  assert.equal(events.filter((k) => k === "epoch").length, 2);
  assert.equal(out.results.test_loss!.length, 2);
  await assert.rejects(() => runExperiment(args), /refusing to overwrite .*run\/results\.json/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train --init: auto follows the seed (NumPy seed 10 for MLPs, RandomState(1) for conv nets)", () => {
  assert.equal(numpyInitSeed("auto", false), 10);
  assert.equal(numpyInitSeed("auto", true), 1);
  assert.equal(numpyInitSeed("numpy10", false), 10);
  assert.equal(numpyInitSeed("seeded", true), undefined);
  assert.equal(numpyInitSeed("seeded", false), undefined);
  assert.throws(() => numpyInitSeed("numpy10", true), /conv nets take --init auto or seeded/);
});

Deno.test("cli: reproduce --dry-run lists the seed's runs; unknown commands and bad flags exit 2", async () => {
  const dry = await cli(
    "reproduce",
    "sine_10",
    "--runs",
    "SGN_10,SGD_0.1",
    "--seeds",
    "1-2",
    "--dry-run",
  );
  assert.equal(dry.code, 0, dry.stderr);
  const lines = dry.stdout.trim().split("\n");
  assert.deepEqual(lines.map((l) => l.split(":")[0]), [
    "res_SGN_10_1",
    "res_SGN_10_2",
    "res_SGD_0.1_1",
    "res_SGD_0.1_2",
  ]);
  assert.match(lines[0], /^res_SGN_10_1: deno run -A cli\.ts train --dataset sine_10 /);
  for (
    const flag of ["--cg_max_iter 10 ", "--seed 1 ", "--armijo seed ", "--path results/sine_10 "]
  ) {
    assert.ok(lines[0].includes(flag), `${flag}in ${lines[0]}`);
  }
  const unknown = await cli("frob");
  assert.equal(unknown.code, 2);
  assert.match(
    unknown.stderr,
    /unknown command "frob" \(available: report, train, reproduce, demo/,
  );
  const seeds = await cli("reproduce", "mnist", "--seeds", "3-1");
  assert.equal(seeds.code, 2);
  assert.match(seeds.stderr, /--seeds: "3-1" is not a seed or a range/);
  const none = await cli("reproduce");
  assert.equal(none.code, 2);
  assert.match(none.stderr, /reproduce takes one experiment \(mnist, fashion/);
});

Deno.test("cli: reproduce runs a grid, then writes the report beside the runs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const args = ["reproduce", "sine_10", "--runs", "SGN_10", "--seeds", "1", "--epochs", "1"];
    const run = await cli(...args, "--backend", "cpu", "--path", dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\[1\/1\] res_SGN_10_1: started/);
    assert.match(
      run.stdout,
      /sine_10: 1 runs done, 0 skipped, 0 left to other processes, 0 failed/,
    );
    const html = await Deno.readTextFile(`${dir}/sine_10/report.html`);
    assert.match(html, /SGN_10/);
    assert.match(run.stdout, /report: .*sine_10\/report\.html \(1 runs in 1 groups\)/);
    const again = await cli(...args, "--backend", "cpu", "--path", dir, "--no-report");
    assert.match(again.stdout, /res_SGN_10_1: finished before, skipped/);
    assert.doesNotMatch(again.stdout, /report:/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: a report that cannot be written leaves the runs saved and says so, in train and reproduce", async () => {
  const dir = await Deno.makeTempDir();
  // The page's bundle links packages in a temporary folder: with TMPDIR missing it cannot be
  // built, as without the network for the charts' package.
  const env = { TMPDIR: `${dir}/missing` };
  try {
    const grid = ["reproduce", "sine_10", "--runs", "SGN_10", "--seeds", "1", "--epochs", "1"];
    const run = await cliWith(env, ...grid, "--backend", "cpu", "--path", dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      new RegExp(`the runs are saved in ${dir}/sine_10, but the report was not written: .*tmpdir`),
    );
    assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
    const results = JSON.parse(
      await Deno.readTextFile(`${dir}/sine_10/res_SGN_10_1/results.json`),
    );
    assert.equal(results.status, "finished", "the run is saved whole");
    const one = await cliWith(
      env,
      ...["train", "--dataset", "sine_10", "--layers", "4", "--batch_size", "500"],
      ...["--backend", "cpu", "--epochs", "1", "--path", dir, "--f", "one", "--report"],
    );
    assert.equal(one.code, 2, one.stderr);
    assert.match(
      one.stderr,
      new RegExp(`the run is saved in ${dir}/one, but the report was not written: .*tmpdir`),
    );
    assert.ok((await Deno.stat(`${dir}/one/results.json`)).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The page data a report embeds (report/html.ts): each group's legend name, colour and epochs. */
function reportData(html: string): { label: string; color: string; epochs: number[] }[] {
  const m = /<script type="application\/json" id="sgn-data">(.*?)<\/script>/s.exec(html);
  assert.ok(m, "the report embeds no data");
  return JSON.parse(m[1]).groups;
}

Deno.test("train --report: report.html beside the results, against reference runs of the same configuration", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-train-report-" });
  try {
    const sine = (epochs: number, seed: number) => [
      "train",
      ...["--dataset", "sine_10", "--layers", "8", "--batch_size", "500", "--cg_max_iter", "3"],
      ...["--backend", "cpu", "--epochs", String(epochs), "--seed", String(seed)],
    ];
    // The reference: a finished run of the configuration, in a results folder of its own.
    const results = `${dir}/results`;
    const ref = await cli(...sine(2, 1), "--path", `${results}/sine_10`, "--f", "res_SGN_3_1");
    assert.equal(ref.code, 0, ref.stderr);
    assert.doesNotMatch(ref.stdout, /^report: /m, "no report without --report");

    // One epoch of the same configuration (another seed), reported against it.
    const mine = `${dir}/runs/mine`;
    const run = await cli(
      ...sine(1, 2),
      ...["--path", `${dir}/runs`, "--f", "mine", "--report", "--reference", results],
    );
    assert.equal(run.code, 0, run.stderr);
    const label = `reference: runs in ${results}/sine_10`;
    assert.ok(
      run.stdout.includes(
        `report: ${mine}/report.html (this run against 1 reference runs: ${label})\n` +
          `open file://${mine}/report.html in a browser\n`,
      ),
      run.stdout,
    );
    const html = await Deno.readTextFile(`${mine}/report.html`);
    const groups = reportData(html);
    assert.deepEqual(groups.map((g) => g.label), [
      "this run sine_10 SGN_3 (n=1)",
      `${label} sine_10 SGN_3 (n=1)`,
    ]);
    // The reference is drawn over this run's one epoch, in a colour of its own.
    assert.deepEqual(groups.map((g) => g.epochs), [[1], [1]]);
    assert.notEqual(groups[0].color, groups[1].color);
    assert.match(html, /drawn up to this run&#39;s last epoch \(1\)/);
    // Seeds and epochs differ from run to run of a configuration: not worth a word.
    assert.match(html, /No other setting differs\./);
    // Written atomically: the folder holds the run's files and the report, no temporary file.
    const names: string[] = [];
    for await (const e of Deno.readDir(mine)) names.push(e.name);
    assert.deepEqual(names.sort(), [".claim", "config.json", "report.html", "results.json"]);

    // No run of the configuration in the reference folder: the report has this run alone.
    await Deno.mkdir(`${dir}/empty`);
    const alone = await cli(
      ...sine(1, 3),
      ...["--path", `${dir}/runs`, "--f", "alone", "--report", "--reference", `${dir}/empty`],
    );
    assert.equal(alone.code, 0, alone.stderr);
    assert.match(
      alone.stdout,
      /report: .*\/runs\/alone\/report\.html \(this run alone: no reference run of its configuration\)/,
    );
    assert.match(alone.stdout, /open file:\/\/.*\/runs\/alone\/report\.html in a browser/);
    const lonely = await Deno.readTextFile(`${dir}/runs/alone/report.html`);
    assert.deepEqual(reportData(lonely).map((g) => g.label), ["this run sine_10 SGN_3 (n=1)"]);
    assert.match(lonely, /No reference: no run under .*\/empty has this run&#39;s configuration/);

    // A reference folder that is not there is said before any training; --reference needs
    // --report.
    const bad = await cli(
      ...sine(1, 4),
      ...["--path", `${dir}/runs`, "--f", "bad", "--report", "--reference", `${dir}/nowhere`],
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error: --reference: .*\/nowhere does not exist/);
    await assert.rejects(() => Deno.stat(`${dir}/runs/bad`), Deno.errors.NotFound);
    const lone = await cli(...sine(1, 4), "--path", `${dir}/runs`, "--reference", results);
    assert.equal(lone.code, 2);
    assert.match(
      lone.stderr,
      /^error: --reference names the reference runs of the report: add --report/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
