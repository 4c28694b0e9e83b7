/**
 * Diagnostics of the curvature an SGN step sees: the top eigenvalue of the Gauss-Newton matrix G
 * of a mini-batch (Lanczos), its trace (Hutchinson), and the condition number of the damped
 * system G + rho I that conjugate gradient solves. What `train({ diagnose })` and
 * `cli.ts train --diagnose` record.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";
import type { Tensor } from "../autodiff/tensor.ts";
import { ggnLinearize, type OutputLoss } from "../autodiff/transforms.ts";
import { ggnOperator } from "./operator.ts";
import { hutchinson, lanczos } from "./spectra.ts";

/** Options of {@link ggnDiagnostics}. */
export interface CurvatureOptions {
  /** Lanczos steps for the extreme eigenvalues; default 20. */
  lanczosSteps?: number;
  /** Hutchinson probes for the trace; default 10. */
  probes?: number;
  /** Seed of the Lanczos start and the probes; default 1. */
  seed?: number;
}

/** The curvature of one mini-batch at one point (see {@link ggnDiagnostics}). */
export interface CurvatureDiagnostics {
  /** The largest eigenvalue of G: Lanczos's largest Ritz value (a lower bound, converging fast). */
  topEigenvalue: number;
  /**
   * The smallest eigenvalue of G: exactly 0 when G is singular by its shape (`singular`), else
   * Lanczos's smallest Ritz value, at least 0 (an upper bound: the bottom of the spectrum
   * converges more slowly than the top).
   */
  bottomEigenvalue: number;
  /**
   * Whether G = J^T H_L J is singular because the model has fewer outputs on the batch than
   * parameters (rank G <= rank J <= outputs): then its smallest eigenvalue is 0.
   */
  singular: boolean;
  /** Hutchinson's estimate of trace G. */
  trace: number;
  /** Its standard error (NaN with one probe). */
  traceStdError: number;
  /** Lanczos steps taken (fewer than asked when the Krylov space became invariant). */
  lanczosSteps: number;
}

/** Throws unless `n` is undefined or an integer >= 1. */
function count(n: unknown, what: string): void {
  if (n !== undefined && (typeof n !== "number" || !Number.isInteger(n) || n < 1)) {
    throw new SgnError(`ggnDiagnostics: ${what} must be a positive integer, got ${showValue(n)}`);
  }
}

/**
 * The curvature diagnostics of the Gauss-Newton matrix G of `model` under `loss` at `params` (one
 * forward pass, then `lanczosSteps + probes` products G v): its top and bottom eigenvalues and
 * its trace. The parameters are read, never changed.
 *
 * @example
 * ```ts
 * import { ggnDiagnostics, init, meanSquaredError, mlp, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const net = mlp({ inputs: 1, hidden: [4], outputs: 1 });
 * const params = net.init({ seed: 1 });
 * const x = tensor([[0], [0.5], [1]]);
 * const d = await ggnDiagnostics((...p) => net.forward(p, x), meanSquaredError(tensor([[0], [1], [0]])), params);
 * console.log(d.topEigenvalue, d.trace, d.singular); // 13 parameters, 3 outputs: singular
 * ```
 */
export async function ggnDiagnostics(
  model: (...params: Tensor[]) => Tensor,
  loss: OutputLoss,
  params: readonly Tensor[],
  options: CurvatureOptions = {},
): Promise<CurvatureDiagnostics> {
  count(options.lanczosSteps, "lanczosSteps");
  count(options.probes, "probes");
  const seed = options.seed ?? 1;
  if (!Number.isSafeInteger(seed)) {
    throw new SgnError(`ggnDiagnostics: seed must be an integer, got ${showValue(seed)}`);
  }
  const G = ggnLinearize(model, loss, [...params]);
  try {
    const op = ggnOperator(G, params);
    // Distinct streams for the start vector and the probes.
    const top = await lanczos(op, options.lanczosSteps ?? 20, { seed: 2 * seed });
    const tr = await hutchinson(op, options.probes ?? 10, { seed: 2 * seed + 1 });
    const singular = G.outputs.size < op.dimension;
    return {
      topEigenvalue: top.values[top.steps - 1],
      bottomEigenvalue: singular ? 0 : Math.max(0, top.values[0]),
      singular,
      trace: tr.estimate,
      traceStdError: tr.stdError,
      lanczosSteps: top.steps,
    };
  } finally {
    G.dispose();
  }
}

/**
 * The condition number (top + rho) / (bottom + rho) of the damped system G + rho I; Infinity
 * when bottom + rho is not positive (an undamped singular G).
 *
 * @example
 * ```ts
 * import { dampedCondition } from "../mod.ts";
 * console.log(dampedCondition(10, 0, 1e-3)); // 10001
 * ```
 */
export function dampedCondition(top: number, bottom: number, rho: number): number {
  const low = bottom + rho;
  return low > 0 ? (top + rho) / low : Infinity;
}
