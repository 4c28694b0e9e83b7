/**
 * The one results.json and config.json schema (train/results.ts) that the writer and the report
 * share: what the training loop writes passes its strict ("written") check, the committed runs
 * pass its lenient reading, generated files follow their table rows field by field, and a
 * malformed config.json field is named by the report and left out.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { collectRuns, findRunDirs } from "../report/mod.ts";
import { runExperiment } from "../train/experiment.ts";
import { train } from "../train/loop.ts";
import {
  type Check,
  checkConfig,
  checkResults,
  type Field,
  parseLenientJson,
  RESULTS_SCHEMA,
  type ResultsFile,
  RUN_STATUSES,
  type Schema,
} from "../train/results.ts";
import { parseTrainArgs } from "../train/settings.ts";
import { mlp } from "../models/networks.ts";
import { SGN } from "../sgn/sgn.ts";
import { cpu } from "./harness.ts";
import { fc, property } from "./property.ts";
import { writeRun } from "./report_fixtures.ts";

async function readJson(path: string): Promise<unknown> {
  return parseLenientJson(await Deno.readTextFile(path));
}

Deno.test("results schema: the files train writes pass the written check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-schema-" });
  try {
    const runs = [
      ["--solver", "SGN", "--diagnose", "5", "--f", "sgn"],
      ["--solver", "SGD", "--lr", "0.1", "--f", "sgd"],
    ];
    for (const flags of runs) {
      const args = ["--dataset", "sine_10", "--layers", "8", "--epochs", "2", "--path", dir];
      await runExperiment(parseTrainArgs([...args, "--batch_size", "500", ...flags]));
      const folder = join(dir, flags.at(-1)!);
      const results = checkResults(await readJson(join(folder, "results.json")), "written");
      assert.deepEqual(results.issues, [], flags.join(" "));
      assert.equal(results.results?.avg_loss.length, 2);
      assert.equal(results.results?.diagnostics !== undefined, flags.includes("--diagnose"));
      const config = checkConfig(await readJson(join(folder, "config.json")), "written");
      assert.deepEqual(config.issues, [], flags.join(" "));
      assert.equal(config.config?.dataset, "sine_10");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }

  // Classification (acc, test_acc, tot_epochs) with SGN's rho and alpha, from the loop itself.
  const net = mlp({ inputs: 3, hidden: [4], outputs: 3 });
  const inputs = Float32Array.from({ length: 36 }, (_, k) => Math.sin(k));
  const targets = Int32Array.from({ length: 12 }, (_, k) => k % 3);
  const optimizer = new SGN(net.init({ backend: cpu, dtype: "float64", seed: 1 }), {});
  try {
    const record = await train({
      network: net,
      optimizer,
      task: "classification",
      backend: cpu,
      dtype: "float64",
      train: { inputs, targets },
      test: { inputs, targets },
      epochs: 2,
      batchSize: 5,
      diagnose: { every: 2 },
    });
    const file: ResultsFile = { ...record, status: "finished" };
    const checked = checkResults(parseLenientJson(JSON.stringify(file)), "written");
    assert.deepEqual(checked.issues, []);
    assert.deepEqual(
      Object.keys(checked.results!).sort(),
      Object.keys(RESULTS_SCHEMA).filter((k) => k !== "test_loss" && k !== "status_reason")
        .sort(),
    );
  } finally {
    optimizer.dispose();
  }
});

Deno.test("results schema: committed runs read without an issue; the seed's format only reads", async () => {
  const root = new URL("../results", import.meta.url).pathname;
  const dirs = await findRunDirs(root);
  assert.ok(dirs.length >= 100, `${dirs.length} committed runs`);
  for (const dir of dirs) {
    const results = checkResults(await readJson(join(dir, "results.json")));
    assert.deepEqual(results.issues, [], dir);
    assert.deepEqual(checkConfig(await readJson(join(dir, "config.json"))).issues, [], dir);
  }

  // The seed's files: no status, no epoch_time, NaN where a run diverged, a config.json with the
  // seed's block only. The reader takes them; sgn's writer would not write them.
  const seed = parseLenientJson(
    '{"avg_loss": [2.0, NaN], "acc": [0.1, 0.2], "test_acc": [0.1, NaN], "tot_time": 2.0, ' +
      '"tot_epochs": 2, "tot_iterations": 6, "rho": [1, 0.5, 0.2, 0.1, 0.1, 0.1], ' +
      '"alpha": [1, 1, 1, 0.5, 0.5, 1]}',
  );
  const read = checkResults(seed);
  assert.deepEqual(read.issues, []);
  assert.ok(Number.isNaN(read.results!.avg_loss[1]));
  assert.equal(read.results!.status, undefined);
  assert.deepEqual(checkResults(seed, "written").issues, [{
    reason: "no status (where the run stands)",
    fatal: true,
  }]);
  const seedConfig = { config: { SOLVER: "SGN", MAX_CG_ITERS: 3, BATCH_SIZE: 1000 } };
  assert.deepEqual(checkConfig(seedConfig).issues, []);
  assert.deepEqual(checkConfig(seedConfig, "written").issues, [{
    reason: "no seed (the seed)",
    fatal: true,
  }]);
});

/** A results.json as sgn writes it, built from generated sizes and values. */
function resultsOf(c: {
  epochs: number;
  steps: number;
  classification: boolean;
  test: boolean;
  sgn: boolean;
  measured: number;
  status: (typeof RUN_STATUSES)[number];
  reason?: string;
  values: number[];
}): ResultsFile {
  const v = (k: number) => c.values[k % c.values.length];
  const list = (n: number, offset: number) => Array.from({ length: n }, (_, k) => v(k + offset));
  const seconds: number[] = [];
  for (const x of list(c.epochs, 0)) seconds.push((seconds.at(-1) ?? 0) + x);
  const m = c.epochs === 0 ? 0 : c.measured;
  const measured = (offset: number) => list(m, offset).map((x, k) => (k % 3 === 2 ? null : x));
  return {
    avg_loss: list(c.epochs, 1),
    ...(c.classification
      ? {
        acc: list(c.epochs, 2),
        tot_epochs: c.epochs,
        ...(c.test ? { test_acc: list(c.epochs, 3) } : {}),
      }
      : c.test
      ? { test_loss: list(c.epochs, 3) }
      : {}),
    tot_time: seconds.at(-1) ?? 0,
    tot_iterations: c.steps,
    ...(c.sgn ? { rho: list(c.steps, 4), alpha: list(c.steps, 5) } : {}),
    epoch_time: seconds,
    ...(m
      ? {
        diagnostics: {
          step: Array.from({ length: m }, (_, k) => 1 + 3 * k),
          epoch: Array.from({ length: m }, (_, k) => 1 + Math.floor((k * c.epochs) / m)),
          top_eigenvalue: measured(6),
          bottom_eigenvalue: measured(7),
          trace: measured(8),
          trace_std_error: measured(9),
          rho: list(m, 10),
          condition: measured(11),
        },
      }
      : {}),
    status: c.status,
    ...(c.reason === undefined ? {} : { status_reason: c.reason }),
  };
}

const RESULTS_CASE = fc.record({
  epochs: fc.nat(5),
  steps: fc.nat(8),
  classification: fc.boolean(),
  test: fc.boolean(),
  sgn: fc.boolean(),
  measured: fc.nat(4),
  status: fc.constantFrom(...RUN_STATUSES),
  reason: fc.option(fc.string({ maxLength: 30 }), { nil: undefined }),
  values: fc.array(fc.integer({ min: 0, max: 1e6 }).map((x) => x / 8), {
    minLength: 1,
    maxLength: 16,
  }),
  // Which field to break or drop, as an index into the file's fields.
  pick: fc.nat(),
});

/** The generated file, the field `pick` chooses, its row, and the file without it. */
function pickField(c: Parameters<typeof resultsOf>[0] & { pick: number }) {
  const file = resultsOf(c) as unknown as Record<string, unknown>;
  const keys = Object.keys(file);
  const key = keys[c.pick % keys.length];
  const { [key]: _dropped, ...rest } = file;
  return { file, key, row: (RESULTS_SCHEMA as Record<string, Field<unknown>>)[key], rest };
}

property(
  "results schema: a file as sgn writes it passes both checks and reads back whole",
  RESULTS_CASE,
  200,
  (c) => {
    const file = resultsOf(c);
    const json = parseLenientJson(JSON.stringify(file));
    assert.deepEqual(checkResults(json, "written").issues, []);
    const read = checkResults(json);
    assert.deepEqual(read.issues, []);
    assert.deepEqual(read.results, file);
  },
);

property(
  "results schema: a malformed field is named, and skips the file or is left out as its row says",
  RESULTS_CASE,
  200,
  (c) => {
    const { file, key, row, rest } = pickField(c);
    // No field takes an object without the diagnostics' lists.
    const broken = { ...file, [key]: { [key]: 1 } };
    const read = checkResults(broken);
    assert.equal(read.issues.length, 1, JSON.stringify(read.issues));
    const [issue] = read.issues;
    const names = (reason: string) => new RegExp(`^${key}[ .[]`).test(reason);
    assert.ok(names(issue.reason), `${key}: ${issue.reason}`);
    const skips = row.malformed === "skip";
    assert.equal(issue.fatal, skips, issue.reason);
    if (skips) assert.equal(read.results, undefined);
    else {
      assert.match(issue.reason, /: ignored$/);
      assert.deepEqual(read.results, rest);
    }
    const written = checkResults(broken, "written");
    assert.equal(written.results, undefined);
    assert.deepEqual(written.issues.map((i) => [names(i.reason), i.fatal]), [[true, true]]);
  },
);

property(
  "results schema: an absent field stops the reader only where its row requires it",
  RESULTS_CASE,
  200,
  (c) => {
    const { key, row, rest } = pickField(c);
    const read = checkResults(rest);
    // tot_time and epoch_time each stand in for the other, and sgn writes both.
    if (row.read === "required") {
      assert.deepEqual(read.issues, [{ reason: `no ${key} (${row.about})`, fatal: true }]);
    } else {
      assert.deepEqual(read.issues, []);
      assert.deepEqual(read.results, rest);
    }
    const written = checkResults(rest, "written").issues;
    assert.deepEqual(
      written,
      row.written === "always" ? [{ reason: `no ${key} (${row.about})`, fatal: true }] : [],
    );
  },
);

Deno.test("results schema: a row per field of the record, each checking its field's type", () => {
  const numbersCheck: Check<number[]> = RESULTS_SCHEMA.avg_loss.check;
  // @ts-expect-error: a check of a list of numbers is not a check of a string
  const textCheck: Check<string> = numbersCheck;
  // @ts-expect-error: a field every file has must be written "always"
  const sometimes: Field<number[]> = { about: "", check: numbersCheck, written: "for SGN" };
  // @ts-expect-error: a table without a row for one of the record's fields
  const missing: Schema<{ a: number[]; b: number[] }> = {
    a: { about: "a", check: numbersCheck, written: "always" },
  };
  // The rows, in the order they are checked, are the fields of ResultsFile.
  assert.deepEqual(Object.keys(RESULTS_SCHEMA), [
    "status",
    "status_reason",
    "avg_loss",
    "acc",
    "test_acc",
    "test_loss",
    "epoch_time",
    "tot_time",
    "tot_epochs",
    "tot_iterations",
    "rho",
    "alpha",
    "diagnostics",
  ]);
  void [textCheck, sometimes, missing]; // checked by the compiler only
});

Deno.test("report: a malformed config.json field is named and left out; the run is still drawn", async () => {
  const root = await Deno.makeTempDir({ prefix: "sgn-schema-" });
  try {
    const results = { avg_loss: [1, 0.5], test_loss: [1, 0.6], epoch_time: [1, 2] };
    await writeRun(join(root, "boston/res_SGN_3_1"), results, {
      config: { SOLVER: "SGN", MAX_CG_ITERS: "three" },
      seed: "one",
      dataset: "boston",
    });
    // A folder named by hand takes its name from config.json, which no longer names a solver.
    await writeRun(join(root, "boston/mine"), results, { config: { SOLVER: 3, LR0: 0.1 } });
    const c = await collectRuns([{ label: "x", path: root }]);
    assert.deepEqual(c.groups.map((g) => g.label), ["x boston mine (n=1)", "x boston SGN_3 (n=1)"]);
    assert.deepEqual(c.problems.map((p) => [p.file.slice(root.length + 1), p.reason, p.skipped]), [
      [
        "boston/mine/config.json",
        "config.SOLVER is 3, not a string: ignored",
        false,
      ],
      [
        "boston/mine",
        "name is not res_<solver>_<setting>_<seed> and config.json names no solver: drawn on " +
        "its own",
        false,
      ],
      [
        "boston/res_SGN_3_1/config.json",
        'config.MAX_CG_ITERS is "three", not a count (an integer >= 0): ignored',
        false,
      ],
      [
        "boston/res_SGN_3_1/config.json",
        'seed is "one", not a count (an integer >= 0): ignored',
        false,
      ],
    ]);
    // A config.json that is not an object is said so, and names nothing.
    await Deno.writeTextFile(join(root, "boston/mine/config.json"), "[1, 2]");
    const list = await collectRuns([{ label: "x", path: join(root, "boston/mine") }]);
    assert.equal(list.problems[0].reason, "holds a list, not an object of settings");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
