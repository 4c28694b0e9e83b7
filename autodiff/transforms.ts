/**
 * Transformations in the style of JAX: {@link jvp}, {@link vjp}, {@link grad},
 * {@link valueAndGrad}, {@link hvp}, {@link linearize} and {@link ggnvp}, and the curvature
 * operators SGN's conjugate gradient multiplies by: {@link ggnLinearize} (Gauss-Newton),
 * {@link hessianLinearize} (the Hessian) and {@link fisherLinearize} (the empirical Fisher). They
 * nest to any depth (jvp of grad, grad of grad, jvp of jvp) because the derivative rules are
 * written with the same ops that users call.
 *
 * Memory: temporaries created inside a transformation are disposed when it returns; only its
 * results survive, and they belong to the enclosing {@link scope} like any op's result. A
 * {@link linearize}d function keeps its forward pass until `dispose()`.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";
import { nextLevel, withTrace } from "./core.ts";
import { JvpTrace, JvpTracer, TapeTrace } from "./traces.ts";
import { adopt, checkTensor, collect, scope, scopeDepth, Tensor } from "./tensor.ts";
import * as o from "./ops.ts";

/** A function of tensors returning a tensor or a list of tensors. */
export type TensorFn = (...args: Tensor[]) => Tensor | Tensor[];

function asList(out: Tensor | Tensor[], what: string): Tensor[] {
  const list = Array.isArray(out) ? out : [out];
  for (const t of list) {
    if (!(t instanceof Tensor)) throw new SgnError(`${what}: the function must return Tensors`);
  }
  return list;
}

/** Throws unless `f` is a function, naming the transformation. */
function checkFn(f: unknown, what: string): void {
  if (typeof f !== "function") {
    throw new SgnError(
      `${what}: the first argument must be a function of tensors, got ${showValue(f)}`,
    );
  }
}

/** Throws unless `list` is an array of Tensors (a transformation's primals or tangents). */
function checkTensors(list: unknown, what: string): asserts list is Tensor[] {
  if (!Array.isArray(list)) {
    throw new SgnError(`${what} must be an array of Tensors, got ${showValue(list)}`);
  }
  list.forEach((t, i) => checkTensor(t, `${what}[${i}]`));
}

function checkMatch(primals: Tensor[], tangents: Tensor[], what: string): void {
  checkTensors(primals, `${what}: the primals`);
  checkTensors(tangents, `${what}: the tangents`);
  if (primals.length !== tangents.length) {
    throw new SgnError(`${what}: ${primals.length} primals but ${tangents.length} tangents`);
  }
  primals.forEach((p, i) => {
    if (
      p.shape.length !== tangents[i].shape.length ||
      p.shape.some((d, j) => d !== tangents[i].shape[j])
    ) {
      throw new SgnError(
        `${what}: tangent ${i} has shape [${tangents[i].shape.join(", ")}] ` +
          `but its primal has [${p.shape.join(", ")}]`,
      );
    }
  });
}

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
    return [ys, ts];
  });
}

/** A linear map from cotangents to cotangents (or tangents to tangents) that owns memory. */
export interface LinearFn {
  (...vectors: Tensor[]): Tensor[];
  /** Frees the forward-pass values the map holds. */
  dispose(): void;
}

/** The result of {@link linearize}. */
export interface Linearized {
  /**
   * The outputs of the function at the linearization point. They belong to the caller (to the
   * enclosing scope, if any), not to the record: keep them alive as long as `jvp` and `vjp` are
   * used (some derivative rules read them).
   */
  outputs: Tensor[];
  /** J v: tangents of the inputs to tangents of the outputs (no forward pass rerun). */
  jvp: (...tangents: Tensor[]) => Tensor[];
  /** J^T u: cotangents of the outputs to cotangents of the inputs. */
  vjp: (...cotangents: Tensor[]) => Tensor[];
  /** Frees the recorded forward pass (the outputs stay with the caller). */
  dispose(): void;
}

/**
 * Runs `f` once at `primals`, recording it, and returns its outputs with J v and J^T u closures
 * that sweep the record (tangents forward, cotangents backward) without rerunning `f`. This is
 * what a CG solve uses: one forward pass per optimizer step, then one tangent and one cotangent
 * sweep per CG iteration.
 *
 * @example
 * ```ts
 * import { init, linearize, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const lin = linearize((x) => ops.sigmoid(x), [tensor([0, 1])]);
 * const [jv] = lin.jvp(tensor([1, 1]));
 * const [jtu] = lin.vjp(tensor([1, 0]));
 * lin.dispose();
 * ```
 */
export function linearize(f: TensorFn, primals: Tensor[]): Linearized {
  return record(f, primals).lin;
}

/**
 * {@link linearize}, also returning the concrete tensors it handed to the caller: the outputs it
 * created (with what lies beneath traced ones). Like any op's result they belong to the enclosing
 * scope, so a scope around the call frees them; outputs that `f` did not create (an input it
 * returns as it is, a constant it closes over) are left alone.
 */
function record(f: TensorFn, primals: Tensor[]): Recorded {
  checkFn(f, "linearize");
  checkTensors(primals, "linearize: the primals");
  const trace = new TapeTrace(nextLevel(), scopeDepth());
  const { result: outs, created } = collect(() => {
    const ins = primals.map((p) => trace.input(p));
    try {
      return asList(withTrace(trace, () => f(...ins)), "linearize");
    } finally {
      trace.active = false;
    }
  });
  const nodes = outs.map((out) => (trace.owns(out) ? out.node : -1));
  const outputs = outs.map((out) => (trace.owns(out) ? out.primal : out));
  const owned = new Set<Tensor>();
  const handOver = (t: Tensor) => {
    if (created.delete(t)) {
      owned.add(t);
      adopt(t);
    }
    for (const c of t.children()) handOver(c);
  };
  outputs.forEach(handOver);
  let disposed = false;
  const alive = (what: string) => {
    if (disposed) throw new SgnError(`${what}: this linearization was already disposed`);
  };
  const lin: Linearized = {
    outputs,
    jvp: (...tangents) => {
      alive("linearize.jvp");
      checkMatch(primals, tangents, "linearize.jvp");
      return scope(() =>
        trace.forward(tangents, nodes).map((t, i) => t ?? o.zerosLike(outputs[i]))
      );
    },
    vjp: (...cts) => {
      alive("linearize.vjp");
      checkMatch(outputs, cts, "linearize.vjp");
      return scope(() => trace.backward(cts, nodes).map((g, i) => g ?? o.zerosLike(primals[i])));
    },
    dispose: () => {
      disposed = true;
      for (const t of created) t.dispose();
      created.clear();
      for (const t of trace.memos.splice(0)) t.dispose();
    },
  };
  return { lin, owned, trace, nodes };
}

/**
 * What {@link record} returns: the linearization, the tensors it handed to the caller, and the
 * tape with each output's node (-1 where an output does not depend on the inputs), for sweeps
 * over some of the outputs only.
 */
interface Recorded {
  lin: Linearized;
  owned: Set<Tensor>;
  trace: TapeTrace;
  nodes: number[];
}

/**
 * Reverse mode: the outputs of `f` and a pullback mapping output cotangents to input cotangents.
 * Call `pullback.dispose()` when done with it.
 *
 * @example
 * ```ts
 * import { init, ops, tensor, vjp } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const [[y], pullback] = vjp((x) => ops.exp(x), [tensor([0, 1])]);
 * const [g] = pullback(tensor([1, 1])); // e^x
 * pullback.dispose();
 * ```
 */
export function vjp(f: TensorFn, primals: Tensor[]): [Tensor[], LinearFn] {
  const lin = linearize(f, primals);
  const pullback = ((...cts: Tensor[]) => lin.vjp(...cts)) as LinearFn;
  pullback.dispose = lin.dispose;
  return [lin.outputs, pullback];
}

/**
 * The value of a scalar-valued `f` and its gradient with respect to every argument.
 *
 * @example
 * ```ts
 * import { init, ops, tensor, valueAndGrad } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const [value, [g]] = valueAndGrad((x) => ops.sum(ops.square(x)))(tensor([1, 2]));
 * console.log(await g.data()); // [2, 4]
 * ```
 */
export function valueAndGrad(
  f: (...args: Tensor[]) => Tensor,
): (...args: Tensor[]) => [Tensor, Tensor[]] {
  checkFn(f, "grad");
  return (...args) => {
    const { lin, owned } = record(f, args);
    try {
      const [y] = lin.outputs;
      if (y.size !== 1) {
        throw new SgnError(
          `grad: the function must return a scalar, got shape [${y.shape.join(", ")}]`,
        );
      }
      const grads = scope(() => lin.vjp(o.onesLike(y)));
      return [y, grads];
    } catch (e) {
      for (const t of owned) t.dispose();
      throw e;
    } finally {
      lin.dispose();
    }
  };
}

/**
 * The gradient of a scalar-valued `f` with respect to every argument.
 *
 * @example
 * ```ts
 * import { grad, init, ops, tensor } from "../mod.ts";
 * await init({ backend: "cpu" });
 * const [g] = grad((x) => ops.sum(ops.exp(x)))(tensor([0, 1]));
 * ```
 */
export function grad(f: (...args: Tensor[]) => Tensor): (...args: Tensor[]) => Tensor[] {
  const vg = valueAndGrad(f);
  return (...args) => {
    const [y, g] = vg(...args);
    y.dispose();
    return g;
  };
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
