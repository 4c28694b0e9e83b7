/**
 * The record of one SGN step: what `SGN.step` (sgn/sgn.ts) returns and `train` writes per step.
 *
 * @module
 */

import type { Curvature } from "./options.ts";

/** What one SGN step did (SGN-ALGORITHM.md step 6). */
export interface SgnStepRecord {
  /** L0: the mini-batch loss before the step. */
  loss: number;
  /** L1: the loss after the step (equal to loss when neither LS nor TR evaluated it). */
  lossAfter: number;
  /** The damping rho used in this step. */
  rho: number;
  /** The final step size a. */
  alpha: number;
  /** CG iterations run. */
  cgIters: number;
  /** max|r| after CG. */
  cgResidual: number;
  /** Loss evaluations of the line search (0 without LS and TR). */
  lsTries: number;
  /** Trust-region ratio (actual / predicted decrease), NaN when TR is off. */
  ratio: number;
  /** Device readbacks this step needed. */
  readbacks: number;
  /** The quadratic model's predicted change of the loss, 0.5 (r + g).d (SGN-ALGORITHM.md 5). */
  predicted: number;
  /** The Armijo threshold the accepted (or last) try was held to; NaN without line search. */
  armijoThreshold: number;
  /** The loss at each line-search try, in order (the first at ALPHA); empty without LS and TR. */
  lsLosses: number[];
  /** The damping the next step will use with the trust region (this step's rho without it). */
  nextRho: number;
  /**
   * The loss's metric (e.g. accuracy) where the seed's step scores its batch: at the parameters
   * of the last loss evaluation (the accepted step) with LS or TR, else before the step.
   * Undefined when the loss has no metric.
   */
  metric?: number;
  /** Whether CG started from cgWarmStart * the previous step's last CG iterate (not 0). */
  cgWarmStart: boolean;
  /** Whether Martens' relative-progress rule stopped CG (cgStop "relative"). */
  cgRelativeStop: boolean;
  /**
   * The CG iteration whose iterate d the step used: cgIters, or with cgBacktrack the iterate
   * backtracking chose.
   */
  cgIterate: number;
  /**
   * With cgBacktrack, the mini-batch loss at theta + d_i of each kept iterate backtracking
   * evaluated, from the last backwards; empty without.
   */
  cgBacktrackLosses: number[];
  /** The curvature CG multiplied by (the option `curvature`). */
  curvature: Curvature;
  /** The rows of the batch CG's products used (the option `curvatureBatch`). */
  curvatureRows: number;
  /** Whether CG stopped at negative curvature (only the "hessian" curvature can meet it). */
  negativeCurvature: boolean;
}
