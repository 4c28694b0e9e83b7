/**
 * Issue 22's ablation grids (train/reproduce.ts ABLATIONS) and their summary (results/ablation.ts):
 * every planned run is valid `train` flags that parse back to its settings and is named as the
 * report parses run folders; each SGN variant is the seed's SGN(3) plus only its own settings;
 * the summary's epochs and seconds to the target are those of the first epoch at or above it.
 */
import assert from "node:assert/strict";
import { ABLATIONS, EXPERIMENTS, GRIDS, planRuns } from "../train/reproduce.ts";
import { parseTrainArgs } from "../train/settings.ts";
import { parseRunName } from "../report/run.ts";

Deno.test("ablation grids: valid flags, report-parsable names, SGN(3) plus one change each", () => {
  for (const experiment of Object.keys(ABLATIONS)) {
    assert.ok(!Object.hasOwn(GRIDS, experiment), "the seed's grids stay the seed's");
    assert.equal(EXPERIMENTS[experiment], ABLATIONS[experiment]);
    const runs = planRuns(experiment, { path: "/tmp/x" });
    const base = runs.find((r) => r.group === "SGN_3")!;
    assert.ok(base, `${experiment} has the seed's SGN_3`);
    for (const run of runs) {
      assert.deepEqual(parseTrainArgs(run.args), run.settings, run.name);
      const parsed = parseRunName(run.name);
      assert.ok(parsed, `${run.name} is a run name the report reads`);
      assert.equal(`${parsed!.solver}_${parsed!.setting}`, run.group);
      assert.equal(run.settings.epochs, ABLATIONS[experiment].epochs);
      if (run.group.startsWith("SGN_3+") && run.seed === base.seed) {
        // Only the variant's own settings (and the run's name) differ from SGN_3's.
        const own = ABLATIONS[experiment].variants![run.group] as Record<string, unknown>;
        const got = run.settings as unknown as Record<string, unknown>;
        const was = base.settings as unknown as Record<string, unknown>;
        for (const k of Object.keys(got)) {
          if (k === "f" || Object.hasOwn(own, k)) continue;
          assert.deepEqual(got[k], was[k], `${run.group}: ${k}`);
        }
      }
    }
  }
});

Deno.test("ablation summary: epochs and seconds to the target, final accuracy, per configuration", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const target = ABLATIONS.ablation_mnist.target!.testAcc;
    const write = async (name: string, acc: number[], time: number[], status = "finished") => {
      await Deno.mkdir(`${dir}/ablation_mnist/${name}`, { recursive: true });
      await Deno.writeTextFile(
        `${dir}/ablation_mnist/${name}/results.json`,
        JSON.stringify({ test_acc: acc, epoch_time: time, avg_loss: acc, status }),
      );
    };
    // Seed 1 reaches the target at epoch 3 (12 s), seed 2 at epoch 2 (7 s), seed 3 never.
    await write("res_SGN_3_1", [0.5, target - 1e-4, target, 0.95], [4, 8, 12, 16]);
    await write("res_SGN_3_2", [0.5, target + 0.01, 0.9, 0.95], [3, 7, 11, 15]);
    await write("res_SGN_3_3", [0.5, 0.6, 0.7, 0.8], [5, 10, 15, 20]);
    await write("res_SGD_1_1", [0.1, 0.2], [1, 2], "running"); // not finished: left out
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../results/ablation.ts", import.meta.url).pathname, dir],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const row = text.split("\n").find((l) => l.startsWith("| SGN_3 |"));
    assert.equal(
      row,
      "| SGN_3 | 3 | 2/3 | 2.5 (2.0-3.0) | 9.5 (7.0-12.0) | 4.25 (3.75-5.00) | 90.00% (80.00%-95.00%) |",
    );
    assert.ok(!text.includes("| SGD_1 |"), "an unfinished run is not counted");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
