/**
 * sgn: training neural networks with the Stochastic Generalized Gauss-Newton method, on WebGPU
 * or natively on the CPU. This main entry point holds tensors, ops, transformations, models,
 * losses, optimizers, the spectral tools (`lanczos`, `hutchinson`, stochastic Lanczos quadrature)
 * and `train`; the other entry points (deno.json's exports) are
 * `sgn/datasets` (the seed's data sets), `sgn/report` (the HTML report) and `sgn/backend` (the
 * backend classes and kernel types).
 *
 * @example
 * ```ts
 * import { init, tensor } from "./mod.ts";
 * const backend = await init(); // WebGPU if an adapter exists, else CPU (with a notice)
 * const x = tensor([[1, 2], [3, 4]]);
 * console.log(backend.name, await x.data());
 * x.dispose();
 * ```
 *
 * @module
 */

export type { Backend } from "./kernel/backend.ts";

export type { DType, TypedArray } from "./kernel/shape.ts";

export { SgnError } from "./errors.ts";
export {
  type BackendChoice,
  type BackendName,
  backendNotice,
  getBackend,
  init,
  type InitOptions,
  setBackend,
} from "./autodiff/device.ts";
export {
  full,
  type NestedArray,
  scope,
  Tensor,
  tensor,
  type TensorOptions,
  zeros,
} from "./autodiff/tensor.ts";
export { NumpyRandomState, PythonRandom, Random } from "./random.ts";
export * as ops from "./autodiff/ops.ts";
export type { TensorLike } from "./autodiff/ops.ts";
export {
  type CurvatureOperator,
  fisherLinearize,
  ggnLinearize,
  type GgnOperator,
  ggnvp,
  grad,
  hessianLinearize,
  hvp,
  jvp,
  type LinearFn,
  linearize,
  type Linearized,
  type OutputLoss,
  type TensorFn,
  valueAndGrad,
  vjp,
} from "./autodiff/transforms.ts";
export { type Replayable, replayable } from "./autodiff/replay.ts";
export { accuracy, meanSquaredError, oneHot, softmaxCrossEntropy } from "./models/losses.ts";
export {
  type Activation,
  ACTIVATION_NAMES,
  ARCHITECTURES,
  convNet,
  type ConvNetSpec,
  type InitOptions as NetworkInitOptions,
  type LayerSpec,
  mlp,
  type MlpOptions,
  type Network,
} from "./models/networks.ts";
export type { CurvatureBatch, ModelFn, Optimizer } from "./sgn/optimizer.ts";
export { SGN, type SgnStepRecord } from "./sgn/sgn.ts";
export type { CgStop, Curvature, ResolvedSgnOptions, RhoDecay, SgnOptions } from "./sgn/options.ts";
export { Adam, type AdamOptions, type LrSchedule, SGD, type SgdOptions } from "./sgn/baselines.ts";
export {
  dampedOperator,
  ggnOperator,
  hessianOperator,
  type LinearOperator,
  matrixOperator,
} from "./linalg/operator.ts";
export {
  type DensityOptions,
  hutchinson,
  type HutchinsonOptions,
  type HutchinsonResult,
  lanczos,
  type LanczosOptions,
  type LanczosResult,
  type QuadratureOptions,
  spectralDensity,
  type SpectralQuadrature,
  stochasticLanczosQuadrature,
} from "./linalg/spectra.ts";
export { type TridiagonalEigen, tridiagonalEigen } from "./linalg/tridiagonal.ts";
export {
  type CurvatureDiagnostics,
  type CurvatureOptions,
  dampedCondition,
  ggnDiagnostics,
} from "./linalg/diagnostics.ts";
export {
  type Dataset,
  type DiagnoseOptions,
  InterruptedError,
  type ProgressEvent,
  type ResultsRecord,
  train,
  type TrainOptions,
} from "./train/loop.ts";
export type { DiagnosticsRecord } from "./train/results.ts";
