/**
 * The curvature operators SGN's conjugate gradient multiplies by, each recorded once at the
 * parameters and applied many times without rerunning the forward pass: {@link ggnLinearize}
 * (the generalized Gauss-Newton matrix J^T H_L J, with the loss's closed-form output Hessian),
 * {@link hessianLinearize} (the Hessian, forward over reverse) and {@link fisherLinearize} (the
 * empirical Fisher of the per-example losses); {@link ggnvp} for a single product; and
 * {@link OutputLoss}, what a loss supplies for them.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";
import { scope, type Tensor } from "./tensor.ts";
import * as o from "./ops.ts";
import { checkMatch, grad, record, vjp } from "./linearize.ts";

/** A loss on model outputs that supplies its output-space Hessian product in closed form. */
export interface OutputLoss {
  /** The scalar loss of outputs z (averaged over the batch). */
  value(z: Tensor): Tensor;
  /** H_L u = (d^2 L / dz^2) u at z. */
  hessianProduct(z: Tensor, u: Tensor): Tensor;
  /**
   * Optionally, the per-example losses l(z) of the N rows of z, a vector [N] whose mean is
   * `value(z)`: what the empirical Fisher differentiates ({@link fisherLinearize}, SGN's
   * curvature "fisher").
   */
  perExample?(z: Tensor): Tensor;
  /**
   * Optionally, a scalar score of outputs z that optimizers report with each step, computed on
   * outputs they evaluate anyway (softmax cross-entropy: the batch accuracy).
   */
  metric?(z: Tensor): Tensor;
}

/**
 * A curvature matrix C of the loss at fixed parameters, as products: the generalized
 * Gauss-Newton matrix ({@link ggnLinearize}), the Hessian ({@link hessianLinearize}) or the
 * empirical Fisher ({@link fisherLinearize}), each with the model's Jacobian J beside it.
 */
export interface CurvatureOperator {
  /** The model outputs at the linearization point (freed by `dispose`). */
  outputs: Tensor;
  /** C v for v shaped like the parameters. */
  apply(...v: Tensor[]): Tensor[];
  /** J v: the model's tangent along parameter tangents v. */
  jvp(...v: Tensor[]): Tensor;
  /** J^T u: parameter cotangents of an output cotangent u (e.g. the gradient from dL/dz). */
  vjp(u: Tensor): Tensor[];
  /** Frees the recorded forward pass and the outputs. */
  dispose(): void;
}

/** A Gauss-Newton operator G v = J^T H_L J v at fixed parameters (see {@link ggnLinearize}). */
export type GgnOperator = CurvatureOperator;

/** Throws unless `model` is a function and `loss` an {@link OutputLoss} with `needs`. */
function checkCurvatureArgs(
  model: unknown,
  loss: unknown,
  needs: "hessianProduct" | "perExample" | "value",
  what: string,
): void {
  if (typeof model !== "function") {
    throw new SgnError(
      `${what}: the model must be a function of the parameters, got ${showValue(model)}`,
    );
  }
  const l = loss as Partial<OutputLoss> | null | undefined;
  if (typeof l?.value !== "function") {
    throw new SgnError(
      `${what}: the loss must be an output loss such as softmaxCrossEntropy(y) or ` +
        `meanSquaredError(y), got ${showValue(loss)}`,
    );
  }
  if (typeof l[needs] !== "function") {
    throw new SgnError(
      needs === "perExample"
        ? `${what}: the loss has no perExample(z), the per-example losses [N] (whose mean is ` +
          "its value) that the empirical Fisher differentiates; softmaxCrossEntropy and " +
          "meanSquaredError have one, or give your loss one (or use the ggn or hessian curvature)"
        : `${what}: the loss has no ${needs}(z, u) (softmaxCrossEntropy and meanSquaredError ` +
          "have one)",
    );
  }
}

/**
 * Linearizes `model` at `params` once and returns the generalized Gauss-Newton operator
 * G v = J^T (H_L (J v)): each application runs one tangent sweep, the loss's closed-form output
 * Hessian product, and one cotangent sweep, never the forward pass.
 *
 * @example
 * ```ts
 * import { ggnLinearize, init, ops, type Tensor, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const x = tensor([[1, 2]]);
 * // Squared error sum(z^2): its output Hessian is 2 I.
 * const loss = {
 *   value: (z: Tensor) => ops.sum(ops.square(z)),
 *   hessianProduct: (_z: Tensor, u: Tensor) => ops.mul(u, 2),
 * };
 * const G = ggnLinearize((w) => ops.matmul(x, w), loss, [tensor([[1], [1]])]);
 * const [gv] = G.apply(tensor([[1], [0]]));
 * G.dispose();
 * ```
 */
export function ggnLinearize(
  model: (...params: Tensor[]) => Tensor,
  loss: OutputLoss,
  params: Tensor[],
): GgnOperator {
  checkCurvatureArgs(model, loss, "hessianProduct", "ggnLinearize");
  const { lin, owned } = record(model, params);
  const [z] = lin.outputs;
  return {
    outputs: z,
    apply: (...v) =>
      scope(() => {
        const [jv] = lin.jvp(...v);
        return lin.vjp(loss.hessianProduct(z, jv));
      }),
    jvp: (...v) => lin.jvp(...v)[0],
    vjp: (u) => lin.vjp(u),
    dispose: () => {
      lin.dispose();
      for (const t of owned) t.dispose();
    },
  };
}

/**
 * The empirical Fisher F v = (1/N) J_l^T (J_l v) on a linearization of the model that the caller
 * keeps (`base`: its outputs z and its J v and J^T u; `dispose()` frees only what this adds).
 * J_l = D l(z) J is the Jacobian of the N per-example losses: D l(z) is linearized once here, so
 * each product is one tangent sweep of the model and of l, and one cotangent sweep of each (no
 * per-example gradients).
 */
export function fisherOf(base: CurvatureOperator, loss: OutputLoss): CurvatureOperator {
  checkCurvatureArgs(() => base.outputs, loss, "perExample", "fisherLinearize");
  const z = base.outputs;
  const n = z.shape[0];
  const { lin: dl, owned } = record((y) => loss.perExample!(y), [z]);
  const [l] = dl.outputs;
  if (l.rank !== 1 || l.shape[0] !== n) {
    dl.dispose();
    for (const t of owned) t.dispose();
    throw new SgnError(
      `fisherLinearize: the loss's perExample(z) has shape [${l.shape.join(", ")}]; it must ` +
        `be [${n}], one loss per row of the outputs [${z.shape.join(", ")}]`,
    );
  }
  return {
    outputs: z,
    apply: (...v) =>
      scope(() => {
        const [dlJv] = dl.jvp(base.jvp(...v));
        const [u] = dl.vjp(o.mul(dlJv, 1 / n));
        return base.vjp(u);
      }),
    jvp: base.jvp,
    vjp: base.vjp,
    dispose: () => {
      dl.dispose();
      for (const t of owned) t.dispose();
    },
  };
}

/**
 * Linearizes `model` at `params` once and returns the empirical Fisher operator
 * F v = (1/N) J_l^T (J_l v), J_l the Jacobian of the N per-example losses l_i = `loss.perExample`
 * with respect to the parameters, so F = (1/N) sum_i g_i g_i^T with g_i the gradient of l_i.
 * Each product runs one tangent and one cotangent sweep (no forward pass, no per-example
 * gradients). The loss needs `perExample` (softmaxCrossEntropy and meanSquaredError have it).
 *
 * @example
 * ```ts
 * import { fisherLinearize, init, meanSquaredError, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const x = tensor([[1], [2]]);
 * const loss = meanSquaredError(tensor([[0], [0]]));
 * // l_i = (x_i w)^2, g_i = 2 x_i^2 w: F = (1/2) (2^2 + 8^2) = 34 at w = 1.
 * const F = fisherLinearize((w) => ops.matmul(x, w), loss, [tensor([[1]])]);
 * const [fv] = F.apply(tensor([[1]]));
 * console.log(await fv.data()); // [34]
 * F.dispose();
 * ```
 */
export function fisherLinearize(
  model: (...params: Tensor[]) => Tensor,
  loss: OutputLoss,
  params: Tensor[],
): CurvatureOperator {
  checkCurvatureArgs(model, loss, "perExample", "fisherLinearize");
  const { lin, owned } = record(model, params);
  const [z] = lin.outputs;
  const base: CurvatureOperator = {
    outputs: z,
    apply: () => {
      throw new SgnError("fisherLinearize: internal: the base has no curvature");
    },
    jvp: (...v) => lin.jvp(...v)[0],
    vjp: (u) => lin.vjp(u),
    dispose: () => {
      lin.dispose();
      for (const t of owned) t.dispose();
    },
  };
  let fisher: CurvatureOperator;
  try {
    fisher = fisherOf(base, loss);
  } catch (e) {
    base.dispose();
    throw e;
  }
  return {
    ...fisher,
    dispose: () => {
      fisher.dispose();
      base.dispose();
    },
  };
}

/**
 * Linearizes the gradient of the loss at `params` once and returns the Hessian operator
 * H v = d/de grad L(params + e v) (forward over reverse, as {@link hvp}, but the forward and
 * backward passes are recorded once: each product is one tangent sweep through both). The
 * Hessian is indefinite away from a minimum; SGN's curvature "hessian" stops CG at negative
 * curvature.
 *
 * @example
 * ```ts
 * import { hessianLinearize, init, meanSquaredError, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const loss = meanSquaredError(tensor([[0]]));
 * // L(w) = (w^3)^2 = w^6: L'' = 30 w^4 = 30 at w = 1.
 * const H = hessianLinearize((w) => ops.mul(ops.square(w), w), loss, [tensor([[1]])]);
 * const [hv] = H.apply(tensor([[1]]));
 * console.log(await hv.data()); // [30]
 * H.dispose();
 * ```
 */
export function hessianLinearize(
  model: (...params: Tensor[]) => Tensor,
  loss: OutputLoss,
  params: Tensor[],
): CurvatureOperator {
  checkCurvatureArgs(model, loss, "value", "hessianLinearize");
  // The outputs z and the gradient J^T dL/dz, recorded together on one tape: z's node serves
  // J v and J^T u, the gradient's nodes H v.
  const { lin, owned, trace, nodes } = record((...p) => {
    const [[z], pullback] = vjp(model, p);
    try {
      const [gz] = grad((y) => loss.value(y))(z);
      return [z, ...pullback(gz)];
    } finally {
      pullback.dispose();
    }
  }, params);
  const [z] = lin.outputs;
  let disposed = false;
  const alive = (what: string) => {
    if (disposed) throw new SgnError(`${what}: this linearization was already disposed`);
  };
  return {
    outputs: z,
    apply: (...v) => {
      alive("hessianLinearize.apply");
      checkMatch(params, v, "hessianLinearize.apply");
      return scope(() =>
        trace.forward(v, nodes.slice(1)).map((t, i) => t ?? o.zerosLike(params[i]))
      );
    },
    jvp: (...v) => {
      alive("hessianLinearize.jvp");
      checkMatch(params, v, "hessianLinearize.jvp");
      return scope(() => trace.forward(v, [nodes[0]])[0] ?? o.zerosLike(z));
    },
    vjp: (u) => {
      alive("hessianLinearize.vjp");
      checkMatch([z], [u], "hessianLinearize.vjp");
      return scope(() =>
        trace.backward([u], [nodes[0]]).map((g, i) => g ?? o.zerosLike(params[i]))
      );
    },
    dispose: () => {
      disposed = true;
      lin.dispose();
      for (const t of owned) t.dispose();
    },
  };
}

/**
 * One Gauss-Newton-vector product G v = J^T H_L J v of `model` at `params` (forward pass
 * included). For many products at the same parameters use {@link ggnLinearize}.
 */
export function ggnvp(
  model: (...params: Tensor[]) => Tensor,
  loss: OutputLoss,
  params: Tensor[],
  v: Tensor[],
): Tensor[] {
  const op = ggnLinearize(model, loss, params);
  try {
    return op.apply(...v);
  } finally {
    op.dispose();
  }
}
