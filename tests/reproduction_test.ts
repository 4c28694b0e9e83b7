/**
 * Our runs against the seed's published ones where they can agree digit for digit: SGD is not
 * chaotic, so with the seed's initialization (NumPy seed 10), batch order (Python's
 * random.shuffle) and precision (float64, on both CPU backends), one epoch of the seed's MNIST SGD
 * run must give the seed's own numbers (results/mnist/res_SGD_1_1/results.json of its
 * repository).
 */
import assert from "node:assert/strict";
import { runExperiment } from "../train/experiment.ts";
import { parseTrainArgs } from "../train/settings.ts";
import { native } from "./harness.ts";

const backendNames = (await native()) ? ["cpu", "native"] : ["cpu"];

for (const backend of backendNames) {
  Deno.test(`reproduction (${backend}): MNIST SGD (lr 1, seed 1) in float64 gives the seed's published epoch 1`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const args = parseTrainArgs([
        ...["--dataset", "mnist", "--layers", "20", "20", "20", "--solver", "SGD", "--lr", "1"],
        ...["--epochs", "1", "--seed", "1", "--float64", "--backend", backend],
        ...["--path", dir, "--f", "res_SGD_1_1"],
      ]);
      const { results, backend: used } = await runExperiment(args);
      assert.equal(used, backend);
      // The seed's res_SGD_1_1: avg_loss[0], acc[0], test_acc[0].
      const seedLoss = 2.0021977930587;
      assert.ok(
        Math.abs(results.avg_loss[0] - seedLoss) < 1e-9,
        `mean training loss ${results.avg_loss[0]}, the seed's ${seedLoss}`,
      );
      assert.equal(results.acc![0].toFixed(12), (0.3453166666666666).toFixed(12));
      assert.equal(results.test_acc![0], 0.4977);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
