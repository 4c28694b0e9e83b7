/**
 * What every data set is (the {@link Dataset} and {@link LoadedDataset} types) and the data the
 * module makes itself, the seed's sine waves. Browser-safe: no files, no npm packages, so the
 * browser bundle and demo use it too.
 *
 * @module
 */

import { checkInt, SgnError, showValue } from "../errors.ts";
import { Random } from "../random.ts";

/** A data set in memory: inputs [n, ...sampleShape] flattened, and labels or targets. */
export interface Dataset {
  /** Inputs, sample after sample. */
  inputs: Float32Array;
  /** Class labels (classification) or targets [n, outputs] flattened (regression). */
  targets: Float32Array | Int32Array | Uint8Array;
}

/** A data set split into train and test parts, with what a network needs to know of it. */
export interface LoadedDataset {
  /** The data set's name as the command line spells it, e.g. "mnist" or "sine_10". */
  name: string;
  /** Classification (integer labels, accuracy) or regression (real targets, loss). */
  task: "classification" | "regression";
  /** Shape of one sample: [784] for MLP inputs, [c, h, w] for conv nets. */
  inputShape: number[];
  /** Classes (classification) or targets per sample (regression). */
  outputs: number;
  /** The training part. */
  train: Dataset;
  /** The test part, held out from training. */
  test: Dataset;
}

/**
 * The seed's sine waves: `n` points x ~ U(-1, 1), y = sin(f x) + N(0, noise^2) from a seeded
 * generator; the first 30% are the test set.
 *
 * @example
 * ```ts
 * import { sineWaves } from "./synthetic.ts";
 * const data = sineWaves(10, { seed: 1 });
 * console.log(data.train.inputs.length, data.test.inputs.length); // 7000 3000
 * ```
 */
export function sineWaves(
  f: number,
  options: { n?: number; noise?: number; seed?: number } = {},
): LoadedDataset {
  if (typeof f !== "number" || !(f > 0) || !Number.isFinite(f)) {
    throw new SgnError(`sine: the frequency must be > 0 and finite, got ${showValue(f)}`);
  }
  if (typeof options !== "object" || options === null) {
    throw new SgnError(`sine: options must be { n?, noise?, seed? }, got ${showValue(options)}`);
  }
  const { n = 10000, noise = 0.01, seed = 1 } = options;
  checkInt(n, "sine: n", 1, 1e8);
  checkInt(seed, "sine: seed", 0, 2 ** 32 - 1);
  if (typeof noise !== "number" || !(noise >= 0) || !Number.isFinite(noise)) {
    throw new SgnError(`sine: noise must be a finite number >= 0, got ${showValue(noise)}`);
  }
  const rng = new Random(seed);
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = rng.range(-1, 1);
    y[i] = Math.sin(f * x[i]) + noise * rng.normal();
  }
  const cut = Math.floor(0.3 * n);
  return {
    name: `sine_${f}`,
    task: "regression",
    inputShape: [1],
    outputs: 1,
    train: { inputs: x.slice(cut), targets: y.slice(cut) },
    test: { inputs: x.slice(0, cut), targets: y.slice(0, cut) },
  };
}
