/**
 * Generated report groups in unusual states (all runs diverged but one, one finite run, runs of
 * different lengths, NaN and ±Infinity, one seed): every band value and final figure of the
 * report against a float64 computation here (two-pass statistics by explicit loops), every group
 * once in the table and once in the legend's data.
 */

import assert from "node:assert/strict";
import { fc, property } from "./property.ts";
import { buildReportHtml, type Collection, groupRuns, type Run } from "../report/mod.ts";

const value = fc.oneof(
  { weight: 6, arbitrary: fc.double({ min: -1e3, max: 1e3, noNaN: true }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) },
);
const finite = fc.double({ min: 1e-3, max: 1e3, noNaN: true });

/** One run's per-epoch losses, of the given shape. */
const series = (len: fc.Arbitrary<number>, v: fc.Arbitrary<number>) =>
  len.chain((n) => fc.array(v, { minLength: n, maxLength: n }));

/** A group's runs' losses, in one of the unusual states the report must survive. */
const groupLosses = fc.oneof(
  // All runs diverged (a non-finite last epoch) but one.
  fc.tuple(
    series(fc.integer({ min: 1, max: 5 }), finite),
    fc.array(
      series(fc.integer({ min: 1, max: 5 }), finite).chain((s) =>
        fc.constantFrom(NaN, Infinity, -Infinity).map((bad) => [...s, bad])
      ),
      { minLength: 1, maxLength: 4 },
    ),
  ).map(([good, bad]) => [good, ...bad]),
  // Exactly one run at all, finite or not.
  series(fc.integer({ min: 1, max: 6 }), value).map((s) => [s]),
  // Runs of different lengths, any values.
  fc.array(series(fc.integer({ min: 1, max: 6 }), value), { minLength: 2, maxLength: 5 }),
  // Every run diverged.
  fc.array(series(fc.integer({ min: 1, max: 4 }), fc.constantFrom(NaN, Infinity)), {
    minLength: 1,
    maxLength: 3,
  }),
);

const groupCase = fc.record({
  source: fc.constantFrom("ours", "seed"),
  experiment: fc.constantFrom("mnist", "boston"),
  config: fc.constantFrom("SGN_3", "SGD_0.1", "SGN_10"),
  losses: groupLosses,
  metric: fc.constantFrom("test_acc", "test_loss", undefined),
  statuses: fc.array(fc.constantFrom("finished", "diverged", "interrupted", "running", undefined), {
    minLength: 6,
    maxLength: 6,
  }),
  secondsPerEpoch: fc.array(fc.double({ min: 0.01, max: 100, noNaN: true }), {
    minLength: 6,
    maxLength: 6,
  }),
});

/** Runs built from the cases (later cases for the same key join that group). */
type GroupCase = typeof groupCase extends fc.Arbitrary<infer T> ? T : never;

function runsOf(cases: GroupCase[]): Run[] {
  const runs: Run[] = [];
  for (const g of cases) {
    g.losses.forEach((loss, i) => {
      const [solver, setting] = g.config.split("_");
      const status = g.statuses[i];
      runs.push({
        source: g.source,
        dir: `${g.source}/${g.experiment}/res_${g.config}_${runs.length + 1}`,
        experiment: g.experiment,
        config: g.config,
        solver,
        setting,
        seed: String(runs.length + 1),
        avgLoss: loss,
        ...(g.metric ? { metric: g.metric, metricValues: loss.map((x) => x / 7) } : {}),
        seconds: loss.map((_, k) => g.secondsPerEpoch[i] * (k + 1)),
        timeBasis: "epoch_time",
        ...(status ? { status } : {}),
      } as Run);
    });
  }
  return runs;
}

/** Statistics over values, in float64, two-pass, by explicit loops. */
function stats(xs: number[]): { mean: number; min: number; max: number; std: number } {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const mean = sum / xs.length;
  let ss = 0;
  for (const x of xs) ss += (x - mean) ** 2;
  // The report promises the sample standard deviation (n - 1), 0 for a single run.
  return { mean, min, max, std: xs.length > 1 ? Math.sqrt(ss / (xs.length - 1)) : 0 };
}

function near(a: number | null | undefined, e: number, what: string, rtol = 1e-9) {
  assert.ok(
    typeof a === "number" && Math.abs(a - e) <= rtol * Math.abs(e) + 1e-12,
    `${what}: ${a}, expected ${e}`,
  );
}

/** The band the report must draw for one series per run, checked value by value. */
function checkBand(
  band: {
    mean: (number | null)[];
    min: (number | null)[];
    max: (number | null)[];
    std: (number | null)[];
  },
  perRun: number[][],
  what: string,
  rtol = 1e-9,
) {
  const len = Math.min(...perRun.map((s) => s.length));
  assert.equal(band.mean.length, len, `${what}: epochs drawn`);
  for (let k = 0; k < len; k++) {
    const xs = perRun.map((s) => s[k]);
    if (xs.some((x) => !Number.isFinite(x))) {
      for (const key of ["mean", "min", "max", "std"] as const) {
        assert.equal(band[key][k], null, `${what}: ${key}[${k}] with a non-finite run`);
      }
      continue;
    }
    const s = stats(xs);
    for (const key of ["mean", "min", "max", "std"] as const) {
      near(band[key][k], s[key], `${what}: ${key}[${k}]`, rtol);
    }
  }
}

/** Reads a table cell's "mean [min – max] (k of n diverged)" or "not finite ...". */
function parseFinal(text: string) {
  const m = /^(\S+)(?: \[(\S+) – (\S+)\])?(?: \((\d+) of (\d+) diverged\))?$/.exec(text);
  return m && m[1] !== "not"
    ? {
      mean: Number(m[1].replace("%", "")),
      min: m[2] === undefined ? undefined : Number(m[2].replace("%", "")),
      max: m[3] === undefined ? undefined : Number(m[3].replace("%", "")),
      diverged: m[4] === undefined ? 0 : Number(m[4]),
      of: m[5] === undefined ? undefined : Number(m[5]),
    }
    : undefined;
}

function unescape(s: string): string {
  return s.replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c)));
}

property(
  "report groups in unusual states: every figure by hand, every group once in table and legend",
  fc.array(groupCase, { minLength: 1, maxLength: 6 }),
  200,
  (cases) => {
    const runs = runsOf(cases);
    const groups = groupRuns(runs, ["ours", "seed"]);
    const keyOf = (r: { source: string; experiment: string; config: string }) =>
      `${r.source} ${r.experiment} ${r.config}`;
    const byKey = new Map<string, Run[]>();
    for (const r of runs) byKey.set(keyOf(r), [...(byKey.get(keyOf(r)) ?? []), r]);
    assert.equal(groups.length, byKey.size, "one group per source, experiment and configuration");
    for (const g of groups) {
      const members = byKey.get(keyOf(g));
      assert.ok(members, `${g.label}: no such configuration`);
      assert.deepEqual(g.runs.map((r) => r.dir).sort(), members.map((r) => r.dir).sort());
      const what = g.label;
      checkBand(g.loss, members.map((r) => r.avgLoss), `${what} loss`);
      const metrics = new Set(members.map((r) => r.metric));
      if (metrics.size === 1 && members[0].metric) {
        checkBand(g.metricBand!, members.map((r) => r.metricValues!), `${what} metric`);
      } else assert.equal(g.metricBand, undefined, `${what}: no metric band`);
      const lengths = members.map((r) => r.avgLoss.length);
      assert.deepEqual(g.epochs, { min: Math.min(...lengths), max: Math.max(...lengths) });
      const last = members.map((r) => r.avgLoss[r.avgLoss.length - 1]);
      const fin = last.filter((x) => Number.isFinite(x));
      assert.equal(g.final.loss.nonFinite, last.length - fin.length, `${what}: non-finite count`);
      if (fin.length) {
        const s = stats(fin);
        near(g.final.loss.mean, s.mean, `${what}: final mean`);
        near(g.final.loss.min, s.min, `${what}: final min`);
        near(g.final.loss.max, s.max, `${what}: final max`);
      } else assert.equal(g.final.loss.mean, null, `${what}: no finite final loss`);
      let spe = 0;
      for (const r of members) spe += r.seconds[r.seconds.length - 1] / r.seconds.length;
      near(g.final.secondsPerEpoch, spe / members.length, `${what}: seconds per epoch`);
      const open = members.filter((r) => (r.status ?? "finished") !== "finished").length;
      assert.equal(g.status.summary === undefined, open === 0, `${what}: status summary`);
      for (const st of ["diverged", "interrupted", "running"] as const) {
        const count: number = members.filter((r) => r.status === st).length;
        assert.equal(g.status.counts[st], count, `${what}: ${st} runs`);
        if (count) {
          assert.ok(g.status.short?.includes(`${count} ${st}`), `${what}: ${g.status.short}`);
        }
      }
      const len = Math.min(...lengths);
      assert.equal(g.seconds.length, len, `${what}: seconds drawn`);
      for (let k = 0; k < len; k++) {
        near(g.seconds[k], stats(members.map((r) => r.seconds[k])).mean, `${what}: seconds[${k}]`);
      }
      if (g.metricBand) {
        const lastMetric = members.map((r) => r.metricValues![r.metricValues!.length - 1]);
        const ok = lastMetric.filter((x) => Number.isFinite(x));
        assert.equal(g.final.metric!.nonFinite, lastMetric.length - ok.length);
        if (ok.length) near(g.final.metric!.mean, stats(ok).mean, `${what}: final metric`);
        else assert.equal(g.final.metric!.mean, null);
      }
    }

    const collection: Collection = {
      sources: [...new Set(runs.map((r) => r.source))].map((label) => ({
        label,
        path: `/x/${label}`,
        runs: runs.filter((r) => r.source === label).length,
      })),
      runs,
      groups,
      problems: [],
      inputs: [],
    };
    const html = buildReportHtml(collection, { title: "t", script: "" });
    // The legend is drawn from the page data, one entry per group.
    const json = /<script type="application\/json" id="sgn-data">(.*?)<\/script>/s.exec(html);
    assert.ok(json, "page data embedded");
    const page = JSON.parse(json[1]) as { groups: { label: string; n: number; status?: string }[] };
    assert.deepEqual(page.groups.map((p) => p.label), groups.map((g) => g.label), "legend");
    assert.equal(new Set(page.groups.map((p) => p.label)).size, byKey.size, "legend labels unique");
    // The table: one row per group, in the same order, its final figures as computed here.
    const rows = [...html.matchAll(/<tr data-group="([^"]*)"[^>]*>(.*?)<\/tr>/g)];
    assert.deepEqual(rows.map((r) => unescape(r[1])), groups.map((g) => g.label), "table rows");
    for (const [i, row] of rows.entries()) {
      const g = groups[i];
      const members = byKey.get(keyOf(g))!;
      const n = members.length;
      const cells = [...row[2].matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((m) => unescape(m[1]));
      assert.equal(Number(cells[3]), n, `${g.label}: runs`);
      if (g.metric) {
        // "test_acc: 12.34% [..]" (percent, two decimals) or "test_loss: 0.1234 [..]".
        assert.ok(cells[6].startsWith(`${g.metric}: `), `${g.label}: metric cell "${cells[6]}"`);
        const rest = cells[6].slice(g.metric.length + 2);
        const lastMetric = members.map((r) => r.metricValues![r.metricValues!.length - 1]);
        const ok = lastMetric.filter((x) => Number.isFinite(x));
        const m = parseFinal(rest);
        if (!ok.length) assert.match(rest, /^not finite/, `${g.label}: metric "${rest}"`);
        else {
          assert.ok(m, `${g.label}: metric cell "${rest}"`);
          const acc = g.metric === "test_acc";
          const want = stats(ok);
          for (const key of ["mean", "min", "max"] as const) {
            if (key !== "mean" && ok.length < 2) continue;
            const e = (acc ? 100 : 1) * want[key];
            const tol = acc ? 0.0051 : 1e-3 * Math.abs(e) + 1e-12;
            assert.ok(Math.abs(m[key]! - e) <= tol, `${g.label}: metric ${key} ${m[key]}, ${e}`);
          }
          assert.equal(m.diverged, members.length - ok.length, `${g.label}: metric diverged`);
        }
      } else assert.equal(cells[6], "—", `${g.label}: no metric`);
      const last = members.map((r) => r.avgLoss[r.avgLoss.length - 1]);
      const fin = last.filter((x) => Number.isFinite(x));
      const cell = parseFinal(cells[5]);
      if (!fin.length) {
        assert.equal(cell, undefined, `${g.label}: "${cells[5]}" says not finite`);
        assert.match(cells[5], /^not finite/);
        continue;
      }
      assert.ok(cell, `${g.label}: final loss cell "${cells[5]}"`);
      const s = stats(fin);
      // Four significant digits in the table.
      near(cell.mean, s.mean, `${g.label}: table mean`, 1e-3);
      if (fin.length > 1) {
        near(cell.min, s.min, `${g.label}: table min`, 1e-3);
        near(cell.max, s.max, `${g.label}: table max`, 1e-3);
      }
      assert.equal(cell.diverged, n - fin.length, `${g.label}: diverged runs`);
      if (cell.diverged) assert.equal(cell.of, n, `${g.label}: out of every run`);
      if (page.groups[i].n !== n) assert.fail(`${g.label}: legend n ${page.groups[i].n}`);
      assert.equal(page.groups[i].status, g.status.short, `${g.label}: legend status`);
    }
  },
);
