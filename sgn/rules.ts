/**
 * The host-side decisions of an SGN step (SGN-ALGORITHM.md step 5): the Armijo backtracking
 * line search and the trust-region update of rho. Plain functions of numbers, so that the rules
 * read as the spec states them and can be tested on their own.
 *
 * @module
 */

import type { ResolvedSgnOptions } from "./options.ts";

/** The loss (and the loss's metric) at one candidate step size. */
export interface Try {
  loss: number;
  metric?: number;
}

/** What the line search decided. */
export interface LineSearchResult {
  /** The step size taken. */
  alpha: number;
  /** The loss there. */
  loss: number;
  /** The metric there, when the loss has one. */
  metric?: number;
  /** The loss of every try, in order (the first at ALPHA). */
  losses: number[];
  /** The Armijo threshold the last try was held to (NaN without the line search). */
  threshold: number;
}

/**
 * Armijo's right-hand side at step size `a`: L0 + a C_LS (m.d) (Algorithm 3.1), or with the
 * initial ALPHA in place of `a` (the seed's variant, `armijo: "seed"`).
 */
export function armijoThreshold(
  opts: Pick<ResolvedSgnOptions, "armijo" | "alpha" | "cLs">,
  l0: number,
  a: number,
  md: number,
): number {
  return l0 + (opts.armijo === "seed" ? opts.alpha : a) * opts.cLs * md;
}

/**
 * Backtracking from ALPHA by RHO_LS until Armijo holds: the first try, then up to MAX_LS_ITERS
 * backtracks; when none is accepted the last is taken, as the seed does. Without the line search
 * (the trust region alone) only the first try is evaluated. `evaluate(i)` gives the loss at
 * ALPHA RHO_LS^i.
 */
export async function lineSearch(
  opts: Pick<
    ResolvedSgnOptions,
    "lineSearch" | "maxLsIters" | "alpha" | "rhoLs" | "armijo" | "cLs"
  >,
  l0: number,
  md: number,
  evaluate: (i: number) => Promise<Try>,
): Promise<LineSearchResult> {
  const losses: number[] = [];
  let last: Try = { loss: l0 };
  let a = opts.alpha;
  let threshold = NaN;
  for (let i = 0; i < (opts.lineSearch ? opts.maxLsIters + 1 : 1); i++) {
    a = opts.alpha * opts.rhoLs ** i;
    last = await evaluate(i);
    losses.push(last.loss);
    if (!opts.lineSearch) break;
    threshold = armijoThreshold(opts, l0, a, md);
    if (last.loss <= threshold) break;
  }
  return { alpha: a, loss: last.loss, metric: last.metric, losses, threshold };
}

/**
 * The trust region's rho for the next step (Nocedal and Wright, Algorithm 4.1): 1.5 rho when the
 * ratio of actual to predicted change is below 1/4, max(2/3 rho, DAMP_RHO_MIN) above 3/4, else
 * unchanged.
 */
export function nextTrustRegionRho(ratio: number, rho: number, dampRhoMin: number): number {
  if (ratio < 0.25) return 1.5 * rho;
  if (ratio > 0.75) return Math.max((2 / 3) * rho, dampRhoMin);
  return rho;
}
