/**
 * The report page in headless Chromium, down to its numbers: every mean line and band edge
 * (min-max, ±1 std, none), where Chart.js drew each point, the axes' types and the table's final
 * figures, read back from the page and compared with numbers worked out by hand.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { writeReport } from "../report/mod.ts";
import { launchChromium } from "./headless.ts";
import { pageTest, SGN_CONFIG, writeRun } from "./report_fixtures.ts";

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

pageTest(
  "report page in Chromium: the drawn lines, bands, axes and table equal numbers by hand",
  async (root) => {
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
        const drawnGroups = Object.entries(groups).filter(([, g]) => isLoss || g.metric === metric);
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
  },
);
