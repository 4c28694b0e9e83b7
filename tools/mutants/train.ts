/**
 * Mutants of the run machinery, the data sets and the report (issue 19): grid shards, atomic
 * writes, what `reproduce` counts as done, the settings' defaults, the training record's times,
 * every data set's preprocessing on both splits, and the report's statistics, table and legend.
 * Each is a single-line bug of the kind a person makes; `what` starts with "[t19]" so that
 * `deno run -A tools/mutate.ts --only "[t19]"` runs exactly this list. Those of the results
 * schema and the report's input (issue 23: the reader's leniency where a row allows it and not
 * elsewhere, the writer's strict check, the bounded read, the seed's seconds) start with
 * "[report]" instead.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const PROP = ["tests/property_runs_test.ts", "tests/property_report_test.ts"];
const PINNED = ["tests/pinned_test.ts"];
const RUNS = ["tests/report_runs_test.ts"];
const SCHEMA = ["tests/report_schema_test.ts"];

/** The mutants of train/, datasets/ and report/ that the generated and pinned tests must kill. */
export const MUTANTS: Mutant[] = [
  // --- grids, files, run folders -----------------------------------------------------------
  {
    file: "train/reproduce.ts",
    find: "i % shard.count === shard.index - 1",
    replace: "i % shard.count === shard.index",
    what: "[t19] shard I/N takes position I instead of I - 1 (one shard empty, one run twice)",
    tests: PROP,
  },
  {
    file: "train/atomic.ts",
    find: "`.${basename(path)}.${suffix}.tmp`",
    replace: "`.${basename(path)}.tmp`",
    what: "[t19] one fixed temporary name per destination (a crashed writer's file blocks it)",
    tests: PROP,
  },
  {
    file: "train/atomic.ts",
    find: "if (created) await Deno.remove(temp).catch(() => {});",
    replace: "if (!created) await Deno.remove(temp).catch(() => {});",
    what: "[t19] a failed atomic write leaves its temporary file behind",
    tests: PROP,
  },
  {
    file: "train/run_folder.ts",
    find: "epochs >= expectedEpochs",
    replace: "epochs > expectedEpochs",
    what: "[t19] a seed-format results.json with exactly the planned epochs is rerun",
    tests: PROP,
  },
  {
    file: "train/run_folder.ts",
    find: 'if (!results.ok || results.value.status === "running") {',
    replace: 'if (!results.ok || results.value.status !== "finished") {',
    what: "[t19] another host's interrupted run with a fresh heartbeat is left as busy, not rerun",
    tests: PROP,
  },
  {
    file: "train/run_folder.ts",
    find: "if (age > staleMs) {",
    replace: "if (age >= staleMs / 100) {",
    what: "[t19] a heartbeat taken for dead after a hundredth of the stale time",
    tests: PROP,
  },
  // --- settings and the training record ----------------------------------------------------
  {
    file: "train/settings.ts",
    find: "default: 1e-6,",
    replace: "default: 1e-5,",
    what: "[t19] DAMP_RHO_MIN's default 1e-5 instead of the seed's 1e-6",
    tests: PINNED,
  },
  {
    file: "train/settings.ts",
    find: '    default: 1000,\n    help: "last step',
    replace: '    default: 10,\n    help: "last step',
    what: "[t19] K's default the SGN class's 10 instead of the scripts' 1000",
    tests: PINNED,
  },
  {
    file: "train/loop.ts",
    find: "const seconds = () => (performance.now() - t0 - diagnosing) / 1000;",
    replace: "const seconds = () => performance.now() - t0 - diagnosing;",
    what: "[t19] tot_time and epoch_time in milliseconds",
    tests: PINNED,
  },
  {
    file: "train/loop.ts",
    find: "record.epoch_time.push(record.tot_time);",
    replace: "record.epoch_time.push(record.tot_time - (record.epoch_time.at(-1) ?? 0));",
    what: "[t19] epoch_time holds each epoch's duration, not cumulative seconds",
    tests: PINNED,
  },
  // --- data sets ---------------------------------------------------------------------------
  {
    file: "datasets/sets.ts",
    find: "test: take(order.subarray(404)),",
    replace: "test: take(order.subarray(405)),",
    what: "[t19] Boston's test split starts one row late",
    tests: PINNED,
  },
  {
    file: "datasets/sets.ts",
    find: '  "ptratio",\n  "b",',
    replace: '  "b",\n  "ptratio",',
    what: "[t19] Boston's ptratio and b columns swapped",
    tests: PINNED,
  },
  {
    file: "datasets/sets.ts",
    find: "const sd = Math.sqrt(variance / plane);",
    replace: "const sd = Math.sqrt(variance / (plane - 1));",
    what: "[t19] per-image standardization with the sample deviation (n - 1)",
    tests: PINNED,
  },
  {
    file: "datasets/sets.ts",
    find: "standardizePerImage(pixels, count, shape[0])",
    replace: "standardizePerImage(pixels, count, 1)",
    what: "[t19] conv inputs standardized per image, not per image and channel",
    tests: PINNED,
  },
  {
    file: "datasets/idx.ts",
    find: "bytes.subarray(i * CIFAR_RECORD + 1, (i + 1) * CIFAR_RECORD),",
    replace: "bytes.subarray(i * CIFAR_RECORD, (i + 1) * CIFAR_RECORD - 1),",
    what: "[t19] CIFAR-10 pixels read from the label byte on (one byte early)",
    tests: PINNED,
  },
  {
    file: "datasets/sets.ts",
    find: "const test = join(batches.slice(5));",
    replace: "const test = join(batches.slice(4));",
    what: "[t19] CIFAR-10's test set includes data_batch_5",
    tests: PINNED,
  },
  {
    file: "datasets/sets.ts",
    find: "const samples = entries.filter((img) => img.length === 784);",
    replace: "const samples = entries.filter((img) => img !== null);",
    what: "[t19] Fashion-MNIST's empty entries kept as images",
    tests: PINNED,
  },
  {
    file: "datasets/synthetic.ts",
    find: "const cut = Math.floor(0.3 * n);",
    replace: "const cut = Math.round(0.3 * n);",
    what: "[t19] the sine test split rounded instead of floored",
    tests: PINNED,
  },
  // --- report ------------------------------------------------------------------------------
  {
    file: "report/stats.ts",
    find: "return Math.sqrt(s / (xs.length - 1));",
    replace: "return Math.sqrt(s / xs.length);",
    what: "[t19] the band's std with n instead of the promised n - 1",
    tests: PROP,
  },
  {
    file: "report/stats.ts",
    find: "const ok = values.filter(Number.isFinite);",
    replace: "const ok = values.filter((x) => !Number.isNaN(x));",
    what: "[t19] final figures count Infinity as a finite value",
    tests: PROP,
  },
  {
    file: "report/stats.ts",
    find: "if (xs.some((x) => !Number.isFinite(x))) {",
    replace: "if (xs.some((x) => Number.isNaN(x))) {",
    what: "[t19] the per-epoch band averages Infinity in",
    tests: PROP,
  },
  {
    file: "report/group.ts",
    find: "const key = JSON.stringify([r.source, r.experiment, r.config]);",
    replace: "const key = JSON.stringify([r.experiment, r.config]);",
    what: "[t19] groups keyed without their source (the legend loses a source's group)",
    tests: PROP,
  },
  {
    file: "report/group.ts",
    find: "const lastLoss = members.map((r) => r.avgLoss[r.avgLoss.length - 1]);",
    replace: "const lastLoss = members.map((r) => r.avgLoss[epochs.min - 1]);",
    what: "[t19] the final loss taken at the shortest run's last epoch for every run",
    tests: PROP,
  },
  {
    file: "report/html.ts",
    find: "if (f.nonFinite) s += ` (${f.nonFinite} of ${n} diverged)`;",
    replace: "if (f.nonFinite) s += ` (${f.nonFinite} of ${n - f.nonFinite} diverged)`;",
    what: "[t19] the table counts diverged runs out of the finite ones",
    tests: PROP,
  },
  {
    file: "report/html.ts",
    find: "const groups: PageGroup[] = collection.groups.map((g) => {",
    replace:
      "const groups: PageGroup[] = collection.groups.filter((g) => g.final.loss.mean !== null).map((g) => {",
    what: "[t19] the legend drops groups whose every run diverged",
    tests: PROP,
  },
  // --- the results schema and the report's input (issue 23) ----------------------------------
  {
    file: "train/results.ts",
    find: 'else if (mode === "read" && field.malformed !== "skip") {',
    replace: 'else if (mode === "read") {',
    what: "[report] a malformed field whose row skips the run is only left out",
    tests: [...RUNS, ...SCHEMA],
  },
  {
    file: "train/results.ts",
    find: ': field.read === "required" || (other !== undefined && at(json, other) === undefined);',
    replace: ': field.read === "required";',
    what: "[report] a results.json with neither epoch_time nor tot_time is read",
    tests: [...RUNS, ...SCHEMA],
  },
  {
    file: "train/results.ts",
    find: '? field.written === "always"',
    replace: "? false",
    what: "[report] the written check takes a file without the fields sgn always writes",
    tests: SCHEMA,
  },
  {
    file: "train/results.ts",
    find: "if (x === null && o.nullable) continue;",
    replace: "if (x === null) continue;",
    what: "[report] null taken in lists that cannot hold it (avg_loss, diagnostics.step)",
    tests: RUNS,
  },
  {
    file: "report/walk.ts",
    find: "if (info.size > limit) return { reason: `is ${info.size} bytes, ${tooBig}` };",
    replace: "if (info.size > limit + 1) return { reason: `is ${info.size} bytes, ${tooBig}` };",
    what: "[report] a file one byte over its size limit is opened",
    tests: ["tests/report_input_test.ts"],
  },
  {
    file: "report/run.ts",
    find: "r.tot_time! * (k + 1) / n);",
    replace: "r.tot_time! * k / n);",
    what: "[report] the seed's tot_time spread with epoch k ending where epoch k - 1 does",
    tests: RUNS,
  },
  {
    file: "report/deno_npm.ts",
    find: "        if (!packages.length) {",
    replace: "        if (packages.length < 0) {",
    what: "[report] a package Deno could not fetch is called missing from its own listing",
    tests: ["tests/deno_npm_test.ts"],
  },
  {
    file: "cli.ts",
    find: "      throw reportNotWritten(`the runs are saved in ${summary.folder}`, e);",
    replace: "      throw e;",
    what: "[report] reproduce's report that cannot be written is an internal error",
    tests: ["tests/cli_test.ts"],
  },
  {
    file: "cli.ts",
    find: "    throw reportNotWritten(`the run is saved in ${folder}`, e);",
    replace: "    throw e;",
    what: "[report] train's report that cannot be written is an internal error",
    tests: ["tests/cli_test.ts"],
  },
];
