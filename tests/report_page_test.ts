/**
 * The report page: its HTML, and the page itself in headless Chromium (charts drawn, series
 * named, table rows, problems shown, offline; a colour for every configuration and source, a
 * dash for every source).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { buildReportHtml, collectRuns, seriesStyle, writeReport } from "../report/mod.ts";
import { launchChromium } from "./headless.ts";
import { pageTest, SGD_CONFIG, SGN_CONFIG, writeFixture, writeRun } from "./report_fixtures.ts";

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

pageTest(
  "report page in Chromium: four charts drawn, series named, table rows, offline",
  async (root) => {
    const shots = await Deno.makeTempDir({ prefix: "sgn-report-screenshot-" });
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
  },
);

pageTest(
  "report page in Chromium: malformed files are listed with their reasons, the rest drawn",
  async (root) => {
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
      const item = items.find((t) => t.includes(join(seed, file)) || t.includes(join(ours, file)));
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
  },
);

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

pageTest(
  "report page in Chromium: two sources of two configurations, four colours, dash by source",
  async (root) => {
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
  },
);
