/**
 * What every optimizer is: the interface SGN, SGD and Adam share, so that a training loop can
 * swap them, and the model they step on.
 *
 * @module
 */

import type { Tensor } from "../autodiff/tensor.ts";
import type { OutputLoss } from "../autodiff/transforms.ts";
import { SgnError, showValue } from "../errors.ts";

/** A model as a function of its parameters on one mini-batch (its outputs z). */
export type ModelFn = (...params: Tensor[]) => Tensor;

/**
 * The model and loss of the first `rows` rows of a step's mini-batch: how a caller hands an
 * optimizer a curvature mini-batch (SGN's option `curvatureBatch`), since the optimizer sees the
 * batch only through closures. Tensors it makes stay the caller's, alive until the step ends.
 */
export type CurvatureBatch = (rows: number) => { model: ModelFn; loss: OutputLoss };

/** The interface SGN, SGD and Adam share, so that a training loop can swap them. */
export interface Optimizer {
  /** The current parameters (owned by the optimizer; replaced by each step). */
  readonly params: readonly Tensor[];
  /**
   * One step on the mini-batch whose model and loss are given: the loss before the step and,
   * when the loss has a metric, that metric on outputs the step evaluated anyway.
   * `curvatureBatch`, when given, makes the model and loss of the batch's first rows (for
   * optimizers that use a curvature mini-batch; the others ignore it).
   */
  step(
    model: ModelFn,
    loss: OutputLoss,
    curvatureBatch?: CurvatureBatch,
  ): Promise<{ loss: number; metric?: number }>;
  /** Frees the parameters and the optimizer's state. */
  dispose(): void;
}

/**
 * Lets one step of an optimizer run at a time. A step reads the parameters and replaces them
 * when it ends; a second `step()` started before the first was awaited would read the old
 * parameters and overwrite the first step's update without a word. So it is refused.
 *
 * @example
 * ```ts
 * import { StepGuard } from "./optimizer.ts";
 * const guard = new StepGuard("SGD");
 * const model = () => {
 *   throw new Error("not called here");
 * };
 * const loss = { value: model, hessianProduct: model };
 * const slow = guard.run(() => new Promise((r) => setTimeout(r, 10)), model, loss);
 * await guard.run(async () => {}, model, loss).catch((e) => console.log(e.message)); // refused
 * await slow;
 * ```
 */
export class StepGuard {
  #running = false;

  /**
   * A guard for the optimizer named `name` (in its errors); `curvature`: its steps need the
   * loss's Hessian product too.
   */
  constructor(readonly name: string, readonly curvature = false) {}

  /**
   * Runs `step` unless another step of this optimizer is still running; `model` and `loss` are
   * the step's arguments, checked first.
   */
  async run<T>(step: () => Promise<T>, model?: unknown, loss?: unknown): Promise<T> {
    if (typeof model !== "function") {
      throw new SgnError(
        `${this.name}.step: the model must be a function of the parameters, got ${
          showValue(model)
        }`,
      );
    }
    const l = loss as Partial<OutputLoss> | null | undefined;
    if (
      typeof l?.value !== "function" ||
      (this.curvature && typeof l?.hessianProduct !== "function")
    ) {
      throw new SgnError(
        `${this.name}.step: the loss must be an output loss such as softmaxCrossEntropy(y) or ` +
          `meanSquaredError(y), got ${showValue(loss)}`,
      );
    }
    if (this.#running) {
      throw new SgnError(
        `${this.name}.step: the previous step has not finished: await each step() before ` +
          "starting the next (steps of one optimizer run one after another)",
      );
    }
    this.#running = true;
    try {
      return await step();
    } finally {
      this.#running = false;
    }
  }
}
