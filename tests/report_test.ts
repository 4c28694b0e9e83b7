/**
 * `cli.ts report`: reading and validating results files, grouping seeds and their statistics
 * (checked against hand computations), globs and labels, the command's exit codes, hostile
 * input (symlink loops, FIFOs, devices, oversized files, --out onto an input), run statuses,
 * atomic writes, and the page itself in headless Chromium (charts drawn, series named, table
 * rows, problems shown, offline), down to its numbers: every mean line and band edge (min-max,
 * ±1 std, none), where Chart.js drew each point, the axes' types and the table's final figures,
 * read back from the page and compared with numbers worked out by hand.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFileAtomic } from "../train/atomic.ts";
import { SgnError } from "../errors.ts";
import {
  aggregate,
  buildReportHtml,
  collectRuns,
  COMMITTED_RESULTS,
  configNaming,
  configurationOf,
  defaultLabel,
  expandGlob,
  finalFigure,
  findReference,
  type Group,
  INPUT_LIMITS,
  NoRunsError,
  parseResults,
  parseRunName,
  parseSourceArg,
  seriesStyle,
  writeReport,
  writeRunReport,
} from "../report/mod.ts";
import { CHECK_RUN } from "../cli.ts";
import { runConfig } from "../train/experiment.ts";
import { parseTrainArgs } from "../train/settings.ts";
import { reportCommand } from "../cli/report.ts";
import { chromiumIgnore, launchChromium } from "./headless.ts";

function close(actual: number | null | undefined, expected: number, what: string) {
  assert.ok(
    typeof actual === "number" && Math.abs(actual - expected) < 1e-12,
    `${what}: ${actual} != ${expected}`,
  );
}

function closeAll(actual: (number | null)[], expected: number[], what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((a, i) => close(a, expected[i], `${what}[${i}]`));
}

async function writeRun(dir: string, results: unknown, config?: unknown) {
  await Deno.mkdir(dir, { recursive: true });
  if (results !== undefined) {
    await Deno.writeTextFile(
      join(dir, "results.json"),
      typeof results === "string" ? results : JSON.stringify(results),
    );
  }
  if (config !== undefined) {
    await Deno.writeTextFile(
      join(dir, "config.json"),
      typeof config === "string" ? config : JSON.stringify(config),
    );
  }
}

const SGN_CONFIG = { config: { SOLVER: "SGN", MAX_CG_ITERS: 3 }, layers: [20, 20, 20] };
const SGD_CONFIG = { config: { SOLVER: "SGD", LR0: 1 }, layers: [20, 20, 20] };

/**
 * ours/results/mnist: three SGN_3 seeds with epoch_time (one with a broken config.json) and a
 * hand-named run; seed/results/mnist: two SGN_3 seeds of different lengths with only tot_time,
 * a diverged SGD_1 run written the way Python writes NaN, and four broken SGD_1 runs.
 */
async function writeFixture(root: string) {
  const ours = join(root, "ours/results/mnist");
  const seed = join(root, "seed/results/mnist");
  for (let s = 1; s <= 3; s++) {
    await writeRun(
      join(ours, `res_SGN_3_${s}`),
      {
        avg_loss: [1, 0.5, 0.25].map((x) => x * s),
        acc: [0.5, 0.6, 0.7],
        test_acc: [0.4, 0.5, 0.6].map((x) => x + 0.1 * s),
        tot_epochs: 3,
        tot_time: 3 * s,
        tot_iterations: 30,
        epoch_time: [1, 2, 3].map((x) => x * s),
      },
      s === 3 ? "{ broken" : { ...SGN_CONFIG, dataset: "mnist", seed: s },
    );
  }
  await writeRun(
    join(ours, "handmade"),
    { avg_loss: [0.7, 0.6], test_acc: [0.8, 0.85], tot_time: 4, epoch_time: [2, 4] },
    { config: { SOLVER: "SGD", LR0: 0.5 }, dataset: "fashion", seed: 2 },
  );
  await writeRun(
    join(seed, "res_SGN_3_1"),
    {
      avg_loss: [0.9, 0.3, 0.1, 0.05],
      test_acc: [0.8, 0.9, 0.92, 0.93],
      tot_time: 8,
      tot_epochs: 4,
    },
    SGN_CONFIG,
  );
  await writeRun(
    join(seed, "res_SGN_3_2"),
    { avg_loss: [1.1, 0.5, 0.3], test_acc: [0.7, 0.8, 0.9], tot_time: 3, tot_epochs: 3 },
    SGN_CONFIG,
  );
  await writeRun(
    join(seed, "res_SGD_1_1"),
    '{"avg_loss": [2.0, NaN], "test_acc": [0.1, NaN], "tot_time": 2.0, "tot_epochs": 2}',
    SGD_CONFIG,
  );
  await writeRun(join(seed, "res_SGD_1_2"), '{"avg_loss": [1, 2', SGD_CONFIG);
  await writeRun(
    join(seed, "res_SGD_1_3"),
    { avg_loss: [1, 2, 3], test_acc: [0.1, 0.2], tot_time: 1 },
    SGD_CONFIG,
  );
  await writeRun(join(seed, "res_SGD_1_4"), undefined, SGD_CONFIG);
  await writeRun(
    join(seed, "res_SGD_1_5"),
    { avg_loss: [1, "x"], test_acc: [0.1, 0.2], tot_time: 1 },
    SGD_CONFIG,
  );
  return { ours, seed };
}

function group(groups: Group[], label: string): Group {
  const g = groups.find((g) => g.label === label);
  assert.ok(g, `no group "${label}" among ${groups.map((g) => g.label).join(", ")}`);
  return g;
}

Deno.test("report: run folder names and config.json give solver, setting and seed", () => {
  assert.deepEqual(parseRunName("res_SGN_3_1"), { solver: "SGN", setting: "3", seed: "1" });
  assert.deepEqual(parseRunName("res_SGD_0.1_4"), { solver: "SGD", setting: "0.1", seed: "4" });
  assert.deepEqual(parseRunName("res_Adam_0.001_12"), {
    solver: "Adam",
    setting: "0.001",
    seed: "12",
  });
  assert.equal(parseRunName("res_mnist"), undefined);
  assert.equal(parseRunName("res_SGN_3"), undefined);
  assert.equal(parseRunName("run_SGN_3_1"), undefined);
  assert.deepEqual(configNaming({ config: { SOLVER: "SGN", MAX_CG_ITERS: 10 }, seed: 3 }), {
    solver: "SGN",
    setting: "10",
    seed: "3",
    dataset: undefined,
  });
  assert.deepEqual(configNaming({ config: { SOLVER: "SGD", LR0: 0.01 }, dataset: "boston" }), {
    solver: "SGD",
    setting: "0.01",
    seed: undefined,
    dataset: "boston",
  });
  assert.equal(configNaming({ layers: [1] }), undefined);
  assert.equal(configNaming("SGN"), undefined);
});

Deno.test("report: results.json validation names the file and the reason", () => {
  const seed = parseResults('{"avg_loss": [3, 2, 1], "test_loss": [4, 3, 2], "tot_time": 6}', "a");
  closeAll(seed.series!.seconds, [2, 4, 6], "tot_time spread evenly");
  assert.equal(seed.series!.timeBasis, "tot_time");
  assert.equal(seed.series!.metric, "test_loss");
  assert.deepEqual(seed.problems, []);

  const ours = parseResults(
    JSON.stringify({ avg_loss: [2, 1], test_acc: [0.5, 0.6], tot_time: 9, epoch_time: [4, 9] }),
    "b",
  );
  assert.deepEqual(ours.series!.seconds, [4, 9]);
  assert.equal(ours.series!.timeBasis, "epoch_time");

  // Python's json writes bare NaN and Infinity for a diverged run: read, drawn up to there.
  const diverged = parseResults(
    '{"avg_loss": [1.5, Infinity, NaN], "test_acc": [0.1, 0.1, NaN], "tot_time": 3}',
    "c",
  );
  assert.equal(diverged.series!.avgLoss[1], Infinity);
  assert.ok(Number.isNaN(diverged.series!.avgLoss[2]));
  assert.deepEqual(diverged.problems.map((p) => [p.file, p.skipped]), [["c", false]]);
  assert.match(diverged.problems[0].reason, /not finite from epoch 2/);

  const skipped: [string, RegExp][] = [
    ["{not json", /not valid JSON/],
    ["[1, 2]", /not an object/],
    ['{"test_acc": [1], "tot_time": 1}', /no avg_loss/],
    ['{"avg_loss": [], "tot_time": 1}', /avg_loss is empty/],
    ['{"avg_loss": 3, "tot_time": 1}', /avg_loss is 3, not a list/],
    ['{"avg_loss": [1, "x"], "tot_time": 1}', /avg_loss\[1\] is "x", not a number/],
    ['{"avg_loss": [1, null], "tot_time": 1}', /avg_loss\[1\] is null, not a number/],
    [
      '{"avg_loss": [1, 2], "test_acc": [1], "tot_time": 1}',
      /test_acc has 1 entries but avg_loss has 2/,
    ],
    ['{"avg_loss": [1, 2], "epoch_time": [1]}', /epoch_time has 1 entries/],
    ['{"avg_loss": [1, 2], "epoch_time": [2, 1]}', /epoch_time\[1\] = 1/],
    ['{"avg_loss": [1, 2], "tot_time": "long"}', /tot_time is "long"/],
    ['{"avg_loss": [1, 2], "test_acc": [1, 1]}', /neither epoch_time nor tot_time/],
  ];
  for (const [text, why] of skipped) {
    const r = parseResults(text, "runs/x/results.json");
    assert.equal(r.series, undefined, text);
    const last = r.problems.at(-1)!;
    assert.equal(last.file, "runs/x/results.json");
    assert.equal(last.skipped, true);
    assert.match(last.reason, why, text);
  }

  const noMetric = parseResults('{"avg_loss": [1, 2], "tot_time": 2, "tot_epochs": 5}', "d");
  assert.ok(noMetric.series);
  assert.deepEqual(noMetric.problems.map((p) => p.skipped), [false, false]);
  assert.match(noMetric.problems[0].reason, /no test_acc or test_loss/);
  assert.match(noMetric.problems[1].reason, /tot_epochs is 5 but avg_loss has 2/);
});

Deno.test("report: statistics over seeds, by hand", () => {
  // Epoch 1: 1, 3, 2 (mean 2, sample std 1); epoch 2: 2, 4, 6 (mean 4, std 2); the third run
  // has only two epochs, so epoch 3 (where only two runs have data) is not aggregated.
  const b = aggregate([[1, 2, 3], [3, 4, 5], [2, 6]]);
  closeAll(b.mean, [2, 4], "mean");
  closeAll(b.min, [1, 2], "min");
  closeAll(b.max, [3, 6], "max");
  closeAll(b.std, [1, 2], "std");
  const one = aggregate([[5, 7]]);
  closeAll(one.std, [0, 0], "std of one run");
  const gap = aggregate([[1, NaN], [2, 3]]);
  assert.deepEqual(gap.mean, [1.5, null]);
  assert.deepEqual(gap.min, [1, null]);
  assert.deepEqual(finalFigure([0.9, 0.7, NaN]), {
    mean: 0.8,
    min: 0.7,
    max: 0.9,
    nonFinite: 1,
  });
  assert.deepEqual(finalFigure([NaN]), { mean: null, min: null, max: null, nonFinite: 1 });
});

Deno.test("report: collecting and grouping runs, with broken files reported and skipped", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    const { ours, seed } = await writeFixture(root);
    const c = await collectRuns([{ label: "ours", path: ours }, { label: "seed", path: seed }]);
    assert.deepEqual(c.groups.map((g) => g.label), [
      "ours fashion SGD_0.5 (n=1)",
      "seed mnist SGD_1 (n=1)",
      "ours mnist SGN_3 (n=3)",
      "seed mnist SGN_3 (n=2)",
    ]);
    assert.deepEqual(c.sources.map((s) => [s.label, s.runs]), [["ours", 4], ["seed", 3]]);

    // Ours, seed s: loss (1, 0.5, 0.25) * s, accuracy (0.4, 0.5, 0.6) + 0.1 s, seconds (1, 2, 3) * s.
    const o = group(c.groups, "ours mnist SGN_3 (n=3)");
    closeAll(o.loss.mean, [2, 1, 0.5], "ours loss mean");
    closeAll(o.loss.min, [1, 0.5, 0.25], "ours loss min");
    closeAll(o.loss.max, [3, 1.5, 0.75], "ours loss max");
    closeAll(o.loss.std, [1, 0.5, 0.25], "ours loss std");
    closeAll(o.metricBand!.mean, [0.6, 0.7, 0.8], "ours accuracy mean");
    closeAll(o.seconds, [2, 4, 6], "ours seconds");
    assert.equal(o.metric, "test_acc");
    assert.equal(o.timeBasis, "epoch_time");
    close(o.final.loss.mean, 0.5, "final loss");
    close(o.final.loss.min, 0.25, "final loss min");
    close(o.final.metric!.max, 0.9, "final accuracy max");
    close(o.final.secondsPerEpoch, 2, "seconds per epoch");
    assert.deepEqual(o.notes, []);

    // The seed's: 4 and 3 epochs with only tot_time (8 s and 3 s): seconds (2, 4, 6, 8) and
    // (1, 2, 3); lines stop at epoch 3.
    const s = group(c.groups, "seed mnist SGN_3 (n=2)");
    assert.deepEqual(s.epochs, { min: 3, max: 4 });
    closeAll(s.loss.mean, [1, 0.4, 0.2], "seed loss mean");
    closeAll(s.seconds, [1.5, 3, 4.5], "seed seconds");
    close(s.final.loss.mean, 0.175, "seed final loss (each run's last epoch)");
    close(s.final.secondsPerEpoch, 1.5, "seed seconds per epoch");
    assert.equal(s.timeBasis, "tot_time");
    assert.match(s.notes.join(), /3-4 epochs/);

    const d = group(c.groups, "seed mnist SGD_1 (n=1)");
    assert.deepEqual(d.loss.mean, [2, null]);
    assert.equal(d.final.loss.nonFinite, 1);
    assert.match(d.notes.join(), /1 of 1 runs diverged/);

    // A folder not named res_*: config.json names it, and its data set is the experiment.
    const h = group(c.groups, "ours fashion SGD_0.5 (n=1)");
    assert.equal(h.runs[0].seed, "2");

    const problems = c.problems.map((p) =>
      `${p.file}: ${p.reason}${p.skipped ? " [skipped]" : ""}`
    );
    const expect: [string, RegExp][] = [
      [join(ours, "res_SGN_3_3/config.json"), /^not valid JSON.*(?<!\[skipped\])$/],
      [join(seed, "res_SGD_1_1/results.json"), /not finite from epoch 2/],
      [join(seed, "res_SGD_1_2/results.json"), /not valid JSON.*\[skipped\]$/],
      [
        join(seed, "res_SGD_1_3/results.json"),
        /test_acc has 2 entries but avg_loss has 3 \[skipped\]/,
      ],
      [join(seed, "res_SGD_1_4/results.json"), /missing.*\[skipped\]/],
      [join(seed, "res_SGD_1_5/results.json"), /avg_loss\[1\] is "x", not a number \[skipped\]/],
    ];
    for (const [file, why] of expect) {
      const line = problems.find((p) => p.startsWith(`${file}: `));
      assert.ok(line, `no problem reported for ${file} in:\n${problems.join("\n")}`);
      assert.match(line.slice(file.length + 2), why);
    }
    assert.equal(c.problems.length, expect.length, problems.join("\n"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: globs, labels, and a run reached twice counted once", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    const { ours, seed } = await writeFixture(root);
    assert.deepEqual(await expandGlob(join(root, "*/results/mnist/res_SGN_3_[12]")), [
      join(ours, "res_SGN_3_1"),
      join(ours, "res_SGN_3_2"),
      join(seed, "res_SGN_3_1"),
      join(seed, "res_SGN_3_2"),
    ]);
    assert.equal((await expandGlob(join(root, "**/res_SGD_1_?"))).length, 5);
    assert.deepEqual(await expandGlob(join(root, "nothing*")), []);
    assert.deepEqual(await expandGlob("plain/path"), ["plain/path"]);

    assert.equal(defaultLabel(ours), "ours");
    assert.equal(defaultLabel(join(seed, "res_SGN_3_1")), "seed");
    assert.equal(defaultLabel(join(root, "seed/results/*/res_SGN_*")), "seed");
    assert.equal(defaultLabel("/tmp/some/runs"), "runs");
    assert.deepEqual(parseSourceArg(`mine=${ours}`), { label: "mine", path: ours });
    assert.deepEqual(parseSourceArg(ours), { label: "ours", path: ours });

    const c = await collectRuns([
      { label: "a", path: join(root, "*/results/mnist/res_SGN_*") },
      { label: "a", path: join(ours, "res_SGN_3_1") },
      { label: "b", path: join(ours, "res_SGN_3_1/results.json") },
      { label: "c", path: join(root, "missing") },
      { label: "d", path: join(root, "nope*") },
    ]);
    assert.deepEqual(c.groups.map((g) => g.label), [
      "a mnist SGN_3 (n=5)",
      "b mnist SGN_3 (n=1)",
    ]);
    assert.ok(c.problems.some((p) => p.file === join(root, "missing") && /no such/.test(p.reason)));
    assert.ok(
      c.problems.some((p) => p.file === join(root, "nope*") && /matches nothing/.test(p.reason)),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: maxEpochs cuts every run to its first epochs before grouping", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    const long = {
      avg_loss: [4, 3, 2, 1],
      acc: [0.1, 0.2, 0.3, 0.4],
      test_acc: [0.5, 0.6, 0.7, 0.8],
      tot_time: 40,
      tot_iterations: 4,
      tot_epochs: 4,
    };
    await writeRun(join(root, "r/mnist/res_SGN_3_1"), long, SGN_CONFIG);
    const all = await collectRuns([{ label: "x", path: root }]);
    assert.deepEqual(all.runs[0].avgLoss, [4, 3, 2, 1]);
    const cut = await collectRuns([{ label: "x", path: root }], { maxEpochs: 2 });
    assert.deepEqual(cut.runs[0].avgLoss, [4, 3]);
    assert.deepEqual(cut.runs[0].metricValues, [0.5, 0.6]);
    // The seed's files spread tot_time evenly: epoch 2 of 4 ends at 20 s.
    assert.deepEqual(cut.runs[0].seconds, [10, 20]);
    assert.equal(cut.groups[0].final.metric?.mean, 0.6);
    await assert.rejects(
      () => collectRuns([{ label: "x", path: root }], { maxEpochs: 0 }),
      /maxEpochs must be a positive integer, got 0/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: the command's errors exit 2; no run at all is an error", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    await writeRun(join(root, "res_SGN_3_1"), "{bad", SGN_CONFIG);
    await assert.rejects(
      writeReport([root], join(root, "r.html")),
      (e: unknown) =>
        e instanceof NoRunsError && e.problems.length === 1 &&
        e.problems[0].file === join(root, "res_SGN_3_1/results.json"),
    );
    assert.equal(await reportCommand([root, "--out", join(root, "r.html")]), 2);
    assert.equal(await reportCommand([root]), 2);
    assert.equal(await reportCommand(["--out", join(root, "r.html")]), 2);
    assert.equal(await reportCommand(["--bogus"]), 2);
    await assert.rejects(Deno.stat(join(root, "r.html")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: a metric choice appears only when test accuracy and test loss are mixed", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    await writeRun(join(root, "mnist/res_SGN_3_1"), {
      avg_loss: [1],
      test_acc: [0.5],
      tot_time: 1,
    });
    await writeRun(join(root, "boston/res_SGN_3_1"), {
      avg_loss: [1],
      test_loss: [0.5],
      tot_time: 1,
    });
    const both = await collectRuns([{ label: "x", path: root }]);
    const html = buildReportHtml(both, { title: "t <&>", script: "" });
    assert.match(html, /<select id="metric">/);
    assert.match(html, /<title>t &#60;&#38;&#62;<\/title>/);
    const one = await collectRuns([{ label: "x", path: join(root, "mnist") }]);
    assert.doesNotMatch(buildReportHtml(one, { title: "t", script: "" }), /id="metric"/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const RUN = { avg_loss: [1, 0.5], test_acc: [0.5, 0.6], tot_time: 2, epoch_time: [1, 2] };

/** Rejects when `promise` has not settled after `ms`, so a hang fails the test instead of stalling it. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `cli.ts report ...args` in a subprocess, killed after `ms`. */
async function runReportCli(args: string[], ms = 120_000) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "report", ...args],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: abort.signal,
    }).output();
    return {
      code: out.code,
      signal: out.signal,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** The error output of a command that failed cleanly: "error: ..." on one line, no stack. */
function assertOneLineError(stderr: string, why: RegExp) {
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `more than one line on stderr:\n${stderr}`);
  assert.match(lines[0], /^error: /);
  assert.match(lines[0], why);
  assert.doesNotMatch(stderr, /^\s+at /m, "a stack trace");
}

async function mkfifo(path: string) {
  const { code, stderr } = await new Deno.Command("mkfifo", { args: [path], stderr: "piped" })
    .output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

Deno.test("report: symlink loops end, and the real runs are found once", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    await writeRun(join(root, "a/res_SGN_3_1"), RUN, SGN_CONFIG);
    await writeRun(join(root, "b/res_SGN_3_2"), RUN, SGN_CONFIG);
    // Two loops back to the root: a walk that follows links without remembering where it has
    // been branches twice per level (2^40 paths before the kernel's symlink limit stops it).
    await Deno.symlink("..", join(root, "a/loop"));
    await Deno.symlink("..", join(root, "b/loop"));
    const runs = [join(root, "a/res_SGN_3_1"), join(root, "b/res_SGN_3_2")];

    const globbed = await within(20_000, "expandGlob", expandGlob(join(root, "**/res_SGN_*")));
    assert.deepEqual(globbed.sort(), runs);
    assert.deepEqual(
      (await within(20_000, "expandGlob", expandGlob(join(root, "a/loop/**/res_SGN_3_1")))).length,
      1,
    );
    for (const path of [root, join(root, "**/res_SGN_*"), join(root, "a/loop")]) {
      const c = await within(20_000, `collectRuns(${path})`, collectRuns([{ label: "x", path }]));
      assert.deepEqual(c.runs.map((r) => r.seed).sort(), ["1", "2"], path);
      assert.deepEqual(c.groups.map((g) => g.label), ["x a SGN_3 (n=1)", "x b SGN_3 (n=1)"]);
      assert.deepEqual(c.problems, [], path);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: only regular files are read: a FIFO, /dev/zero, a folder are problems", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    await writeRun(join(root, "res_SGN_3_1"), RUN, SGN_CONFIG);
    await writeRun(join(root, "res_SGN_3_2"), undefined, SGN_CONFIG);
    await mkfifo(join(root, "res_SGN_3_2/results.json"));
    await writeRun(join(root, "res_SGN_3_3"), undefined, SGN_CONFIG);
    await Deno.symlink("/dev/zero", join(root, "res_SGN_3_3/results.json"));
    await writeRun(join(root, "res_SGN_3_4"), undefined, SGN_CONFIG);
    await Deno.mkdir(join(root, "res_SGN_3_4/results.json"));
    await writeRun(join(root, "res_SGN_3_5"), undefined, SGN_CONFIG);
    await Deno.symlink(join(root, "gone.json"), join(root, "res_SGN_3_5/results.json"));
    // A config.json that is not a regular file only loses the run its name: still drawn.
    await writeRun(join(root, "res_SGN_3_6"), RUN);
    await mkfifo(join(root, "res_SGN_3_6/config.json"));

    const c = await within(20_000, "collectRuns", collectRuns([{ label: "x", path: root }]));
    assert.deepEqual(c.runs.map((r) => r.seed), ["1", "6"]);
    const expect: [string, RegExp, boolean][] = [
      ["res_SGN_3_2/results.json", /^is a named pipe \(FIFO\), not a regular file/, true],
      [
        "res_SGN_3_3/results.json",
        /^is a symlink to \/dev\/zero, a character device, not a regular file/,
        true,
      ],
      ["res_SGN_3_4/results.json", /^is a folder, not a regular file/, true],
      ["res_SGN_3_5/results.json", /^is a symlink to .*gone\.json, which does not exist/, true],
      ["res_SGN_3_6/config.json", /^is a named pipe \(FIFO\), not a regular file/, false],
    ];
    for (const [file, why, skipped] of expect) {
      const p = c.problems.find((p) => p.file === join(root, file));
      assert.ok(p, `no problem for ${file}: ${JSON.stringify(c.problems)}`);
      assert.match(p.reason, why);
      assert.equal(p.skipped, skipped, file);
    }
    assert.equal(c.problems.length, expect.length, JSON.stringify(c.problems));

    // The command ends too, lists the problems and draws the two good runs.
    const out = join(root, "r.html");
    const run = await runReportCli([root, "--out", out]);
    assert.equal(run.signal, null, `killed: the command hung\n${run.stderr}`);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /2 runs in 1 groups, 5 problems/);
    assert.match(run.stderr, /res_SGN_3_2\/results\.json: is a named pipe/);
    assert.match(run.stderr, /res_SGN_3_3\/results\.json: is a symlink to \/dev\/zero/);
    assert.ok((await Deno.stat(out)).size > 1000);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: files over the size limits are problems and are not read", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    assert.equal(INPUT_LIMITS.resultsJson, 64 * 2 ** 20);
    assert.equal(INPUT_LIMITS.configJson, 2 ** 20);
    // One byte over the real limit, as a sparse file: no 64 MiB written or read.
    await writeRun(join(root, "big/res_SGN_3_1"), undefined, SGN_CONFIG);
    const big = await Deno.open(join(root, "big/res_SGN_3_1/results.json"), {
      write: true,
      create: true,
    });
    await big.truncate(64 * 2 ** 20 + 1);
    big.close();
    await writeRun(join(root, "big/res_SGN_3_2"), RUN, SGN_CONFIG);
    const c = await collectRuns([{ label: "x", path: join(root, "big") }]);
    assert.deepEqual(c.runs.map((r) => r.seed), ["2"]);
    assert.deepEqual(c.problems, [{
      file: join(root, "big/res_SGN_3_1/results.json"),
      reason: "is 67108865 bytes, over the 64 MiB limit for a results.json: not read",
      skipped: true,
    }]);

    // Smaller limits from code: results.json and config.json each over theirs.
    const results = JSON.stringify(RUN);
    const config = JSON.stringify(SGN_CONFIG);
    await writeRun(join(root, "small/res_SGN_3_1"), results, config);
    await writeRun(join(root, "small/res_SGN_3_2"), `${results}${" ".repeat(100)}`, config);
    const limits = { resultsJson: results.length, configJson: config.length - 1 };
    const s = await collectRuns([{ label: "x", path: join(root, "small") }], { limits });
    assert.deepEqual(s.runs.map((r) => r.seed), ["1"]);
    assert.deepEqual(s.problems.map((p) => [p.file, p.reason, p.skipped]), [
      [
        join(root, "small/res_SGN_3_1/config.json"),
        `is ${config.length} bytes, over the ${config.length - 1} bytes limit for a ` +
        "config.json: not read",
        false,
      ],
      [
        join(root, "small/res_SGN_3_2/results.json"),
        `is ${results.length + 100} bytes, over the ${results.length} bytes limit for a ` +
        "results.json: not read",
        true,
      ],
    ]);
    await assert.rejects(
      collectRuns([{ label: "x", path: root }], { limits: { configJson: 0 } }),
      /limits.configJson must be a positive number of bytes, got 0/,
    );

    // A file whose size stat does not know (0 in /proc) is still cut off while read.
    if (Deno.build.os === "linux") {
      await writeRun(join(root, "proc/res_SGN_3_1"), undefined, SGN_CONFIG);
      await Deno.symlink("/proc/self/status", join(root, "proc/res_SGN_3_1/results.json"));
      const p = await collectRuns([{ label: "x", path: join(root, "proc") }], {
        limits: { resultsJson: 100 },
      });
      assert.equal(p.runs.length, 0);
      assert.match(p.problems[0].reason, /^grew past 100 bytes while read, over the 100 bytes/);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: run status is read, validated, and summed up per group", async () => {
  const ok = (extra: Record<string, unknown>) => JSON.stringify({ ...RUN, ...extra });
  for (const status of ["running", "finished", "diverged", "interrupted"]) {
    const r = parseResults(ok({ status, status_reason: "why" }), "r.json");
    assert.equal(r.series?.status, status);
    assert.equal(r.series?.statusReason, "why");
    assert.deepEqual(r.problems, []);
  }
  assert.equal(parseResults(ok({}), "r.json").series?.status, "finished");
  const unknown = parseResults(ok({ status: "crashed" }), "runs/x/results.json");
  assert.equal(unknown.series, undefined);
  assert.deepEqual(unknown.problems.map((p) => [p.file, p.skipped]), [[
    "runs/x/results.json",
    true,
  ]]);
  assert.match(unknown.problems[0].reason, /^status is "crashed", not one of "finished", /);
  assert.match(parseResults(ok({ status: 3 }), "f").problems[0].reason, /^status is 3, not one/);
  const badReason = parseResults(ok({ status: "diverged", status_reason: ["x"] }), "f");
  assert.equal(badReason.series?.statusReason, undefined);
  assert.deepEqual(badReason.problems.map((p) => [p.reason, p.skipped]), [[
    "status_reason is a list, not a string: ignored",
    false,
  ]]);
  const long = parseResults(ok({ status: "diverged", status_reason: "x".repeat(10_000) }), "f");
  assert.ok(long.series!.statusReason!.length < 400);
  assert.match(
    parseResults('{"avg_loss": [], "tot_time": 0, "status": "running"}', "f").problems[0].reason,
    /avg_loss is empty: the run is running with no epoch done yet/,
  );

  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    const statuses = [
      { status: "diverged", status_reason: "loss is NaN at step 12" },
      {},
      { status: "running" },
      { status: "diverged", status_reason: "loss is NaN at step 12" },
      { status: "finished" },
    ];
    for (const [i, extra] of statuses.entries()) {
      await writeRun(join(root, `mnist/res_SGN_3_${i + 1}`), ok(extra), SGN_CONFIG);
    }
    await writeRun(join(root, "mnist/res_SGD_1_1"), ok({}), SGD_CONFIG);
    await writeRun(join(root, "mnist/res_SGD_1_2"), ok({ status: "interrupted" }), SGD_CONFIG);
    await writeRun(join(root, "mnist/res_SGD_1_3"), ok({ status: "done" }), SGD_CONFIG);
    const c = await collectRuns([{ label: "x", path: root }]);
    const sgn = group(c.groups, "x mnist SGN_3 (n=5)");
    assert.deepEqual(sgn.status.counts, { finished: 2, diverged: 2, interrupted: 0, running: 1 });
    assert.deepEqual(sgn.status.reasons, { diverged: ["loss is NaN at step 12"] });
    assert.equal(
      sgn.status.summary,
      "2 of 5 runs diverged: loss is NaN at step 12; 1 of 5 runs still running",
    );
    assert.equal(sgn.status.short, "2 diverged, 1 running");
    const sgd = group(c.groups, "x mnist SGD_1 (n=2)");
    assert.equal(sgd.status.summary, "1 of 2 runs interrupted");
    assert.deepEqual(c.problems.map((p) => [p.file, p.skipped]), [[
      join(root, "mnist/res_SGD_1_3/results.json"),
      true,
    ]]);
    assert.match(c.problems[0].reason, /^status is "done", not one of/);

    await writeRun(join(root, "fashion/res_SGN_3_1"), ok({}), SGN_CONFIG);
    await writeRun(join(root, "fashion/res_SGN_3_2"), ok({}), SGN_CONFIG);
    const all = await collectRuns([{ label: "x", path: root }]);
    assert.equal(group(all.groups, "x fashion SGN_3 (n=2)").status.summary, undefined);
    const html = buildReportHtml(all, { title: "t", script: "" });
    const row = (label: string) => {
      const m = new RegExp(`<tr data-group="${label.replace(/[()]/g, "\\$&")}"[^>]*>.*</tr>`)
        .exec(html);
      assert.ok(m, `no table row for ${label}`);
      return m[0];
    };
    assert.match(
      row("x mnist SGN_3 (n=5)"),
      /class="unfinished".*<td class="status unfinished">2 of 5 runs diverged: loss is NaN at step 12; 1 of 5 runs still running<\/td><\/tr>$/,
    );
    assert.match(row("x fashion SGN_3 (n=2)"), /<td class="status">all 2 finished<\/td><\/tr>$/);
    assert.doesNotMatch(row("x fashion SGN_3 (n=2)"), /unfinished/);
    const data = JSON.parse(
      /<script type="application\/json" id="sgn-data">(.*?)<\/script>/.exec(
        html,
      )![1],
    );
    const page = data.groups.find((g: { label: string }) => g.label === "x mnist SGN_3 (n=5)");
    assert.equal(page.status, "2 diverged, 1 running");
    assert.match(page.statusDetail, /^2 of 5 runs diverged/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: --out must be a file in an existing folder and never an input", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
  try {
    const run = join(root, "res_SGN_3_1");
    const results = JSON.stringify(RUN);
    await writeRun(run, results, SGN_CONFIG);
    await Deno.symlink(join(run, "results.json"), join(root, "alias.html"));
    await Deno.mkdir(join(root, "other"));
    await Deno.writeTextFile(join(root, "other/config.json"), "{}");
    await Deno.symlink(join(root, "other/config.json"), join(root, "alias2.html"));
    // A run whose results.json links to a file with another name: that file is an input too.
    await Deno.mkdir(join(root, "store"));
    await Deno.writeTextFile(join(root, "store/r1.json"), results);
    await writeRun(join(root, "res_SGN_3_2"), undefined, SGN_CONFIG);
    await Deno.symlink(join(root, "store/r1.json"), join(root, "res_SGN_3_2/results.json"));
    const sources = [run, join(root, "res_SGN_3_2")];
    const refused: [string, RegExp][] = [
      [join(root, "missing/r.html"), /the folder .*missing does not exist; create it first/],
      [root, /that is a folder; give the report a file name, e.g. .*\/report\.html/],
      [`${root}/`, /that names a folder; give a file name/],
      [join(run, "results.json"), /a file named results\.json would be taken for a run's/],
      [join(root, "elsewhere/config.json"), /a file named config\.json/],
      [join(root, "alias.html"), /a file named results\.json would be taken for a run's/],
      [join(root, "store/r1.json"), /that is .*store\/r1\.json, one of the report's inputs/],
      [join(root, "alias2.html"), /a file named config\.json would be taken for a run's/],
      ["/dev/null", /that is not a regular file \(a device or a FIFO\)/],
      [join(root, "alias.html/r.html"), /is not a folder/],
    ];
    for (const [out, why] of refused) {
      await assert.rejects(
        writeReport(sources, out),
        (e: unknown) => {
          assert.ok(e instanceof SgnError, `${out}: ${e}`);
          assert.match(e.message, new RegExp(`^cannot write the report to "${out}": `));
          assert.match(e.message, why);
          return true;
        },
      );
    }
    assert.equal(await Deno.readTextFile(join(run, "results.json")), results);
    assert.deepEqual(
      [...Deno.readDirSync(root)].map((e) => e.name).sort(),
      ["alias.html", "alias2.html", "other", "res_SGN_3_1", "res_SGN_3_2", "store"],
    );
    assert.deepEqual([...Deno.readDirSync(join(root, "store"))].map((e) => e.name), ["r1.json"]);
    assert.equal(await Deno.readTextFile(join(root, "store/r1.json")), results);
    assert.equal(await Deno.readTextFile(join(root, "other/config.json")), "{}");

    // The command: one line, exit code 2, no stack trace; and a write that fails is the same.
    const cases: [string, RegExp][] = [
      [join(root, "missing/r.html"), /does not exist; create it first \(mkdir -p /],
      [root, /that is a folder/],
      [join(run, "results.json"), /would be taken for a run's results/],
      [join(root, "store/r1.json"), /one of the report's inputs/],
    ];
    if (Deno.build.os === "linux") {
      // Nobody, not even root, creates files in /proc: the write itself fails.
      cases.push(["/proc/sgn-report.html", /^error: cannot write the report to "\/proc\/.*"/]);
    }
    const runs = await Promise.all(cases.map(([out]) => runReportCli([...sources, "--out", out])));
    runs.forEach((r, i) => {
      assert.equal(r.code, 2, `--out ${cases[i][0]}: exit ${r.code}\n${r.stderr}`);
      assertOneLineError(r.stderr, cases[i][1]);
      assert.equal(r.stdout, "");
    });
    assert.equal(await Deno.readTextFile(join(run, "results.json")), results);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeFileAtomic: whole or not at all, and no temporary file left", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-atomic-test-" });
  const names = () => [...Deno.readDirSync(root)].map((e) => e.name).sort();
  try {
    const dest = join(root, "results.json");
    await writeFileAtomic(dest, "first");
    assert.equal(await Deno.readTextFile(dest), "first");
    await Deno.chmod(dest, 0o640);
    await writeFileAtomic(dest, new TextEncoder().encode("second"));
    assert.equal(await Deno.readTextFile(dest), "second");
    assert.equal((await Deno.stat(dest)).mode! & 0o777, 0o640, "the mode is kept");
    assert.deepEqual(names(), ["results.json"]);

    // The rename fails (the destination is a folder with a file in it): nothing is left.
    await Deno.mkdir(join(root, "taken"));
    await Deno.writeTextFile(join(root, "taken/x"), "x");
    await assert.rejects(writeFileAtomic(join(root, "taken"), "data"));
    assert.deepEqual(names(), ["results.json", "taken"]);
    assert.deepEqual([...Deno.readDirSync(join(root, "taken"))].map((e) => e.name), ["x"]);
    await assert.rejects(
      writeFileAtomic(join(root, "no/such/folder/f"), "data"),
      Deno.errors.NotFound,
    );

    // The write fails half-way (a file size limit of 64 KiB, with SIGXFSZ ignored so that the
    // write returns EFBIG): the old file is whole and the temporary file is gone. A plain
    // Deno.writeTextFile would leave a 64 KiB truncated file here.
    if (Deno.build.os === "linux") {
      const script = join(root, "write.ts");
      await Deno.writeTextFile(
        script,
        `import { writeFileAtomic } from ${
          JSON.stringify(new URL("../train/atomic.ts", import.meta.url).href)
        };
try {
  await writeFileAtomic(${JSON.stringify(dest)}, "y".repeat(1 << 20));
  console.log("written");
} catch (e) {
  console.log("failed:", (e as Error).message);
}`,
      );
      const { code, stdout, stderr } = await new Deno.Command("bash", {
        args: ["-c", 'ulimit -f 64; trap "" XFSZ; exec "$0" run -A "$1"', Deno.execPath(), script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(stdout);
      assert.equal(code, 0, new TextDecoder().decode(stderr));
      assert.match(said, /^failed: File too large/, said);
      const after = await Deno.readTextFile(dest);
      assert.ok(after === "second", `the destination holds ${after.length} bytes, not "second"`);
      assert.deepEqual(names(), ["results.json", "taken", "write.ts"]);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

interface ChartSummary {
  id: string;
  means: string[];
  points: number;
  colored: number;
}

/** Per chart: its mean series, how many points they lay out, and pixels of the second colour. */
const CHART_SUMMARY = `(() => Object.values(sgnReport.charts).map((c) => {
  const means = c.data.datasets.map((d, i) => [d, i]).filter(([d]) => !/ (low|high)$/.test(d.label));
  const ctx = c.canvas.getContext("2d");
  const px = ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data;
  let colored = 0; // #d62728, the second configuration's colour, give or take antialiasing
  for (let i = 0; i < px.length; i += 4) {
    if (Math.abs(px[i] - 214) < 40 && Math.abs(px[i + 1] - 39) < 40 && Math.abs(px[i + 2] - 40) < 40 && px[i + 3] > 100) colored++;
  }
  return {
    id: c.canvas.id,
    means: means.map(([d]) => d.label),
    points: means.reduce((a, [, i]) => a + c.getDatasetMeta(i).data.filter((p) => !p.skip).length, 0),
    colored,
  };
}))()`;

Deno.test({
  name: "report page in Chromium: four charts drawn, series named, table rows, offline",
  ignore: chromiumIgnore,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
    const shots = await Deno.makeTempDir({ prefix: "sgn-report-screenshot-" });
    try {
      const { ours, seed } = await writeFixture(root);
      // Only the well-formed runs here (the broken ones have their own test below).
      const out = join(root, "report.html");
      const cli = new URL("../cli.ts", import.meta.url).pathname;
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          cli,
          "report",
          `ours=${join(ours, "res_SGN_3_[12]")}`,
          `seed=${join(seed, "res_SGN_3_*")}`,
          `seed=${join(seed, "res_SGD_1_1")}`,
          "--out",
          out,
          "--title",
          "MNIST test report",
        ],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(run.stdout);
      const stderr = new TextDecoder().decode(run.stderr);
      assert.equal(run.code, 0, stderr);
      assert.match(stdout, /wrote .*report\.html .*: 5 runs in 3 groups/);
      // The diverged run is reported ("<file>: <why>") and still drawn.
      assert.match(stderr, /res_SGD_1_1\/results\.json: avg_loss is not finite from epoch 2/);

      await using browser = await launchChromium();
      const page = await browser.open(`file://${out}`);
      await page.waitFor("globalThis.sgnReport?.ready");
      const charts = await page.evaluate<ChartSummary[]>(CHART_SUMMARY);
      assert.deepEqual(charts.map((c) => c.id), [
        "chart-loss-seconds",
        "chart-loss-epochs",
        "chart-metric-seconds",
        "chart-metric-epochs",
      ]);
      const names = ["seed mnist SGD_1 (n=1)", "ours mnist SGN_3 (n=2)", "seed mnist SGN_3 (n=2)"];
      for (const c of charts) {
        assert.deepEqual(c.means, names, c.id);
        // SGD_1: 1 finite epoch; ours SGN_3: 3; the seed's SGN_3: 3 common epochs.
        assert.equal(c.points, 7, c.id);
        assert.ok(c.colored > 50, `${c.id}: the SGN_3 lines are not on the canvas`);
      }
      const legend = await page.evaluate<string[]>(
        "[...document.querySelectorAll('#legend .entry')].map((e) => e.textContent)",
      );
      assert.deepEqual(legend, names);
      const rows = await page.evaluate<string[][]>(
        "[...document.querySelectorAll('#final tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))",
      );
      assert.deepEqual(rows.map((r) => r.slice(0, 5)), [
        ["seed", "mnist", "SGD_1", "1", "2"],
        ["ours", "mnist", "SGN_3", "2", "3"],
        ["seed", "mnist", "SGN_3", "2", "3–4"],
      ]);
      // Ours: final losses 0.25 and 0.5; accuracies 0.7 and 0.8; 1 and 2 s per epoch.
      assert.equal(rows[1][5], "0.3750 [0.2500 – 0.5000]");
      assert.equal(rows[1][6], "test_acc: 75.00% [70.00% – 80.00%]");
      assert.equal(rows[1][7], "1.50");
      assert.match(rows[0][5], /not finite/);
      const notes = await page.evaluate<string>("document.getElementById('notes').textContent");
      assert.match(notes, /Only tot_time is known for all 3 runs of seed/);
      assert.equal(await page.evaluate<string>("document.title"), "MNIST test report");

      // Before the controls change anything: bands and log axes, as the page opens.
      const shot = join(shots, "report.png");
      await page.screenshot(shot);
      assert.ok((await Deno.stat(shot)).size > 10_000);
      console.log(`report screenshot: ${shot}`);

      // The controls redraw: no band, linear axes.
      await page.evaluate(`(() => {
        document.getElementById("band").value = "none";
        document.getElementById("band").dispatchEvent(new Event("change"));
        document.getElementById("log-loss").click();
      })()`);
      assert.equal(
        await page.evaluate<string>("sgnReport.charts.lossSeconds.options.scales.y.type"),
        "linear",
      );
      await page.evaluate("document.getElementById('log-loss').click()");

      assert.deepEqual(page.errors, []);
      assert.deepEqual(page.requests, [`file://${out}`], "the page loads nothing else");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "report page in Chromium: malformed files are listed with their reasons, the rest drawn",
  ignore: chromiumIgnore,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "sgn-report-test-" });
    try {
      const { ours, seed } = await writeFixture(root);
      // A fourth seed of ours that diverged: its group is marked in the legend and the table.
      await writeRun(
        join(ours, "res_SGN_3_4"),
        {
          avg_loss: [4, 2, 1],
          test_acc: [0.4, 0.5, 0.6],
          epoch_time: [1, 2, 3],
          status: "diverged",
          status_reason: "loss is NaN at step 31",
        },
        SGN_CONFIG,
      );
      const out = join(root, "report.html");
      const summary = await writeReport([`ours=${ours}`, `seed=${seed}`], out);
      assert.equal(summary.runs, 8);
      assert.equal(summary.problems.filter((p) => p.skipped).length, 4);

      await using browser = await launchChromium();
      const page = await browser.open(`file://${out}`);
      await page.waitFor("globalThis.sgnReport?.ready");
      const items = await page.evaluate<string[]>(
        "[...document.querySelectorAll('#problems li')].map((li) => li.textContent)",
      );
      for (
        const [file, why] of [
          ["res_SGD_1_2/results.json", "not valid JSON"],
          ["res_SGD_1_3/results.json", "test_acc has 2 entries but avg_loss has 3"],
          ["res_SGD_1_4/results.json", "missing"],
          ["res_SGD_1_5/results.json", 'avg_loss[1] is "x", not a number'],
          ["res_SGN_3_3/config.json", "not valid JSON"],
        ]
      ) {
        const item = items.find((t) =>
          t.includes(join(seed, file)) || t.includes(join(ours, file))
        );
        assert.ok(item, `${file} is not listed: ${items.join(" | ")}`);
        assert.ok(item.includes(why), `${item} does not say ${why}`);
      }
      const charts = await page.evaluate<ChartSummary[]>(CHART_SUMMARY);
      for (const c of charts) {
        assert.deepEqual(c.means, summary.labels, c.id);
        assert.ok(c.points > 0, c.id);
      }
      assert.equal(
        await page.evaluate<number>("document.querySelectorAll('#final tbody tr').length"),
        4,
      );
      const legend = await page.evaluate<[string, string][]>(
        "[...document.querySelectorAll('#legend .entry')].map((e) => [e.textContent, e.title])",
      );
      assert.deepEqual(legend.find(([t]) => t.startsWith("ours mnist SGN_3 (n=4)")), [
        "ours mnist SGN_3 (n=4)(1 diverged)",
        "1 of 4 runs diverged: loss is NaN at step 31",
      ]);
      assert.deepEqual(
        legend.filter(([t]) => t.includes("diverged)")).length,
        1,
        "only that group is marked",
      );
      const statuses = await page.evaluate<string[]>(
        "[...document.querySelectorAll('#final tbody tr')].map((r) => r.cells[r.cells.length - 1].textContent)",
      );
      assert.deepEqual(statuses, [
        "finished",
        "finished",
        "1 of 4 runs diverged: loss is NaN at step 31",
        "all 2 finished",
      ]);
      assert.deepEqual(page.errors, []);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

/** One dataset of a chart as the page holds and draws it. */
interface DrawnDataset {
  label: string;
  /** The dataset's points, [x, y], as the page handed them to Chart.js ("NaN" for a gap). */
  data: [number | "NaN", number | "NaN"][];
  /**
   * Where Chart.js drew each point, read back through the chart's scales (pixel to value):
   * [x, y], or null for a point it skipped (a gap).
   */
  drawn: ([number, number] | null)[];
}

interface DrawnChart {
  view: string;
  xType: string;
  yType: string;
  xTitle: string;
  datasets: DrawnDataset[];
}

/** Every chart's scales and datasets, from the Chart.js objects the page keeps (sgnReport). */
const DRAWN = `(() => {
  const num = (v) => (typeof v === "number" && Number.isNaN(v) ? "NaN" : v);
  return Object.entries(sgnReport.charts).map(([view, c]) => ({
    view,
    xType: c.scales.x.type,
    yType: c.scales.y.type,
    xTitle: c.options.scales.x.title.text,
    datasets: c.data.datasets.map((d, i) => ({
      label: d.label,
      data: d.data.map((p) => [num(p.x), num(p.y)]),
      drawn: c.getDatasetMeta(i).data.map((el) =>
        el.skip ? null : [c.scales.x.getValueForPixel(el.x), c.scales.y.getValueForPixel(el.y)]
      ),
    })),
  }));
})()`;

/**
 * Asserts a series read from the page against numbers worked out by hand, within 5e-6 of
 * `scale` (default |expected|): the report embeds six significant digits, so mean - std is off
 * by up to 5e-6 (|mean| + |std|). NaN (a gap) must be NaN.
 */
function assertSeries(
  actual: readonly (number | "NaN" | null)[],
  expected: readonly number[],
  what: string,
  scale: readonly number[] = expected.map(Math.abs),
) {
  const text = (xs: readonly unknown[]) => `[${xs.join(", ")}]`;
  assert.equal(
    actual.length,
    expected.length,
    `${what}: ${actual.length} points, expected ${expected.length}: ${text(actual)}`,
  );
  expected.forEach((e, i) => {
    const a = actual[i];
    const ok = Number.isNaN(e)
      ? a === "NaN" || a === null
      : typeof a === "number" && Math.abs(a - e) <= 5e-6 * scale[i] + 1e-12;
    assert.ok(
      ok,
      `${what}: point ${i + 1} is ${a}, expected ${e}: ${text(actual)} vs ${text(expected)}`,
    );
  });
}

Deno.test({
  name: "report page in Chromium: the drawn lines, bands, axes and table equal numbers by hand",
  ignore: chromiumIgnore,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "sgn-report-values-" });
    try {
      const ours = join(root, "ours/results");
      const seed = join(root, "seed/results");
      // ours mnist SGN_3, three seeds of 4 epochs, chosen so that at each epoch the deviations
      // from the mean are (3, 5, -8) or (0.8, -0.3, -0.5) times a scale: the mean, min, max and
      // sample std are round numbers, and mean ± std differs from min and max.
      //   loss:     epoch 1: 23, 25, 12    mean 20  min 12   max 25   std 7
      //             epoch 2: 9.5, 9.7, 10.8 mean 10 min 9.5  max 10.8 std 0.7
      //             epoch 3: 4.8, 3.7, 3.5  mean 4  min 3.5  max 4.8  std 0.7
      //             epoch 4: 2, 2.1, 1.9    mean 2  min 1.9  max 2.1  std 0.1
      //   test_acc: epoch 1: .43 .45 .32 mean .4; 2: .55 .57 .68 mean .6; 3: .75 .76 .74 mean
      //             .75; 4: .88 .77 .75 mean .8; std .07 .07 .01 .07 (drawn in percent)
      //   seconds:  epoch_time (1, 2, 3, 4) times the seed: mean (2, 4, 6, 8)
      const loss = [[23, 9.5, 4.8, 2], [25, 9.7, 3.7, 2.1], [12, 10.8, 3.5, 1.9]];
      const acc = [[0.43, 0.55, 0.75, 0.88], [0.45, 0.57, 0.76, 0.77], [0.32, 0.68, 0.74, 0.75]];
      for (let s = 0; s < 3; s++) {
        await writeRun(join(ours, `mnist/res_SGN_3_${s + 1}`), {
          avg_loss: loss[s],
          test_acc: acc[s],
          epoch_time: [1, 2, 3, 4].map((t) => t * (s + 1)),
          tot_time: 4 * (s + 1),
        }, SGN_CONFIG);
      }
      // ours boston SGN_3, two seeds with test_loss: loss (.4, .2) and (.1, .05), test_loss
      // (.5, .3) and (.25, .02) (means over a seed's epochs would differ from those over the
      // seeds); for two values the sample std is |a - b| / sqrt(2), and at epoch 2 of the test
      // loss it exceeds the mean: mean - std = .16 - .198 < 0 is a gap on a log axis.
      await writeRun(join(ours, "boston/res_SGN_3_1"), {
        avg_loss: [0.4, 0.2],
        test_loss: [0.5, 0.3],
        epoch_time: [1, 2],
      }, SGN_CONFIG);
      await writeRun(join(ours, "boston/res_SGN_3_2"), {
        avg_loss: [0.1, 0.05],
        test_loss: [0.25, 0.02],
        epoch_time: [3, 4],
      }, SGN_CONFIG);
      // seed mnist SGN_3, the seed's format (tot_time only): 5 epochs in 10 s and 3 epochs in
      // 9 s, so seconds (2, 4, 6, 8, 10) and (3, 6, 9); lines stop at epoch 3.
      await writeRun(join(seed, "mnist/res_SGN_3_1"), {
        avg_loss: [5, 2.5, 1, 0.5, 0.25],
        test_acc: [0.5, 0.6, 0.7, 0.8, 0.9],
        tot_time: 10,
        tot_epochs: 5,
      }, SGN_CONFIG);
      await writeRun(join(seed, "mnist/res_SGN_3_2"), {
        avg_loss: [3, 1.5, 1],
        test_acc: [0.3, 0.4, 0.5],
        tot_time: 9,
        tot_epochs: 3,
      }, SGN_CONFIG);

      const r2 = Math.SQRT2;
      /** Each group as worked out above: x values, and each series' mean, min, max and std. */
      const groups = {
        "ours boston SGN_3 (n=2)": {
          epochs: [1, 2],
          seconds: [2, 3],
          loss: {
            mean: [0.25, 0.125],
            min: [0.1, 0.05],
            max: [0.4, 0.2],
            std: [0.15 * r2, 0.075 * r2],
          },
          metric: "test_loss",
          test: {
            mean: [0.375, 0.16],
            min: [0.25, 0.02],
            max: [0.5, 0.3],
            std: [0.125 * r2, 0.14 * r2],
          },
        },
        "ours mnist SGN_3 (n=3)": {
          epochs: [1, 2, 3, 4],
          seconds: [2, 4, 6, 8],
          loss: {
            mean: [20, 10, 4, 2],
            min: [12, 9.5, 3.5, 1.9],
            max: [25, 10.8, 4.8, 2.1],
            std: [7, 0.7, 0.7, 0.1],
          },
          metric: "test_acc",
          test: {
            mean: [40, 60, 75, 80],
            min: [32, 55, 74, 75],
            max: [45, 68, 76, 88],
            std: [7, 7, 1, 7],
          },
        },
        "seed mnist SGN_3 (n=2)": {
          epochs: [1, 2, 3],
          seconds: [2.5, 5, 7.5],
          loss: { mean: [4, 2, 1], min: [3, 1.5, 1], max: [5, 2.5, 1], std: [r2, r2 / 2, 0] },
          metric: "test_acc",
          test: {
            mean: [40, 50, 60],
            min: [30, 40, 50],
            max: [50, 60, 70],
            std: [10 * r2, 10 * r2, 10 * r2],
          },
        },
      } as const;
      type Stats = {
        mean: readonly number[];
        min: readonly number[];
        max: readonly number[];
        std: readonly number[];
      };

      const out = join(root, "report.html");
      const summary = await writeReport([`ours=${ours}`, `seed=${seed}`], out, { title: "values" });
      assert.deepEqual(summary.labels, Object.keys(groups));

      await using browser = await launchChromium();
      const page = await browser.open(`file://${out}`);
      await page.waitFor("globalThis.sgnReport?.ready");

      /**
       * Checks every chart against the groups: which groups it draws, each mean line and band
       * edge (the dataset's points and where they were drawn), and the axes' types.
       */
      const check = async (
        state: string,
        band: "minmax" | "std" | "none",
        metric: "test_acc" | "test_loss",
        axes: { logX: boolean; logLoss: boolean },
      ) => {
        const charts = await page.evaluate<DrawnChart[]>(DRAWN);
        assert.deepEqual(
          charts.map((c) => c.view),
          ["lossSeconds", "lossEpochs", "metricSeconds", "metricEpochs"],
        );
        for (const c of charts) {
          const where = `${state}, ${c.view}`;
          const isLoss = c.view.startsWith("loss");
          const bySeconds = c.view.endsWith("Seconds");
          assert.equal(c.xTitle, bySeconds ? "seconds" : "epoch", `${where}: x title`);
          assert.equal(c.xType, axes.logX ? "logarithmic" : "linear", `${where}: x scale`);
          const logY = isLoss ? axes.logLoss : metric === "test_loss" && axes.logLoss;
          assert.equal(c.yType, logY ? "logarithmic" : "linear", `${where}: y scale`);
          const drawnGroups = Object.entries(groups).filter(([, g]) =>
            isLoss || g.metric === metric
          );
          assert.deepEqual(
            c.datasets.map((d) => d.label),
            drawnGroups.flatMap(([label]) => [`${label} low`, `${label} high`, label]),
            `${where}: datasets`,
          );
          for (const [label, g] of drawnGroups) {
            const stats: Stats = isLoss ? g.loss : g.test;
            const xs = bySeconds ? g.seconds : g.epochs;
            const edge = (role: "low" | "high") =>
              stats.mean.map((m, k) => {
                const v = band === "none"
                  ? NaN
                  : band === "std"
                  ? (role === "low" ? m - stats.std[k] : m + stats.std[k])
                  : (role === "low" ? stats.min[k] : stats.max[k]);
                return logY && v <= 0 ? NaN : v;
              });
            const expected = { low: edge("low"), high: edge("high"), mean: [...stats.mean] };
            const scale = (role: "low" | "high" | "mean") =>
              expected[role].map((e, k) =>
                Math.max(Math.abs(e), Math.abs(stats.mean[k]) + stats.std[k])
              );
            for (const role of ["low", "high", "mean"] as const) {
              const d = c.datasets.find((d) =>
                d.label === (role === "mean" ? label : `${label} ${role}`)
              )!;
              const what = `${where}: ${label} ${
                role === "mean" ? "mean line" : `${role} band edge`
              }`;
              assertSeries(d.data.map((p) => p[0]), xs, `${what}, x`);
              assertSeries(d.data.map((p) => p[1]), expected[role], `${what}, y`, scale(role));
              // Where Chart.js put the points: the same numbers, through the chart's scales.
              const gap = expected[role].map(Number.isNaN);
              assertSeries(
                d.drawn.map((p) => p?.[0] ?? null),
                xs.map((x, k) => gap[k] ? NaN : x),
                `${what}, x as drawn`,
              );
              assertSeries(
                d.drawn.map((p) => p?.[1] ?? null),
                expected[role],
                `${what}, y as drawn`,
                scale(role),
              );
            }
          }
        }
      };
      const set = (js: string) => page.evaluate(`(() => { ${js} })()`);
      const choose = (id: string, value: string) =>
        set(
          `const e = document.getElementById(${JSON.stringify(id)}); e.value = ${
            JSON.stringify(value)
          }; e.dispatchEvent(new Event("change"));`,
        );

      // As the page opens: min-max bands, log losses, linear time; the metric select offers
      // test loss first (boston sorts first), so the test charts draw boston's test_loss.
      assert.equal(
        await page.evaluate<string>("document.getElementById('metric').value"),
        "test_loss",
      );
      await check("as opened", "minmax", "test_loss", { logX: false, logLoss: true });
      await choose("metric", "test_acc");
      await check("test accuracy", "minmax", "test_acc", { logX: false, logLoss: true });
      await choose("band", "std");
      await check("±1 std bands", "std", "test_acc", { logX: false, logLoss: true });
      await choose("metric", "test_loss");
      await check("±1 std bands, test loss", "std", "test_loss", { logX: false, logLoss: true });
      await set(`document.getElementById("log-x").click();`);
      await check("log time axes", "std", "test_loss", { logX: true, logLoss: true });
      await set(`document.getElementById("log-loss").click();`);
      await check("linear losses", "std", "test_loss", { logX: true, logLoss: false });
      await choose("band", "none");
      await check("no bands", "none", "test_loss", { logX: true, logLoss: false });

      // The table's final figures, worked out by hand: each run's last epoch.
      //   boston: losses .2 .05, test losses .3 .02, (2 / 2 + 4 / 2) / 2 = 1.5 s per epoch
      //   ours mnist: losses 2 2.1 1.9, accuracies .88 .77 .75, (4 + 8 + 12) / 4 / 3 = 2 s
      //   seed mnist: losses .25 and 1, accuracies .9 and .5, (10 / 5 + 9 / 3) / 2 = 2.5 s
      const rows = await page.evaluate<string[][]>(
        "[...document.querySelectorAll('#final tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))",
      );
      assert.deepEqual(rows, [
        [
          "ours",
          "boston",
          "SGN_3",
          "2",
          "2",
          "0.1250 [0.05000 – 0.2000]",
          "test_loss: 0.1600 [0.02000 – 0.3000]",
          "1.50",
          "measured per epoch (epoch_time)",
          "all 2 finished",
        ],
        [
          "ours",
          "mnist",
          "SGN_3",
          "3",
          "4",
          "2.000 [1.900 – 2.100]",
          "test_acc: 80.00% [75.00% – 88.00%]",
          "2.00",
          "measured per epoch (epoch_time)",
          "all 3 finished",
        ],
        [
          "seed",
          "mnist",
          "SGN_3",
          "2",
          "3–5",
          "0.6250 [0.2500 – 1.000]",
          "test_acc: 70.00% [50.00% – 90.00%]",
          "2.50",
          "tot_time, epochs taken as equal",
          "all 2 finished",
        ],
      ]);
      const notes = await page.evaluate<string>("document.getElementById('notes').textContent");
      assert.match(
        notes,
        /Only tot_time is known for all 2 runs of seed .*epoch k of n is drawn at tot_time · k \/ n/,
      );
      assert.match(
        notes,
        /seed mnist SGN_3 \(n=2\): runs have 3-5 epochs: lines and bands stop at epoch 3/,
      );
      assert.deepEqual(page.errors, []);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("report: seriesStyle gives every (configuration, source) pair its own colour", () => {
  const seen = new Map<string, string>();
  for (let config = 0; config < 12; config++) {
    for (let source = 0; source < 6; source++) {
      const { color, dash } = seriesStyle(config, source);
      assert.match(color, /^#[0-9a-f]{6}$/);
      const before = seen.get(color);
      assert.equal(before, undefined, `${config}/${source} has the colour of ${before}`);
      seen.set(color, `${config}/${source}`);
      assert.deepEqual(dash, seriesStyle(0, source).dash, "the dash is the source's");
    }
  }
  // The first four sources have four different dashes; configurations share their source's.
  const dashes = [0, 1, 2, 3].map((s) => JSON.stringify(seriesStyle(0, s).dash));
  assert.equal(new Set(dashes).size, 4);
  assert.throws(() => seriesStyle(-1, 0), RangeError);
});

/** Per chart, each mean line's label, colour and dash, as Chart.js holds them. */
const LINE_STYLES = `Object.fromEntries(Object.entries(sgnReport.charts).map(([view, c]) => [
  view,
  c.data.datasets.filter((d) => !/ (low|high)$/.test(d.label))
    .map((d) => ({ label: d.label, color: d.borderColor, dash: d.borderDash })),
]))`;

/** Each legend entry's text, and the colour and dash of its line sample. */
const LEGEND_STYLES = `[...document.querySelectorAll("#legend .entry")].map((e) => {
  const line = e.querySelector("line");
  const dash = line.getAttribute("stroke-dasharray");
  return {
    label: e.textContent,
    color: line.getAttribute("stroke"),
    dash: dash ? dash.split(" ").map(Number) : [],
  };
})`;

Deno.test({
  name: "report page in Chromium: two sources of two configurations, four colours, dash by source",
  ignore: chromiumIgnore,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "sgn-report-styles-" });
    try {
      // Two configurations (SGN_3, SGD_1) from two sources (ours, seed), two seeds each.
      for (const source of ["ours", "seed"]) {
        for (const [config, json] of [["SGN_3", SGN_CONFIG], ["SGD_1", SGD_CONFIG]] as const) {
          const slow = config === "SGD_1" ? 2 : 1;
          const off = source === "seed" ? 0.05 : 0;
          for (const s of [1, 2]) {
            await writeRun(join(root, source, "results/mnist", `res_${config}_${s}`), {
              avg_loss: [2, 1, 0.6, 0.4, 0.3].map((x) => x * slow * (1 + 0.1 * s) + off),
              test_acc: [0.8, 0.86, 0.89, 0.9, 0.91].map((x) => x / slow - off + 0.01 * s),
              epoch_time: [1, 2, 3, 4, 5].map((t) => t * slow * (source === "seed" ? 1.5 : 1)),
            }, json);
          }
        }
      }
      const out = join(root, "styles.html");
      const summary = await writeReport(
        [`ours=${join(root, "ours/results")}`, `seed=${join(root, "seed/results")}`],
        out,
        { title: "Two sources, two configurations" },
      );
      const pairs = [
        ["ours", "SGD_1"],
        ["seed", "SGD_1"],
        ["ours", "SGN_3"],
        ["seed", "SGN_3"],
      ];
      assert.deepEqual(summary.labels, pairs.map(([s, c]) => `${s} mnist ${c} (n=2)`));

      await using browser = await launchChromium();
      const page = await browser.open(`file://${out}`);
      await page.waitFor("globalThis.sgnReport?.ready");
      type Style = { label: string; color: string; dash: number[] };
      const charts = await page.evaluate<Record<string, Style[]>>(LINE_STYLES);
      const legend = await page.evaluate<Style[]>(LEGEND_STYLES);

      // The legend names each pair by source and configuration.
      assert.equal(legend.length, 4);
      legend.forEach((e, i) => {
        const [source, config] = pairs[i];
        assert.ok(e.label.includes(source) && e.label.includes(config), e.label);
      });
      // Four colours, one per pair; the dash is the source's: the two sources of a configuration
      // differ in colour and in dash, and one source's configurations differ in colour.
      assert.equal(new Set(legend.map((e) => e.color)).size, 4, JSON.stringify(legend));
      const dashOf = (source: string) =>
        new Set(legend.filter((_, i) => pairs[i][0] === source).map((e) => JSON.stringify(e.dash)));
      assert.equal(dashOf("ours").size, 1);
      assert.equal(dashOf("seed").size, 1);
      assert.notDeepEqual([...dashOf("ours")], [...dashOf("seed")]);
      // Every chart draws each pair in its legend entry's colour and dash.
      assert.deepEqual(Object.keys(charts), [
        "lossSeconds",
        "lossEpochs",
        "metricSeconds",
        "metricEpochs",
      ]);
      for (const [view, lines] of Object.entries(charts)) {
        assert.deepEqual(lines, legend, view);
      }

      const shot = join(root, "styles.png");
      await page.screenshot(shot);
      const keep = Deno.env.get("SGN_REPORT_SCREENSHOT");
      if (keep) await Deno.copyFile(shot, keep);
      assert.deepEqual(page.errors, []);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("report reference: the main job is drawn against sgn's committed MNIST SGN(3) runs", async () => {
  // The config.json the main job writes (on the native backend, as on this project's machines).
  const config = runConfig(parseTrainArgs([...CHECK_RUN, "--report"]), "native");
  const found = await findReference(config);
  assert.ok(COMMITTED_RESULTS && found.root === COMMITTED_RESULTS && found.committed);
  assert.deepEqual(found.sets.map((s) => [s.label, s.runs.map((r) => r.split("/").at(-1))]), [[
    "reference: sgn committed runs (results/mnist)",
    ["res_SGN_3_1", "res_SGN_3_2", "res_SGN_3_3", "res_SGN_3_4", "res_SGN_3_5"],
  ]]);
  // The seed's check command runs its first 10 steps with 3 CG iterations, the committed grid
  // with 10; the committed runs ran on WebGPU. The page says so.
  const differences = found.sets[0].differences.join("; ");
  assert.match(differences, /MIN_CG_ITERS: this run 3, reference 10/);
  assert.match(differences, /backend: this run "native", reference "webgpu"/);
  // In float64 the reference is the float64 runs.
  const f64 = await findReference(
    runConfig(parseTrainArgs([...CHECK_RUN, "--float64", "--report"]), "native"),
  );
  assert.deepEqual(f64.sets.map((s) => s.label), [
    "reference: sgn committed runs (results/float64/mnist)",
  ]);
});

Deno.test("report reference: configurations, stale and own runs left out, unreadable configs listed", async () => {
  const full = {
    config: { SOLVER: "SGD", LR0: 0.1, BATCH_SIZE: 100 },
    layers: [4],
    dataset: "boston",
    dtype: "float32",
    seed: 1,
  };
  assert.deepEqual(configurationOf(full), {
    dataset: "boston",
    network: "MLP 4",
    solver: "SGD",
    setting: "0.1",
    batchSize: 100,
    dtype: "float32",
  });
  // The seed's config.json names no data set or precision: no configuration to compare.
  assert.equal(configurationOf({ ...full, dataset: undefined }), undefined);
  assert.equal(configurationOf({ ...full, dtype: undefined }), undefined);
  assert.equal(configurationOf({ ...full, config: { SOLVER: "SGD", LR0: 0.1 } }), undefined);

  const root = await Deno.makeTempDir({ prefix: "sgn-reference-" });
  try {
    const results = { avg_loss: [1, 0.5], test_loss: [1, 0.6], epoch_time: [1, 2] };
    await writeRun(join(root, "boston/res_SGD_0.1_1"), results, { ...full, MOMENTUM: 0.9 });
    await writeRun(join(root, "boston/res_SGD_0.1_2"), results, { ...full, seed: 2 });
    await writeRun(join(root, "boston/res_SGD_0.1_3.stale-77"), results, full);
    await writeRun(join(root, "boston/res_SGD_1_1"), results, {
      ...full,
      config: { ...full.config, LR0: 1 },
    });
    await writeRun(join(root, "boston/res_SGD_0.1_4"), results, "{ broken");
    await writeRun(join(root, "mine"), { avg_loss: [2], test_loss: [1.2], epoch_time: [1] }, full);

    const found = await findReference(full, { root, exclude: join(root, "mine") });
    assert.equal(found.committed, false);
    assert.deepEqual(found.sets.map((s) => [s.label, s.runs]), [[
      `reference: runs in ${root}/boston`,
      [join(root, "boston/res_SGD_0.1_1"), join(root, "boston/res_SGD_0.1_2")],
    ]]);
    assert.deepEqual(found.sets[0].differences, [
      "MOMENTUM: this run not set, reference 0.9 or not set",
    ]);
    assert.deepEqual(found.problems.map((p) => [p.file, p.reason.split(" (")[0]]), [
      [join(root, "boston/res_SGD_0.1_4/config.json"), "not valid JSON"],
    ]);
    await assert.rejects(
      () => findReference(full, { root: join(root, "nowhere") }),
      /--reference: .*nowhere does not exist/,
    );

    // The run's report: its one epoch against the two reference runs, cut to that epoch.
    const r = await writeRunReport(join(root, "mine"), { reference: root });
    assert.equal(r.path, join(root, "mine/report.html"));
    assert.equal(r.url, `file://${r.path}`);
    assert.deepEqual(r.labels, [
      "this run boston SGD_0.1 (n=1)",
      `reference: runs in ${root}/boston boston SGD_0.1 (n=2)`,
    ]);
    assert.match(
      r.about[0],
      /2 runs of this run's configuration \(boston, MLP 4, SGD_0\.1, batch 100, float32\), drawn up to this run's last epoch \(1\)/,
    );
    assert.deepEqual(r.problems.map((p) => p.file), [
      join(root, "boston/res_SGD_0.1_4/config.json"),
    ]);
    await assert.rejects(() => writeRunReport(join(root, "boston")), /holds several runs/);
    await assert.rejects(() => writeRunReport(join(root, "nothing")), /cannot report on/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
