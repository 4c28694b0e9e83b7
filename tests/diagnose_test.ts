/**
 * Training with the spectral diagnostics: `train --diagnose` and `train({ diagnose })` write
 * their figures to results.json beside an unchanged training (config.json, the same losses, their
 * time left out of epoch_time and tot_time; SGD gets the default rho), the report page draws
 * them, their flags are checked and explained, and results.json's diagnostics are validated like
 * the other keys and cut with the epochs.
 */

import assert from "node:assert/strict";
import { mlp } from "../models/networks.ts";
import { cpu } from "./harness.ts";
import { cli } from "./data_files.ts";
import { chromiumIgnore, launchChromium } from "./headless.ts";
import { type DiagnoseOptions, train } from "../train/loop.ts";
import { parseTrainArgs, trainHelp } from "../train/settings.ts";
import { parseResults, truncateRun, writeReport } from "../report/mod.ts";
import type { PageData } from "../report/types.ts";
import { SGN } from "../sgn/sgn.ts";
import { SGD } from "../sgn/baselines.ts";

Deno.test("train --diagnose 2: results.json's diagnostics, config.json, the same training, the report", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-diagnose-" });
  try {
    const sine = (f: string, ...more: string[]) => [
      "train",
      ...["--dataset", "sine_10", "--layers", "8", "--epochs", "2", "--batch_size", "500"],
      ...["--cg_max_iter", "3", "--backend", "cpu", "--path", `${dir}/sine_10`, "--f", f],
      ...more,
    ];
    const on = await cli(...sine("res_SGN_3_1", "--diagnose", "2", "--diagnose_probes", "4"));
    assert.equal(on.code, 0, on.stderr);
    const off = await cli(...sine("plain"));
    assert.equal(off.code, 0, off.stderr);
    const read = async (f: string, file: string) =>
      JSON.parse(await Deno.readTextFile(`${dir}/sine_10/${f}/${file}`));
    const results = await read("res_SGN_3_1", "results.json");
    const plain = await read("plain", "results.json");
    // 7,000 samples in batches of 500: 14 steps an epoch, 28 in all, measured before steps
    // 1, 3, ..., 27.
    assert.equal(results.tot_iterations, 28);
    const d = results.diagnostics;
    assert.deepEqual(Object.keys(d), [
      "step",
      "epoch",
      "top_eigenvalue",
      "bottom_eigenvalue",
      "trace",
      "trace_std_error",
      "rho",
      "condition",
    ]);
    assert.deepEqual(d.step, Array.from({ length: 14 }, (_, i) => 2 * i + 1));
    assert.deepEqual(d.epoch, d.step.map((s: number) => (s <= 14 ? 1 : 2)));
    for (const key of Object.keys(d)) assert.equal(d[key].length, 14, key);
    d.step.forEach((s: number, i: number) => {
      assert.equal(d.rho[i], results.rho[s - 1], "the damping of that SGN step");
      assert.ok(d.top_eigenvalue[i] > 0 && d.trace[i] > 0 && d.trace_std_error[i] > 0);
      // 25 parameters, 500 outputs: G need not be singular; its bottom is a Ritz value.
      assert.ok(d.bottom_eigenvalue[i] >= 0 && d.bottom_eigenvalue[i] < d.top_eigenvalue[i]);
      const cond = (d.top_eigenvalue[i] + d.rho[i]) / (d.bottom_eigenvalue[i] + d.rho[i]);
      assert.ok(Math.abs(d.condition[i] - cond) <= 1e-12 * cond);
    });
    // Diagnosing changes nothing in the training, and is off (and unwritten) by default.
    assert.deepEqual(results.avg_loss, plain.avg_loss);
    assert.deepEqual(results.rho, plain.rho);
    assert.equal("diagnostics" in plain, false);
    const config = await read("res_SGN_3_1", "config.json");
    assert.deepEqual(
      [config.diagnose, config.diagnose_lanczos, config.diagnose_probes],
      [2, 20, 4],
    );
    const plainConfig = await read("plain", "config.json");
    assert.equal(Object.keys(plainConfig).some((k) => k.startsWith("diagnose")), false);

    // The report embeds them per run and draws three charts.
    const out = `${dir}/report.html`;
    const summary = await writeReport(
      [`ours=${dir}/sine_10/res_SGN_3_1`, `plain=${dir}/sine_10/plain`],
      out,
    );
    assert.equal(summary.runs, 2);
    const html = await Deno.readTextFile(out);
    const data = JSON.parse(
      /<script type="application\/json" id="sgn-data">(.*?)<\/script>/s
        .exec(html)![1],
    ) as PageData;
    assert.equal(data.diagnostics!.length, 1);
    const pd = data.diagnostics![0];
    assert.equal(pd.label, "ours sine_10 SGN_3 seed 1");
    assert.deepEqual(pd.step, d.step);
    pd.topEigenvalue.forEach((v, i) => assert.ok(Math.abs(v! - d.top_eigenvalue[i]) <= 5e-6 * v!));
    assert.equal(pd.color, data.groups[pd.group].color);
    assert.match(html, /<canvas id="chart-diag-condition">/);
    assert.match(html, /Curvature diagnostics \(train --diagnose\)/);
    // A report without diagnostics has no such section.
    await writeReport([`${dir}/sine_10/plain`], `${dir}/plain.html`);
    const none = await Deno.readTextFile(`${dir}/plain.html`);
    assert.doesNotMatch(none, /<canvas id="chart-diag/);
    assert.doesNotMatch(none, /Curvature diagnostics/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "report page in Chromium: the diagnostic charts draw each run's values, gaps and all",
  ignore: chromiumIgnore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "sgn-diagnose-page-" });
    try {
      const run = (seed: number, top: (number | null)[], condition: (number | null)[]) => {
        const results = {
          avg_loss: [1, 0.5],
          test_loss: [1, 0.6],
          epoch_time: [1, 2],
          tot_time: 2,
          tot_iterations: 6,
          diagnostics: {
            step: [1, 3, 5],
            epoch: [1, 1, 2],
            top_eigenvalue: top,
            bottom_eigenvalue: [0, 0, 0],
            trace: [10, 20, 30],
            trace_std_error: [1, 1, 1],
            rho: [0.1, 0.1, 0.1],
            condition,
          },
        };
        const folder = `${dir}/sine_10/res_SGN_3_${seed}`;
        Deno.mkdirSync(folder, { recursive: true });
        Deno.writeTextFileSync(`${folder}/results.json`, JSON.stringify(results));
      };
      // Seed 2: a measurement that failed (null) and an infinite condition (null).
      run(1, [3, 2, 1], [31, 21, 11]);
      run(2, [4, null, 2], [41, null, 21]);
      const out = `${dir}/report.html`;
      await writeReport([`ours=${dir}`], out);
      await using browser = await launchChromium();
      const page = await browser.open(`file://${out}`);
      await page.waitFor("globalThis.sgnReport?.ready");
      const drawn = () =>
        page.evaluate<[string, string, string, [number, number][][]][]>(
          `Object.entries(sgnReport.diagnostics).map(([view, c]) => [view, c.scales.y.type,
            c.options.plugins.title.text, c.data.datasets.map((d, i) =>
              c.getDatasetMeta(i).data.filter((p) => !p.skip).map((p) =>
                [c.scales.x.getValueForPixel(p.x), c.scales.y.getValueForPixel(p.y)]))])`,
        );
      const views = await drawn();
      assert.deepEqual(views.map((v) => v.slice(0, 3)), [
        ["top", "logarithmic", "Top eigenvalue of G"],
        ["trace", "logarithmic", "Trace of G (Hutchinson)"],
        ["condition", "logarithmic", "Condition number of G + rho I"],
      ]);
      const expected = {
        top: [[[1, 3], [3, 2], [5, 1]], [[1, 4], [5, 2]]],
        trace: [[[1, 10], [3, 20], [5, 30]], [[1, 10], [3, 20], [5, 30]]],
        condition: [[[1, 31], [3, 21], [5, 11]], [[1, 41], [5, 21]]],
      };
      for (const [view, , , lines] of views) {
        const want = expected[view as keyof typeof expected];
        assert.equal(lines.length, 2, view);
        lines.forEach((points, i) => {
          assert.equal(points.length, want[i].length, `${view} run ${i + 1}: ${points}`);
          points.forEach(([x, y], k) => {
            assert.ok(Math.abs(x - want[i][k][0]) < 1e-6, `${view}: x ${x}`);
            assert.ok(Math.abs(y - want[i][k][1]) < 1e-6 * want[i][k][1], `${view}: y ${y}`);
          });
        });
      }
      const labels = await page.evaluate<string[]>(
        "sgnReport.diagnostics.top.data.datasets.map((d) => d.label)",
      );
      assert.deepEqual(labels, ["ours sine_10 SGN_3 seed 1", "ours sine_10 SGN_3 seed 2"]);
      // Linear axes on request; the legend hides a group in these charts too.
      await page.evaluate("document.getElementById('log-diagnostics').click()");
      assert.equal(
        await page.evaluate<string>("sgnReport.diagnostics.trace.scales.y.type"),
        "linear",
      );
      await page.evaluate("document.querySelector('#legend .entry').click()");
      assert.deepEqual(
        await page.evaluate<boolean[]>(
          "sgnReport.diagnostics.condition.data.datasets.map((d) => d.hidden)",
        ),
        [true, true],
      );
      assert.deepEqual(page.errors, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("train({ diagnose }): its time is left out of epoch_time and tot_time; SGD gets the default rho", async () => {
  const net = mlp({ inputs: 1, hidden: [8], outputs: 1 });
  const xs = Float32Array.from({ length: 256 }, (_, i) => i / 256);
  const data = { inputs: xs, targets: xs.map((x) => Math.sin(3 * x)) };
  const run = async (diagnose?: DiagnoseOptions, solver: "SGN" | "SGD" = "SGN") => {
    const params = net.init({ seed: 1, backend: cpu });
    const optimizer = solver === "SGN" ? new SGN(params, { cgMaxIters: 2 }) : new SGD(params);
    const t0 = performance.now();
    try {
      const results = await train({
        network: net,
        optimizer,
        task: "regression",
        backend: cpu,
        train: data,
        epochs: 2,
        batchSize: 64,
        diagnose,
      });
      return { results, wall: (performance.now() - t0) / 1000 };
    } finally {
      optimizer.dispose();
    }
  };
  // Measurements many times dearer than the steps: 25 + 400 products G v before every step.
  const heavy = await run({ every: 1, lanczosSteps: 25, probes: 400 });
  const r = heavy.results;
  assert.equal(r.diagnostics!.step.length, 8);
  assert.ok(
    r.tot_time < 0.3 * heavy.wall,
    `tot_time ${r.tot_time} s of ${heavy.wall} s in all: the measurements were counted`,
  );
  assert.equal(r.epoch_time.at(-1), r.tot_time);
  const plain = await run();
  assert.deepEqual(r.avg_loss, plain.results.avg_loss);

  const sgd = await run({ every: 3, lanczosSteps: 5, probes: 2 }, "SGD");
  assert.deepEqual(sgd.results.diagnostics!.step, [1, 4, 7]);
  assert.deepEqual(sgd.results.diagnostics!.rho, [1e-3, 1e-3, 1e-3]);
  assert.equal((await run({ every: 0 })).results.diagnostics, undefined);
  for (
    const [bad, why] of [
      [{ every: -1 }, /diagnose.every must be a non-negative integer, got -1/],
      [{ every: 1, probes: 0 }, /diagnose.probes must be a positive integer, got 0/],
      [{ every: 1, lanczosSteps: 1.5 }, /diagnose.lanczosSteps must be a positive integer/],
      [{ every: 1, rho: -1 }, /diagnose.rho must be a number >= 0, got -1/],
      [{ every: 1, steps: 3 }, /unknown train diagnose option "steps"/],
    ] as const
  ) {
    await assert.rejects(() => run(bad as unknown as DiagnoseOptions), why);
  }
});

Deno.test("train flags: --diagnose, --diagnose_lanczos and --diagnose_probes are checked and explained", () => {
  const s = parseTrainArgs(["--diagnose", "5", "--diagnose_lanczos", "30"]);
  assert.deepEqual([s.diagnose, s.diagnose_lanczos, s.diagnose_probes], [5, 30, 10]);
  assert.equal(parseTrainArgs([]).diagnose, 0);
  assert.throws(() => parseTrainArgs(["--diagnose", "-1"]), /--diagnose must be an integer from 0/);
  assert.throws(
    () => parseTrainArgs(["--diagnose_lanczos", "0"]),
    /--diagnose_lanczos must be a positive integer/,
  );
  assert.throws(
    () => parseTrainArgs(["--diagnose_probes", "x"]),
    /--diagnose_probes must be a positive integer/,
  );
  const help = trainHelp();
  assert.match(help, /--diagnose .*every N steps/s);
  assert.match(help, /left out of epoch_time and tot_time/);
});

Deno.test("report: results.json's diagnostics are validated like the other keys, and cut with the epochs", () => {
  const base = { avg_loss: [1, 0.5], test_loss: [1, 0.6], epoch_time: [1, 2] };
  const good = {
    step: [1, 3, 5],
    epoch: [1, 1, 2],
    top_eigenvalue: [3, 2, null],
    bottom_eigenvalue: [0, 0, null],
    trace: [5, 4, null],
    trace_std_error: [0.5, 0.4, null],
    rho: [0.1, 0.01, 0.001],
    condition: [31, 201, null],
  };
  const ok = parseResults(JSON.stringify({ ...base, diagnostics: good }), "r.json");
  assert.deepEqual(ok.problems, []);
  const d = ok.series!.diagnostics!;
  assert.deepEqual(d.step, [1, 3, 5]);
  assert.deepEqual(d.top_eigenvalue.slice(0, 2), [3, 2]);
  assert.ok(Number.isNaN(d.top_eigenvalue[2]) && Number.isNaN(d.condition[2]));
  const cut = truncateRun(ok.series!, 1).diagnostics!;
  assert.deepEqual([cut.step, cut.epoch, cut.condition], [[1, 3], [1, 1], [31, 201]]);
  assert.equal(parseResults(JSON.stringify(base), "r.json").series!.diagnostics, undefined);
  for (
    const [diagnostics, why] of [
      [[1, 2], /diagnostics is a list, not an object of lists/],
      [null, /diagnostics is null, not an object of lists/],
      [{ ...good, trace: undefined }, /diagnostics.trace is missing/],
      [{ ...good, trace: [1, 2] }, /diagnostics.trace has 2 entries but diagnostics.step has 3/],
      [{ ...good, trace: [1, "x", 3] }, /diagnostics.trace\[1\] is "x", not a number/],
      [{ ...good, step: [1, 3, 3] }, /diagnostics.step\[2\] = 3: not a step number/],
      [{ ...good, step: [0, 3, 5] }, /diagnostics.step\[0\] = 0: not a step number/],
      [{ ...good, epoch: [1, 1, 3] }, /diagnostics.epoch\[2\] = 3: not an epoch from 1 to 2/],
      [{ ...good, epoch: [2, 1, 2] }, /diagnostics.epoch\[1\] = 1: not an epoch/],
      [{ ...good, rho: [0.1, -1, 0] }, /diagnostics.rho\[1\] = -1: not a damping >= 0/],
      [{ ...good, rho: [0.1, null, 0] }, /diagnostics.rho\[1\] is null, not a number/],
      [{ ...good, step: [1, null, 5] }, /diagnostics.step\[1\] is null, not a number/],
    ] as const
  ) {
    const r = parseResults(JSON.stringify({ ...base, diagnostics }), "r.json");
    assert.equal(r.series, undefined, `accepted ${JSON.stringify(diagnostics)}`);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0].skipped, true);
    assert.match(r.problems[0].reason, why);
  }
});
