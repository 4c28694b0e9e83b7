/**
 * What every optimizer is: the interface SGN, SGD and Adam share, so that a training loop can
 * swap them, and the model they step on.
 *
 * @module
 */

import type { Tensor } from "../autodiff/tensor.ts";
import type { OutputLoss } from "../autodiff/transforms.ts";

/** A model as a function of its parameters on one mini-batch (its outputs z). */
export type ModelFn = (...params: Tensor[]) => Tensor;

/** The interface SGN, SGD and Adam share, so that a training loop can swap them. */
export interface Optimizer {
  /** The current parameters (owned by the optimizer; replaced by each step). */
  readonly params: readonly Tensor[];
  /**
   * One step on the mini-batch whose model and loss are given: the loss before the step and,
   * when the loss has a metric, that metric on outputs the step evaluated anyway.
   */
  step(model: ModelFn, loss: OutputLoss): Promise<{ loss: number; metric?: number }>;
  /** Frees the parameters and the optimizer's state. */
  dispose(): void;
}
