/**
 * sgn: training neural networks with the Stochastic Generalized Gauss-Newton method, on WebGPU,
 * with a CPU reference backend.
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

export {
  type Backend,
  type BinaryOp,
  type Conv2dSpec,
  type DeviceBuffer,
  type DType,
  type MatmulSpec,
  type Pool2dSpec,
  type ReduceOp,
  type Scalar,
  SgnError,
  type TypedArray,
  type UnaryOp,
} from "./backend.ts";
export { CpuBackend } from "./cpu/backend.ts";
export { NativeBackend } from "./cpu/native.ts";
export { type Blas, type BlasResult, loadBlas } from "./cpu/blas.ts";
export { WebGpuBackend } from "./wgsl/backend.ts";
export {
  BACKEND_CHOICES,
  type BackendChoice,
  checkBackendChoice,
  cpuBackend,
  getBackend,
  init,
  type InitOptions,
  nativeBackend,
  setBackend,
  webgpuBackend,
} from "./autodiff/device.ts";
export {
  full,
  keep,
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
  ggnLinearize,
  type GgnOperator,
  ggnvp,
  grad,
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
export { accuracy, meanSquaredError, oneHot, softmaxCrossEntropy } from "./models/losses.ts";
export {
  type Activation,
  ARCHITECTURE_1,
  ARCHITECTURE_2,
  ARCHITECTURE_3,
  ARCHITECTURE_4,
  ARCHITECTURES,
  convNet,
  type ConvNetSpec,
  type InitOptions as NetworkInitOptions,
  type LayerSpec,
  mlp,
  type MlpOptions,
  type Network,
} from "./models/networks.ts";
export { type ModelFn, type Optimizer, SGN, type SgnStepRecord } from "./sgn/sgn.ts";
export {
  cgBudget,
  type RhoDecay,
  scheduledRho,
  SGN_DEFAULTS,
  type SgnOptions,
} from "./sgn/options.ts";
export {
  Adam,
  type AdamOptions,
  type LrSchedule,
  scheduledLr,
  SGD,
  type SgdOptions,
} from "./sgn/baselines.ts";
export {
  type Dataset,
  type ProgressEvent,
  type ResultsRecord,
  train,
  type TrainOptions,
} from "./train/loop.ts";
export { flatten, unflatten } from "./sgn/vectors.ts";
