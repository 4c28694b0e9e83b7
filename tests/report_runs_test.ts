/**
 * `cli.ts report`, reading runs: run names and config.json, results.json checked with the
 * schema (the file and the reason named), statistics over seeds against hand computations,
 * collecting and grouping with broken files reported and skipped, globs and labels, the epochs
 * cut, and run statuses summed up per group.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  aggregate,
  buildReportHtml,
  collectRuns,
  configNaming,
  defaultLabel,
  expandGlob,
  finalFigure,
  parseResults,
  parseRunName,
  parseSourceArg,
} from "../report/mod.ts";
import {
  close,
  closeAll,
  group,
  RUN,
  SGD_CONFIG,
  SGN_CONFIG,
  writeFixture,
  writeRun,
} from "./report_fixtures.ts";

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
