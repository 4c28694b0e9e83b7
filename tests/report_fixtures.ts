/**
 * The runs the report tests read: results folders written by hand (ours with epoch_time, the
 * seed's with tot_time only, broken ones), and comparisons with numbers worked out by hand.
 * Shared by tests/report_*_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Group } from "../report/mod.ts";
import { chromiumIgnore } from "./headless.ts";

/** `actual` is `expected` to 1e-12. */
export function close(actual: number | null | undefined, expected: number, what: string) {
  assert.ok(
    typeof actual === "number" && Math.abs(actual - expected) < 1e-12,
    `${what}: ${actual} != ${expected}`,
  );
}

/** Each of `actual` is its `expected` to 1e-12. */
export function closeAll(actual: (number | null)[], expected: number[], what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((a, i) => close(a, expected[i], `${what}[${i}]`));
}

/** A run folder with its results.json and config.json (objects as JSON, strings as they are). */
export async function writeRun(dir: string, results: unknown, config?: unknown) {
  await Deno.mkdir(dir, { recursive: true });
  if (results !== undefined) {
    await Deno.writeTextFile(
      join(dir, "results.json"),
      typeof results === "string" ? results : JSON.stringify(results),
    );
  }
  if (config !== undefined) {
    await Deno.writeTextFile(
      join(dir, "config.json"),
      typeof config === "string" ? config : JSON.stringify(config),
    );
  }
}

/** The seed's config.json of an SGN_3 and an SGD_1 run (no data set, seed or precision). */
export const SGN_CONFIG = { config: { SOLVER: "SGN", MAX_CG_ITERS: 3 }, layers: [20, 20, 20] };
export const SGD_CONFIG = { config: { SOLVER: "SGD", LR0: 1 }, layers: [20, 20, 20] };

/** A well-formed run of ours: two epochs, with test accuracy and epoch_time. */
export const RUN = { avg_loss: [1, 0.5], test_acc: [0.5, 0.6], tot_time: 2, epoch_time: [1, 2] };

/**
 * ours/results/mnist: three SGN_3 seeds with epoch_time (one with a broken config.json) and a
 * hand-named run; seed/results/mnist: two SGN_3 seeds of different lengths with only tot_time,
 * a diverged SGD_1 run written the way Python writes NaN, and four broken SGD_1 runs.
 */
export async function writeFixture(root: string) {
  const ours = join(root, "ours/results/mnist");
  const seed = join(root, "seed/results/mnist");
  for (let s = 1; s <= 3; s++) {
    await writeRun(
      join(ours, `res_SGN_3_${s}`),
      {
        avg_loss: [1, 0.5, 0.25].map((x) => x * s),
        acc: [0.5, 0.6, 0.7],
        test_acc: [0.4, 0.5, 0.6].map((x) => x + 0.1 * s),
        tot_epochs: 3,
        tot_time: 3 * s,
        tot_iterations: 30,
        epoch_time: [1, 2, 3].map((x) => x * s),
      },
      s === 3 ? "{ broken" : { ...SGN_CONFIG, dataset: "mnist", seed: s },
    );
  }
  await writeRun(
    join(ours, "handmade"),
    { avg_loss: [0.7, 0.6], test_acc: [0.8, 0.85], tot_time: 4, epoch_time: [2, 4] },
    { config: { SOLVER: "SGD", LR0: 0.5 }, dataset: "fashion", seed: 2 },
  );
  await writeRun(
    join(seed, "res_SGN_3_1"),
    {
      avg_loss: [0.9, 0.3, 0.1, 0.05],
      test_acc: [0.8, 0.9, 0.92, 0.93],
      tot_time: 8,
      tot_epochs: 4,
    },
    SGN_CONFIG,
  );
  await writeRun(
    join(seed, "res_SGN_3_2"),
    { avg_loss: [1.1, 0.5, 0.3], test_acc: [0.7, 0.8, 0.9], tot_time: 3, tot_epochs: 3 },
    SGN_CONFIG,
  );
  await writeRun(
    join(seed, "res_SGD_1_1"),
    '{"avg_loss": [2.0, NaN], "test_acc": [0.1, NaN], "tot_time": 2.0, "tot_epochs": 2}',
    SGD_CONFIG,
  );
  await writeRun(join(seed, "res_SGD_1_2"), '{"avg_loss": [1, 2', SGD_CONFIG);
  await writeRun(
    join(seed, "res_SGD_1_3"),
    { avg_loss: [1, 2, 3], test_acc: [0.1, 0.2], tot_time: 1 },
    SGD_CONFIG,
  );
  await writeRun(join(seed, "res_SGD_1_4"), undefined, SGD_CONFIG);
  await writeRun(
    join(seed, "res_SGD_1_5"),
    { avg_loss: [1, "x"], test_acc: [0.1, 0.2], tot_time: 1 },
    SGD_CONFIG,
  );
  return { ours, seed };
}

/** The group labelled `label`, which must be there. */
export function group(groups: Group[], label: string): Group {
  const g = groups.find((g) => g.label === label);
  assert.ok(g, `no group "${label}" among ${groups.map((g) => g.label).join(", ")}`);
  return g;
}

/**
 * A test of the report page in headless Chromium (ignored where there is none), given a fresh
 * temporary folder that is removed after it.
 */
export function pageTest(name: string, fn: (root: string) => Promise<void>): void {
  Deno.test({
    name,
    ignore: chromiumIgnore,
    async fn() {
      const root = await Deno.makeTempDir({ prefix: "sgn-report-page-" });
      try {
        await fn(root);
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    },
  });
}
