/**
 * Losses on a model's outputs z (logits for classification, predictions for regression), each
 * with its output-space Hessian product in closed form for Gauss-Newton products, its per-example
 * losses (for the empirical Fisher), and accuracy. Both average over the batch as the seed does
 * (SGN-ALGORITHM.md, "Objects"): `value(z)` is the mean of `perExample(z)`.
 *
 * @module
 */

import { checkInt, SgnError, showValue } from "../errors.ts";

import { checkShape } from "../kernel/shape.ts";
import type { OutputLoss } from "../autodiff/transforms.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";

function checkTargets(z: Tensor, targets: Tensor, what: string): void {
  if (
    z.rank !== 2 || targets.rank !== 2 || z.shape[0] !== targets.shape[0] ||
    z.shape[1] !== targets.shape[1]
  ) {
    throw new SgnError(
      `${what}: outputs [${z.shape.join(", ")}] and targets [${targets.shape.join(", ")}] ` +
        "must both be [batch, outputs]",
    );
  }
}

/**
 * Softmax cross-entropy averaged over the batch, with targets as one-hot rows [N, C]
 * (see {@link oneHot}). H_L u = (s * u - s (s . u)) / N row by row, s = softmax(z). Its
 * `perExample` is -sum_c t_ic log s_ic for each row i, its `metric` the batch accuracy.
 *
 * @example
 * ```ts
 * import { init, oneHot, softmaxCrossEntropy, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const loss = softmaxCrossEntropy(oneHot([0, 2], 3));
 * const value = loss.value(tensor([[2, 0, 0], [0, 0, 1]]));
 * ```
 */
export function softmaxCrossEntropy(targets: Tensor): OutputLoss {
  return {
    value(z) {
      checkTargets(z, targets, "softmaxCrossEntropy");
      return o.div(o.neg(o.sum(o.mul(targets, o.logSoftmax(z)))), z.shape[0]);
    },
    hessianProduct(z, u) {
      checkTargets(z, targets, "softmaxCrossEntropy");
      const s = o.softmax(z);
      return o.mul(o.mul(s, o.sub(u, o.sum(o.mul(s, u), -1, true))), 1 / z.shape[0]);
    },
    perExample(z) {
      checkTargets(z, targets, "softmaxCrossEntropy");
      return o.neg(o.sum(o.mul(targets, o.logSoftmax(z)), -1));
    },
    metric: (z) => accuracy(z, targets),
  };
}

/**
 * Mean squared error over all N x D outputs. H_L u = 2 u / (N D); `perExample` is each row's
 * mean (1/D) sum_j (z_ij - t_ij)^2.
 *
 * @example
 * ```ts
 * import { init, meanSquaredError, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const loss = meanSquaredError(tensor([[1], [2]]));
 * const value = loss.value(tensor([[1.5], [2]])); // 0.125
 * ```
 */
export function meanSquaredError(targets: Tensor): OutputLoss {
  return {
    value(z) {
      checkTargets(z, targets, "meanSquaredError");
      return o.mean(o.square(o.sub(z, targets)));
    },
    hessianProduct(z, u) {
      checkTargets(z, targets, "meanSquaredError");
      return o.mul(u, 2 / z.size);
    },
    perExample(z) {
      checkTargets(z, targets, "meanSquaredError");
      return o.mean(o.square(o.sub(z, targets)), -1);
    },
  };
}

/** One-hot rows [labels.length, classes] on the default (or given) backend. */
export function oneHot(
  labels: ArrayLike<number>,
  classes: number,
  like?: { backend: Tensor["backend"]; dtype?: Tensor["dtype"] },
): Tensor {
  checkInt(classes, "oneHot: classes", 1);
  if (typeof labels !== "object" || labels === null || typeof labels.length !== "number") {
    throw new SgnError(
      `oneHot: labels must be an array of class indices, got ${showValue(labels)}`,
    );
  }
  const n = labels.length;
  checkShape([n, classes], "oneHot");
  const dtype = like?.dtype ?? "float32";
  const data = dtype === "float64" ? new Float64Array(n * classes) : new Float32Array(n * classes);
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= classes) {
      throw new SgnError(`oneHot: label ${y} at index ${i} is not an integer in [0, ${classes})`);
    }
    data[i * classes + y] = 1;
  }
  return tensor(data, [n, classes], { dtype, backend: like?.backend });
}

/** Fraction of rows whose largest output is at the one-hot target's class, as a scalar tensor. */
export function accuracy(z: Tensor, targets: Tensor): Tensor {
  checkTargets(z, targets, "accuracy");
  return o.mean(o.equal(o.argmax(z, -1), o.argmax(targets, -1)));
}
