/**
 * The spectrum of a symmetric operator from its products alone: extreme eigenvalues by Lanczos
 * ({@link lanczos}), the trace by Hutchinson's estimator ({@link hutchinson}), and a spectral
 * density by stochastic Lanczos quadrature ({@link stochasticLanczosQuadrature},
 * {@link spectralDensity}; Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019).
 *
 * Where the work is done: each product A v runs on the operator's backend (a G v costs about two
 * gradients); everything else runs on the host in float64. Lanczos keeps its k basis vectors on
 * the host (k x n x 8 bytes: 20 steps on 100,000 parameters are 16 MB) and reads every product
 * back (one readback per step: on WebGPU about 11 ms each); Hutchinson reduces each probe to
 * z^T A z on the device and reads all of them back at once.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";
import { scope, type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { Random } from "../random.ts";
import { concatFlat } from "../sgn/vectors.ts";
import { applyChecked, checkOperator, type LinearOperator } from "./operator.ts";
import { tridiagonalEigen } from "./tridiagonal.ts";

/** Options of {@link lanczos}. */
export interface LanczosOptions {
  /** Seed of the random start vector (standard normal entries); default 1. */
  seed?: number;
  /** The start vector instead (length `dimension`, not zero); it is normalized. */
  start?: ArrayLike<number>;
  /** Also return the Ritz vectors (k x n float64 values on the host); default false. */
  vectors?: boolean;
  /**
   * Breakdown threshold: Lanczos stops when the next residual's norm is below this times the
   * largest |alpha| + beta seen (an invariant subspace: its Ritz values are exact eigenvalues).
   * Default 1e-10 for float64 operators, 1e-4 for float32 ones, whose products are only that
   * accurate.
   */
  breakdownTol?: number;
}

/** What {@link lanczos} found. */
export interface LanczosResult {
  /** The Ritz values: the eigenvalues of the tridiagonal T, ascending. */
  values: Float64Array;
  /**
   * The squared first components of T's unit eigenvectors, in the order of `values`: the Gauss
   * quadrature weights of the start vector q (sum 1), so that q^T f(A) q ~ sum w_i f(values_i),
   * exactly for polynomials f of degree below 2 * steps.
   */
  weights: Float64Array;
  /**
   * |beta_k s_ki| for each Ritz pair: the norm of A y - theta y of its Ritz vector y (in exact
   * arithmetic), a bound on the distance from theta to an eigenvalue of A.
   */
  residuals: Float64Array;
  /** T's diagonal, one per step. */
  alphas: Float64Array;
  /** T's off-diagonal (steps - 1 values). */
  betas: Float64Array;
  /** Steps taken: k, or fewer when k exceeds the dimension or Lanczos broke down. */
  steps: number;
  /** Whether it stopped early because the Krylov space became invariant (beta ~ 0). */
  breakdown: boolean;
  /** The unit Ritz vectors in the order of `values`, when `options.vectors` was set. */
  vectors?: Float64Array[];
}

/** Throws unless `n` is an integer >= 1. */
function checkCount(n: unknown, what: string, hint: string): number {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
    throw new SgnError(`${what} must be a positive integer, got ${showValue(n)}; ${hint}`);
  }
  return n;
}

/** Throws unless `seed` is undefined or an integer. */
function checkSeed(seed: unknown, who: string): number {
  if (seed === undefined) return 1;
  if (typeof seed !== "number" || !Number.isSafeInteger(seed)) {
    throw new SgnError(`${who}: seed must be an integer, got ${showValue(seed)}`);
  }
  return seed;
}

/** The host vector as a tensor on the operator's backend and dtype. */
function upload(op: LinearOperator, v: Float64Array): Tensor {
  return tensor(v, [op.dimension], { backend: op.backend, dtype: op.dtype });
}

/** A q on the host in float64: one product and one readback. */
async function applyHost(op: LinearOperator, q: Float64Array, who: string): Promise<Float64Array> {
  const v = upload(op, q);
  let w: Tensor | undefined;
  try {
    w = applyChecked(op, v, who);
    return Float64Array.from(await w.data());
  } finally {
    v.dispose();
    w?.dispose();
  }
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** w -= c q. */
function subtract(w: Float64Array, c: number, q: Float64Array): void {
  for (let i = 0; i < w.length; i++) w[i] -= c * q[i];
}

/** A vector of `n` random signs (Rademacher), from the top bit of each draw. */
function rademacher(rng: Random, n: number): Float64Array {
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) z[i] = rng.nextU32() >>> 31 ? 1 : -1;
  return z;
}

/**
 * k steps of the Lanczos process on a symmetric operator, with full reorthogonalization (each new
 * vector made orthogonal to all earlier ones, twice: classical Gram-Schmidt, "twice is enough"),
 * from a seeded random start or a given one. Returns the Ritz values (ascending: the extreme ones
 * converge first, to the extreme eigenvalues of A), the tridiagonal T (alphas, betas), the Gauss
 * quadrature weights of the start vector and, optionally, the Ritz vectors. Stops early when the
 * Krylov space is invariant (`breakdown`), and after `dimension` steps when k is larger.
 *
 * Errors (an {@link SgnError}): k < 1, a start vector of the wrong length or zero, an operator
 * whose products are not finite or not of its shape. That the operator is symmetric is assumed
 * (it cannot be checked without n products).
 *
 * @example
 * ```ts
 * import { init, lanczos, matrixOperator, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const A = matrixOperator(tensor([[2, 1, 0], [1, 2, 1], [0, 1, 2]], undefined, { dtype: "float64" }));
 * const { values, steps } = await lanczos(A, 3);
 * console.log(values, steps); // 2 - sqrt(2), 2, 2 + sqrt(2); 3 steps
 * ```
 */
export async function lanczos(
  operator: LinearOperator,
  k: number,
  options: LanczosOptions = {},
): Promise<LanczosResult> {
  const op = checkOperator(operator, "lanczos");
  checkCount(k, "lanczos: the number of steps k", "ask for the few extreme eigenvalues, e.g. 20");
  const n = op.dimension;
  const tol = options.breakdownTol ?? (op.dtype === "float64" ? 1e-10 : 1e-4);
  if (typeof tol !== "number" || !(tol >= 0)) {
    throw new SgnError(`lanczos: breakdownTol must be a number >= 0, got ${showValue(tol)}`);
  }
  let q: Float64Array;
  if (options.start !== undefined) {
    if (options.start?.length !== n) {
      throw new SgnError(
        `lanczos: the start vector has ${
          options.start?.length ?? showValue(options.start)
        } entries, the operator's dimension is ${n}`,
      );
    }
    q = Float64Array.from(options.start);
  } else {
    const rng = new Random(checkSeed(options.seed, "lanczos"));
    q = rng.array(n, (r) => r.normal());
  }
  const norm0 = Math.sqrt(dot(q, q));
  if (!(norm0 > 0 && Number.isFinite(norm0))) {
    throw new SgnError(`lanczos: the start vector must be finite and not zero (norm ${norm0})`);
  }
  for (let i = 0; i < n; i++) q[i] /= norm0;

  const steps = Math.min(k, n);
  const basis: Float64Array[] = [];
  const alphas: number[] = [];
  const betas: number[] = [];
  let scale = 0;
  let last = 0;
  let breakdown = false;
  for (let j = 0; j < steps; j++) {
    basis.push(q);
    const w = await applyHost(op, q, "lanczos");
    const alpha = dot(q, w);
    if (!Number.isFinite(alpha)) {
      throw new SgnError(
        `lanczos: step ${j + 1} gave q^T A q = ${alpha}: the operator's products are not finite`,
      );
    }
    alphas.push(alpha);
    // Full reorthogonalization against every basis vector (q_j and q_{j-1} included, which
    // removes alpha q_j and beta q_{j-1}), twice.
    for (let pass = 0; pass < 2; pass++) {
      for (const b of basis) subtract(w, dot(b, w), b);
    }
    const beta = Math.sqrt(dot(w, w));
    scale = Math.max(scale, Math.abs(alpha) + beta + (betas.at(-1) ?? 0));
    last = beta;
    if (j === steps - 1) break;
    if (beta <= tol * scale) {
      breakdown = true;
      break;
    }
    betas.push(beta);
    q = w;
    for (let i = 0; i < n; i++) q[i] /= beta;
  }

  const m = alphas.length;
  const eig = tridiagonalEigen(alphas, betas);
  const weights = new Float64Array(m);
  const residuals = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    weights[i] = eig.vectors[i] ** 2;
    residuals[i] = Math.abs(last * eig.vectors[(m - 1) * m + i]);
  }
  const result: LanczosResult = {
    values: eig.values,
    weights,
    residuals,
    alphas: Float64Array.from(alphas),
    betas: Float64Array.from(betas),
    steps: m,
    breakdown,
  };
  if (options.vectors) {
    result.vectors = Array.from({ length: m }, (_, i) => {
      const y = new Float64Array(n);
      for (let r = 0; r < m; r++) {
        const c = eig.vectors[r * m + i];
        const b = basis[r];
        for (let t = 0; t < n; t++) y[t] += c * b[t];
      }
      return y;
    });
  }
  return result;
}

/** Options of {@link hutchinson}. */
export interface HutchinsonOptions {
  /** Seed of the Rademacher probes; default 1. */
  seed?: number;
}

/** What {@link hutchinson} found. */
export interface HutchinsonResult {
  /** The trace estimate: the mean of z^T A z over the probes. */
  estimate: number;
  /**
   * Its standard error: the probes' sample standard deviation over sqrt(samples); NaN for one
   * probe. (Rademacher probes have variance 2 * sum_{i != j} A_ij^2, so a diagonal operator's
   * trace is exact and its standard error 0.)
   */
  stdError: number;
  /** z^T A z of each probe. */
  values: Float64Array;
}

/**
 * Hutchinson's trace estimator: the mean of z^T A z over `samples` random sign vectors z (seeded
 * Rademacher probes, from random.ts), with its standard error. Each probe costs one product; the
 * z^T A z are formed on the device and read back together.
 *
 * Errors (an {@link SgnError}): samples < 1, an operator that is not one.
 *
 * @example
 * ```ts
 * import { hutchinson, init, matrixOperator, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const A = matrixOperator(tensor([[4, 1], [1, 2]], undefined, { dtype: "float64" }));
 * const { estimate, stdError } = await hutchinson(A, 100, { seed: 3 });
 * console.log(estimate, stdError); // 6 +- about 0.2 (the exact variance is 2 * (1 + 1) / 100)
 * ```
 */
export async function hutchinson(
  operator: LinearOperator,
  samples: number,
  options: HutchinsonOptions = {},
): Promise<HutchinsonResult> {
  const op = checkOperator(operator, "hutchinson");
  checkCount(samples, "hutchinson: samples", "a few tens of probes give a trace to a few percent");
  const rng = new Random(checkSeed(options.seed, "hutchinson"));
  const quads: Tensor[] = [];
  let values: Float64Array;
  try {
    for (let s = 0; s < samples; s++) {
      const z = upload(op, rademacher(rng, op.dimension));
      try {
        // Computed now, so that the product's buffer is freed before the next probe.
        quads.push(scope(() => o.dot(z, applyChecked(op, z, "hutchinson")).realize()));
      } finally {
        z.dispose();
      }
    }
    const all = concatFlat(quads);
    try {
      values = Float64Array.from(await all.data());
    } finally {
      all.dispose();
    }
  } finally {
    for (const t of quads) t.dispose();
  }
  const estimate = values.reduce((a, b) => a + b, 0) / samples;
  let ss = 0;
  for (const v of values) ss += (v - estimate) ** 2;
  const stdError = samples > 1 ? Math.sqrt(ss / (samples - 1) / samples) : NaN;
  return { estimate, stdError, values };
}

/** Options of {@link stochasticLanczosQuadrature}. */
export interface QuadratureOptions {
  /** Random start vectors (Rademacher, normalized), each one Lanczos run; default 4. */
  probes?: number;
  /** Lanczos steps per probe (nodes per probe); default 20. */
  steps?: number;
  /** Seed of the probes; default 1. */
  seed?: number;
}

/** Nodes and weights of stochastic Lanczos quadrature, one set per probe. */
export interface SpectralQuadrature {
  /** The Ritz values of each probe's Lanczos run, ascending. */
  nodes: Float64Array[];
  /** Their Gauss quadrature weights (each probe's sum to 1). */
  weights: Float64Array[];
}

/**
 * Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017, Algorithm 1; used for neural-network
 * Hessians by Ghorbani, Krishnan & Xiao 2019): for each of `probes` random unit start vectors v,
 * `steps` steps of {@link lanczos} give nodes (Ritz values) and weights (squared first
 * components of T's eigenvectors), the Gauss quadrature of the measure v^T delta(t - A) v. Their
 * mean over the probes estimates the spectral density (1/n) sum_i delta(t - lambda_i); draw it
 * with {@link spectralDensity}. Each probe costs `steps` products.
 *
 * @example
 * ```ts
 * import { init, matrixOperator, spectralDensity, stochasticLanczosQuadrature, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const A = matrixOperator(tensor([[1, 0, 0], [0, 1, 0], [0, 0, 5]], undefined, { dtype: "float64" }));
 * const q = await stochasticLanczosQuadrature(A, { probes: 2, steps: 3 });
 * const { grid, density } = spectralDensity(q, { sigma: 0.1 });
 * // two peaks: about 2/3 of the mass at 1, 1/3 at 5
 * ```
 */
export async function stochasticLanczosQuadrature(
  operator: LinearOperator,
  options: QuadratureOptions = {},
): Promise<SpectralQuadrature> {
  const op = checkOperator(operator, "stochasticLanczosQuadrature");
  const probes = checkCount(
    options.probes ?? 4,
    "stochasticLanczosQuadrature: probes",
    "a few probes suffice for a density",
  );
  const steps = checkCount(
    options.steps ?? 20,
    "stochasticLanczosQuadrature: steps",
    "take a few tens of Lanczos steps",
  );
  const rng = new Random(checkSeed(options.seed, "stochasticLanczosQuadrature"));
  const nodes: Float64Array[] = [];
  const weights: Float64Array[] = [];
  for (let p = 0; p < probes; p++) {
    const run = await lanczos(op, steps, { start: rademacher(rng, op.dimension) });
    nodes.push(run.values);
    weights.push(run.weights);
  }
  return { nodes, weights };
}

/** Options of {@link spectralDensity}. */
export interface DensityOptions {
  /** Points of the grid; default 256. */
  points?: number;
  /** Width of the Gaussian around each node; default 1% of the nodes' range (or of |node|). */
  sigma?: number;
  /** The grid's ends; default 5 sigma beyond the smallest and largest node. */
  range?: [number, number];
}

/**
 * The spectral density of a {@link stochasticLanczosQuadrature} on a grid, each node smoothed by
 * a Gaussian of width sigma: phi(t) = (1/probes) sum_probes sum_i w_i N(t; node_i, sigma^2). It
 * integrates to 1 over the real line (to the rounding of the weights), so over the default
 * grid up to the Gaussians' tails beyond 5 sigma.
 *
 * @example
 * ```ts
 * import { spectralDensity } from "../mod.ts";
 * const q = { nodes: [Float64Array.of(0, 1)], weights: [Float64Array.of(0.5, 0.5)] };
 * const { grid, density } = spectralDensity(q, { points: 101, sigma: 0.05, range: [-0.5, 1.5] });
 * console.log(grid[25], density[25]); // 0 and 0.5 / (0.05 sqrt(2 pi)) = 3.99
 * ```
 */
export function spectralDensity(
  quadrature: SpectralQuadrature,
  options: DensityOptions = {},
): { grid: Float64Array; density: Float64Array; sigma: number } {
  const { nodes, weights } = quadrature ?? {};
  if (
    !Array.isArray(nodes) || !Array.isArray(weights) || nodes.length === 0 ||
    nodes.length !== weights.length || nodes.some((n, i) => n?.length !== weights[i]?.length)
  ) {
    throw new SgnError(
      "spectralDensity: expected what stochasticLanczosQuadrature returns (nodes and weights, " +
        "one array of each per probe, of equal lengths)",
    );
  }
  const points = checkCount(options.points ?? 256, "spectralDensity: points", "e.g. 256");
  if (points < 2) throw new SgnError("spectralDensity: points must be at least 2, got 1");
  let lo = Infinity;
  let hi = -Infinity;
  for (const ns of nodes) {
    for (const t of ns) {
      if (!Number.isFinite(t)) throw new SgnError(`spectralDensity: a node is ${t}`);
      lo = Math.min(lo, t);
      hi = Math.max(hi, t);
    }
  }
  const sigma = options.sigma ?? 0.01 * (hi > lo ? hi - lo : Math.max(Math.abs(hi), 1));
  if (typeof sigma !== "number" || !(sigma > 0) || !Number.isFinite(sigma)) {
    throw new SgnError(`spectralDensity: sigma must be a positive number, got ${showValue(sigma)}`);
  }
  const [a, b] = options.range ?? [lo - 5 * sigma, hi + 5 * sigma];
  if (!(Number.isFinite(a) && Number.isFinite(b) && a < b)) {
    throw new SgnError(`spectralDensity: range must be two finite numbers, low < high`);
  }
  const grid = Float64Array.from({ length: points }, (_, i) => a + (b - a) * i / (points - 1));
  const density = new Float64Array(points);
  const norm = 1 / (nodes.length * sigma * Math.sqrt(2 * Math.PI));
  nodes.forEach((ns, p) => {
    ns.forEach((t, i) => {
      const w = weights[p][i] * norm;
      for (let g = 0; g < points; g++) {
        density[g] += w * Math.exp(-0.5 * ((grid[g] - t) / sigma) ** 2);
      }
    });
  });
  return { grid, density, sigma };
}
