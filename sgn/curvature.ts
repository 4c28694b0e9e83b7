/**
 * Which matrix an SGN step's CG multiplies by (the option `curvature`) and on which rows of the
 * batch (`curvatureBatch`): the Gauss-Newton matrix of the step's own forward pass, or an
 * operator linearized beside it.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";
import type { Tensor } from "../autodiff/tensor.ts";
import {
  type CurvatureOperator,
  fisherLinearize,
  fisherOf,
  ggnLinearize,
  hessianLinearize,
  type OutputLoss,
} from "../autodiff/transforms.ts";
import type { CurvatureBatch, ModelFn } from "./optimizer.ts";
import { type Curvature, curvatureRows, type ResolvedSgnOptions } from "./options.ts";

/** Each curvature's operator on a batch of its own (sgn/options.ts, `curvature`). */
const LINEARIZE = {
  ggn: ggnLinearize,
  hessian: hessianLinearize,
  fisher: fisherLinearize,
} as const satisfies Record<Curvature, unknown>;

/** A step's curvature operator, whether the step owns (and frees) it, and the rows it uses. */
export interface StepCurvature {
  op: CurvatureOperator;
  own: boolean;
  /** The rows of the batch its products use ... */
  rows: number;
  /** ... of the step's whole batch of this many rows. */
  batch: number;
}

/**
 * The curvature operator of an SGN step at `params` under the options `opt`: `G` itself (the
 * seed's), or built on `G` (the Fisher of the whole batch), or on the first `rows` rows of the
 * batch, or the Hessian; `own`: whether the step must free it.
 */
export function stepCurvature(
  opt: Pick<ResolvedSgnOptions, "curvature" | "curvatureBatch">,
  params: readonly Tensor[],
  G: CurvatureOperator,
  model: ModelFn,
  loss: OutputLoss,
  sub: CurvatureBatch | undefined,
): StepCurvature {
  const n = G.outputs.shape[0];
  if (opt.curvatureBatch !== 1 && typeof sub !== "function") {
    throw new SgnError(
      `SGN.step: the option curvatureBatch (${opt.curvatureBatch}) needs the step's third ` +
        "argument, (rows) => ({ model, loss }) on the batch's first rows (train() passes " +
        `it), got ${showValue(sub)}; or leave curvatureBatch at 1 (the whole batch)`,
    );
  }
  const rows = curvatureRows(opt.curvatureBatch, n);
  let part = { model, loss };
  if (rows < n) {
    part = sub!(rows);
    if (typeof part?.model !== "function" || typeof part?.loss?.value !== "function") {
      throw new SgnError(
        `SGN.step: the curvature batch (${rows} rows) must be { model, loss } as the step's ` +
          `own, got ${showValue(part)}`,
      );
    }
  }
  if (opt.curvature === "fisher" && typeof part.loss.perExample !== "function") {
    throw new SgnError(
      'SGN.step: the curvature "fisher" needs the loss\'s perExample(z), the per-example ' +
        "losses whose mean is its value (softmaxCrossEntropy and meanSquaredError have it); " +
        'this loss has none: give it one, or use the curvature "ggn" or "hessian"',
    );
  }
  // The whole batch: the Gauss-Newton matrix and the Fisher live on the step's own record.
  if (rows === n && opt.curvature !== "hessian") {
    return opt.curvature === "ggn"
      ? { op: G, own: false, rows, batch: n }
      : { op: fisherOf(G, loss), own: true, rows, batch: n };
  }
  const linearize = LINEARIZE[opt.curvature];
  const op = linearize(part.model, part.loss, [...params]);
  const got = op.outputs.shape[0];
  if (got !== rows) {
    op.dispose();
    throw new SgnError(
      `SGN.step: the curvature batch's model gives ${got} rows; ${rows} were asked for ` +
        `(curvatureBatch ${opt.curvatureBatch} of a batch of ${n})`,
    );
  }
  return { op, own: true, rows, batch: n };
}
