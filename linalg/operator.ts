/**
 * Symmetric linear operators on flat vectors, the input of the spectral tools (linalg/spectra.ts),
 * and adapters from what the library makes: the Gauss-Newton matrix of a linearized model
 * ({@link ggnOperator}), the Hessian of a scalar function ({@link hessianOperator}), a dense
 * matrix ({@link matrixOperator}) and a damping shift A + rho I ({@link dampedOperator}).
 *
 * Symmetry is assumed, not checked: checking it would cost a dense matrix (n products), which is
 * what these tools exist to avoid. A non-symmetric operator gives Ritz values and traces that
 * mean nothing.
 *
 * @module
 */

import type { Backend } from "../kernel/backend.ts";

import { type DType, sizeOf } from "../kernel/shape.ts";

import { SgnError, showValue } from "../errors.ts";
import { scope, Tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { type GgnOperator, hvp } from "../autodiff/transforms.ts";
import { checkParams, concatFlat, splitFlat } from "../sgn/vectors.ts";

/**
 * A symmetric linear map on vectors of `dimension` elements of one dtype on one backend: what
 * {@link lanczos} and {@link hutchinson} take.
 */
export interface LinearOperator {
  /** The length n of the vectors it maps (the matrix is n x n). */
  readonly dimension: number;
  /** The element type of its vectors. */
  readonly dtype: DType;
  /** The backend its vectors live on. */
  readonly backend: Backend;
  /**
   * A v for a vector v of shape [dimension]: a new tensor of shape [dimension] that the caller
   * owns (v is left as it is).
   */
  apply(v: Tensor): Tensor;
}

/**
 * Throws an {@link SgnError} unless `op` looks like a {@link LinearOperator} (a positive integer
 * dimension, a backend with the dtype, an apply function); `who` names the caller.
 */
export function checkOperator(op: unknown, who: string): LinearOperator {
  const hint = "make one with ggnOperator, hessianOperator or matrixOperator";
  const l = op as Partial<LinearOperator> | null | undefined;
  if (typeof l !== "object" || l === null || typeof l.apply !== "function") {
    throw new SgnError(`${who}: the operator must have an apply(v) method, got ${showValue(op)}`);
  }
  if (!Number.isInteger(l.dimension) || l.dimension! < 1) {
    throw new SgnError(
      `${who}: the operator's dimension must be a positive integer, got ${showValue(l.dimension)}`,
    );
  }
  if (typeof l.backend !== "object" || !l.backend?.dtypes?.includes(l.dtype as DType)) {
    throw new SgnError(
      `${who}: the operator needs a backend that has its dtype (${showValue(l.dtype)}); ${hint}`,
    );
  }
  return l as LinearOperator;
}

/**
 * A v, checked: the operator must return a tensor of shape [dimension] and of its dtype. The
 * result belongs to the caller.
 */
export function applyChecked(op: LinearOperator, v: Tensor, who: string): Tensor {
  const out = op.apply(v);
  if (!(out instanceof Tensor)) {
    throw new SgnError(`${who}: the operator's apply returned ${showValue(out)}, not a tensor`);
  }
  if (out.shape.length !== 1 || out.shape[0] !== op.dimension || out.dtype !== op.dtype) {
    const shape = `[${out.shape.join(", ")}] ${out.dtype}`;
    out.dispose();
    throw new SgnError(
      `${who}: the operator's apply returned a tensor of shape ${shape}, expected ` +
        `[${op.dimension}] ${op.dtype}`,
    );
  }
  return out;
}

/**
 * The Gauss-Newton matrix G = J^T H_L J of a linearized model (see `ggnLinearize`) as an operator
 * on flat parameter vectors: each product splits the vector into the parameters' shapes, runs
 * one tangent and one cotangent sweep, and joins the result. `params` are the parameters `G` was
 * linearized at (for their shapes, dtype and backend); `G` stays the caller's to dispose.
 *
 * @example
 * ```ts
 * import { ggnLinearize, init, meanSquaredError, mlp, tensor } from "../mod.ts";
 * import { ggnOperator, lanczos } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const net = mlp({ inputs: 2, hidden: [3], outputs: 1 });
 * const params = net.init({ seed: 1 });
 * const x = tensor([[0, 1], [1, 0], [1, 1]]);
 * const G = ggnLinearize((...p) => net.forward(p, x), meanSquaredError(tensor([[1], [0], [1]])), params);
 * const { values } = await lanczos(ggnOperator(G, params), 5);
 * console.log(values.at(-1)); // the largest eigenvalue of G
 * G.dispose();
 * ```
 */
export function ggnOperator(G: GgnOperator, params: readonly Tensor[]): LinearOperator {
  if (typeof G?.apply !== "function") {
    throw new SgnError(
      `ggnOperator: expected what ggnLinearize returns, got ${showValue(G)}`,
    );
  }
  const list = checkParams([...params], "ggnOperator");
  const shapes = list.map((p) => [...p.shape]);
  return {
    dimension: shapes.reduce((s, sh) => s + sizeOf(sh), 0),
    dtype: list[0].dtype,
    backend: list[0].backend,
    apply: (v) => scope(() => concatFlat(G.apply(...splitFlat(v, shapes)))),
  };
}

/**
 * The Hessian of a scalar function `f` of the parameters `params`, as an operator on flat
 * parameter vectors: each product is one Hessian-vector product (forward over reverse, see
 * `hvp`), which reruns `f`. `params` must stay alive while the operator is used.
 *
 * @example
 * ```ts
 * import { hessianOperator, init, lanczos, ops, type Tensor, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * // f(x) = x0^2 + 3 x1^2 has the Hessian diag(2, 6).
 * const f = (x: Tensor) => ops.sum(ops.mul(ops.square(x), tensor([1, 3])));
 * const { values } = await lanczos(hessianOperator(f, [tensor([1, 1])]), 2);
 * console.log(values); // Float64Array [2, 6] (to float32 rounding)
 * ```
 */
export function hessianOperator(
  f: (...params: Tensor[]) => Tensor,
  params: readonly Tensor[],
): LinearOperator {
  if (typeof f !== "function") {
    throw new SgnError(
      `hessianOperator: the first argument must be a scalar function of the parameters, got ${
        showValue(f)
      }`,
    );
  }
  const list = checkParams([...params], "hessianOperator");
  const shapes = list.map((p) => [...p.shape]);
  return {
    dimension: shapes.reduce((s, sh) => s + sizeOf(sh), 0),
    dtype: list[0].dtype,
    backend: list[0].backend,
    apply: (v) => scope(() => concatFlat(hvp(f, list, splitFlat(v, shapes)))),
  };
}

/**
 * A dense symmetric n x n matrix (a tensor of shape [n, n]) as an operator: each product is one
 * matrix-vector product. For tests and small problems; its symmetry is not checked.
 *
 * @example
 * ```ts
 * import { hutchinson, init, matrixOperator, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const A = matrixOperator(tensor([[2, 0], [0, 3]]));
 * console.log((await hutchinson(A, 10)).estimate); // 5: every probe of a diagonal is exact
 * ```
 */
export function matrixOperator(matrix: Tensor): LinearOperator {
  if (!(matrix instanceof Tensor) || matrix.rank !== 2 || matrix.shape[0] !== matrix.shape[1]) {
    throw new SgnError(
      `matrixOperator: expected a square matrix (a tensor of shape [n, n]), got ${
        matrix instanceof Tensor ? `shape [${matrix.shape.join(", ")}]` : showValue(matrix)
      }`,
    );
  }
  const n = matrix.shape[0];
  return {
    dimension: n,
    dtype: matrix.dtype,
    backend: matrix.backend,
    apply: (v) => scope(() => o.reshape(o.matmul(matrix, o.reshape(v, [n, 1])), [n])),
  };
}

/**
 * The operator A + rho I: the damped system that SGN's conjugate gradient solves is
 * `dampedOperator(ggnOperator(G, params), rho)`. Its eigenvalues are A's shifted by rho.
 *
 * @example
 * ```ts
 * import { dampedOperator, init, lanczos, matrixOperator, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const a = tensor([[1, 0], [0, 4]], undefined, { dtype: "float64" });
 * const A = dampedOperator(matrixOperator(a), 0.5);
 * console.log((await lanczos(A, 2)).values); // Float64Array [1.5, 4.5] (to rounding)
 * ```
 */
export function dampedOperator(op: LinearOperator, rho: number): LinearOperator {
  const inner = checkOperator(op, "dampedOperator");
  if (typeof rho !== "number" || !Number.isFinite(rho)) {
    throw new SgnError(`dampedOperator: rho must be a finite number, got ${showValue(rho)}`);
  }
  return {
    dimension: inner.dimension,
    dtype: inner.dtype,
    backend: inner.backend,
    apply: (v) =>
      scope(() => {
        const av = applyChecked(inner, v, "dampedOperator");
        return rho === 0 ? av : o.add(av, o.mul(v, rho));
      }),
  };
}
