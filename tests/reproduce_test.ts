/**
 * The seed's experiment grids: every planned run parses as `train` flags and, where the seed's
 * published runs are at hand (../shared/seed/results), writes the same configuration as the
 * seed's config.json; and a short reproduction runs, then skips what is done.
 */
import assert from "node:assert/strict";
import { parseTrainArgs, seedConfig } from "../train/settings.ts";
import { gridGroups, GRIDS, planRuns, reproduce, type ReproduceEvent } from "../train/reproduce.ts";

const SEED_RESULTS = new URL("../../shared/seed/results/", import.meta.url).pathname;
const haveSeedResults = (() => {
  try {
    return Deno.statSync(SEED_RESULTS).isDirectory;
  } catch {
    return false;
  }
})();

Deno.test("reproduce: every run of every grid is valid train flags, named as the seed names runs", () => {
  for (const experiment of Object.keys(GRIDS)) {
    const runs = planRuns(experiment, { path: "/tmp/x" });
    assert.equal(runs.length, gridGroups(GRIDS[experiment]).length * 5, experiment);
    for (const run of runs) {
      const a = parseTrainArgs(run.args);
      assert.equal(run.name, `res_${run.group}_${run.seed}`);
      assert.equal(a.f, run.name);
      assert.equal(a.path, `/tmp/x/${experiment}`);
      assert.equal(a.seed, run.seed);
      assert.equal(a.epochs, GRIDS[experiment].epochs);
      assert.equal(a.dataset, experiment);
      const [solver, setting] = run.group.split("_");
      assert.equal(a.solver, solver);
      assert.equal(solver === "SGN" ? a.cg_max_iter : a.lr, Number(setting));
    }
  }
  const mnist = planRuns("mnist", { runs: ["SGN_1", "SGN_3"], seeds: [2], epochs: 7 });
  assert.deepEqual(mnist.map((r) => r.name), ["res_SGN_1_2", "res_SGN_3_2"]);
  assert.deepEqual(parseTrainArgs(mnist[0].args).layers, [10, 10]);
  assert.deepEqual(parseTrainArgs(mnist[1].args).layers, [20, 20, 20]);
  assert.equal(parseTrainArgs(mnist[1].args).epochs, 7);
  // Every planned run's flags (what --dry-run prints) parse back to its settings.
  for (const experiment of Object.keys(GRIDS)) {
    for (const run of planRuns(experiment)) {
      assert.deepEqual(parseTrainArgs(run.args), run.settings, `${experiment} ${run.name}`);
    }
  }
  // Reproductions use the seed's Armijo test (SGN-ALGORITHM.md step 5's quirk), and say so.
  const sgn = parseTrainArgs(planRuns("mnist", { runs: ["SGN_3"], seeds: [1] })[0].args);
  assert.equal(sgn.armijo, "seed");
  assert.equal(seedConfig(sgn).ARMIJO, "seed");
  assert.equal(parseTrainArgs([]).armijo, "shrinking", "train's default stays Algorithm 3.1");
  assert.throws(() => planRuns("imagenet"), /unknown experiment "imagenet" \(available: mnist/);
  assert.throws(() => planRuns("mnist", { runs: ["SGN_4"] }), /no configuration "SGN_4".*SGN_3/);
  assert.throws(() => planRuns("mnist", { seeds: [] }), /seeds must be/);
  assert.throws(
    () => planRuns("mnist", { epochs: 0 }),
    /epochs must be an integer from 1 to 100000, got 0/,
  );
});

Deno.test({
  name: "reproduce: the grids hold the seed's configurations, as its config.json files say",
  ignore: !haveSeedResults,
  fn: async () => {
    let compared = 0;
    for (const experiment of Object.keys(GRIDS)) {
      const planned = new Map(planRuns(experiment).map((r) => [r.name, r]));
      for await (const entry of Deno.readDir(`${SEED_RESULTS}/${experiment}`)) {
        // The seed's extra "longer" CIFAR-10 runs are not part of its grid.
        if (!/^res_SG[DN]_[0-9.]+_[1-5]$/.test(entry.name)) continue;
        const run = planned.get(entry.name);
        assert.ok(run, `${experiment}/${entry.name} is missing from our grid`);
        const file = `${SEED_RESULTS}/${experiment}/${entry.name}/config.json`;
        let text: string;
        try {
          text = await Deno.readTextFile(file);
        } catch (e) {
          if (e instanceof Deno.errors.NotFound) continue; // a run without config.json
          throw new Error(`${file}: unreadable (${(e as Error).message})`);
        }
        // A config.json that does not parse is a failure, not a run to skip.
        const seed = JSON.parse(text);
        const a = parseTrainArgs(run.args);
        const ours = seedConfig(a);
        for (const [key, value] of Object.entries(seed.config)) {
          if (key === "EPOCHS" || key === "PRINT_LEVEL") continue; // run length, verbosity
          assert.equal(ours[key], value, `${experiment}/${entry.name}: ${key}`);
        }
        if (seed.layers) assert.deepEqual(a.layers, seed.layers, `${entry.name} layers`);
        compared++;
      }
    }
    assert.ok(compared > 200, `compared only ${compared} configurations`);
  },
});

Deno.test("reproduce: a short grid runs, records its runs, and a second call skips them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const options = {
      runs: ["SGN_10"],
      seeds: [1, 2],
      epochs: 1,
      path: dir,
      extra: { backend: "cpu" as const },
    };
    const events: ReproduceEvent["kind"][] = [];
    const first = await reproduce("sine_10", options, (e) => events.push(e.kind));
    assert.deepEqual(first.ran, ["res_SGN_10_1", "res_SGN_10_2"]);
    assert.deepEqual(first.skipped, []);
    assert.equal(first.folder, `${dir}/sine_10`);
    assert.deepEqual(events.filter((k) => k !== "progress"), ["start", "done", "start", "done"]);
    for (const name of first.ran) {
      const r = JSON.parse(await Deno.readTextFile(`${dir}/sine_10/${name}/results.json`));
      assert.equal(r.test_loss.length, 1);
      assert.ok(r.test_loss[0] < 0.6, `${name}: test loss ${r.test_loss[0]}`);
    }
    const second = await reproduce("sine_10", options);
    assert.deepEqual(second.ran, []);
    assert.deepEqual(second.skipped, ["res_SGN_10_1", "res_SGN_10_2"]);
    // A bad data directory fails its runs with the loader's message; the grid goes on.
    const bad = await reproduce("sine_10", {
      ...options,
      runs: ["SGN_2"],
      extra: { ...options.extra, "data-dir": `${dir}/nowhere` },
    });
    assert.equal(bad.failed.length, 2);
    assert.match(bad.failed[0].error, /sinusoidal_data_10\.0_0\.01\.json/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
