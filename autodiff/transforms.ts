/**
 * Transformations in the style of JAX: {@link jvp}, {@link vjp}, {@link grad},
 * {@link valueAndGrad}, {@link hvp}, {@link linearize} and {@link ggnvp}, and the curvature
 * operators SGN's conjugate gradient multiplies by: {@link ggnLinearize} (Gauss-Newton),
 * {@link hessianLinearize} (the Hessian) and {@link fisherLinearize} (the empirical Fisher). They
 * nest to any depth (jvp of grad, grad of grad, jvp of jvp) because the derivative rules are
 * written with the same ops that users call. Forward mode and hvp are here; reverse mode by
 * recording is autodiff/linearize.ts, the curvature operators autodiff/curvature.ts, and this
 * module is their one entry point.
 *
 * Memory: temporaries created inside a transformation are disposed when it returns; only its
 * results survive, and they belong to the enclosing {@link scope} like any op's result. A
 * {@link linearize}d function keeps its forward pass until `dispose()`.
 *
 * @module
 */

import { nextLevel, withTrace } from "./core.ts";
import { JvpTrace, JvpTracer } from "./traces.ts";
import { scope, type Tensor } from "./tensor.ts";
import * as o from "./ops.ts";
import { asList, checkFn, checkMatch, grad, type TensorFn, together } from "./linearize.ts";

export {
  grad,
  type LinearFn,
  linearize,
  type Linearized,
  type TensorFn,
  valueAndGrad,
  vjp,
} from "./linearize.ts";
export {
  type CurvatureOperator,
  fisherLinearize,
  fisherOf,
  ggnLinearize,
  type GgnOperator,
  ggnvp,
  hessianLinearize,
  type OutputLoss,
} from "./curvature.ts";

/**
 * Forward mode: the outputs of `f` at `primals` and their directional derivatives along
 * `tangents` (one per primal).
 *
 * @example
 * ```ts
 * import { init, jvp, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const [[y], [dy]] = jvp((x) => ops.square(x), [tensor([3])], [tensor([1])]);
 * console.log(await dy.data()); // [6]
 * ```
 */
export function jvp(f: TensorFn, primals: Tensor[], tangents: Tensor[]): [Tensor[], Tensor[]] {
  checkFn(f, "jvp");
  checkMatch(primals, tangents, "jvp");
  return scope(() => {
    const trace = new JvpTrace(nextLevel());
    const ins = primals.map((p, i) => new JvpTracer(trace, p, tangents[i]));
    let outs: Tensor[];
    try {
      outs = asList(withTrace(trace, () => f(...ins)), "jvp");
    } finally {
      trace.active = false;
    }
    const ys: Tensor[] = [];
    const ts: Tensor[] = [];
    for (const out of outs) {
      if (trace.owns(out)) {
        ys.push(out.primal);
        ts.push(out.tangent);
      } else {
        ys.push(out);
        ts.push(o.zerosLike(out));
      }
    }
    together([...ys, ...ts]);
    return [ys, ts];
  });
}

/**
 * Hessian-vector product of a scalar-valued `f` at `x` along `v`, by forward-over-reverse (the
 * directional derivative of the gradient). One tensor per argument.
 *
 * @example
 * ```ts
 * import { hvp, init, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const [hv] = hvp((x) => ops.sum(ops.mul(ops.square(x), x)), [tensor([1, 2])], [tensor([1, 0])]);
 * console.log(await hv.data()); // 6 x v = [6, 0]
 * ```
 */
export function hvp(f: (...args: Tensor[]) => Tensor, x: Tensor[], v: Tensor[]): Tensor[] {
  const [grads, hv] = jvp((...args) => grad(f)(...args), x, v);
  for (const g of grads) g.dispose();
  return hv;
}
