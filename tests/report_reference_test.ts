/**
 * `train --report`'s reference runs: the runs of a run's configuration found among sgn's
 * committed runs (or a folder given), the settings that differ, and the run's own report.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  COMMITTED_RESULTS,
  configurationOf,
  findReference,
  writeRunReport,
} from "../report/mod.ts";
import { CHECK_RUN } from "../cli.ts";
import { runConfig } from "../train/experiment.ts";
import { parseTrainArgs } from "../train/settings.ts";
import { writeRun } from "./report_fixtures.ts";

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
