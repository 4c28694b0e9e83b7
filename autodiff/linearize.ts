/**
 * Reverse mode by recording: {@link linearize} runs a function once on a tape and returns J v and
 * J^T u closures that sweep the record (tangents forward, cotangents backward) without rerunning
 * it; {@link vjp}, {@link valueAndGrad} and {@link grad} are built on it. Also the argument checks
 * every transformation shares. The transformations' entry point is autodiff/transforms.ts.
 *
 * Memory: temporaries created inside a transformation are disposed when it returns; only its
 * results survive, and they belong to the enclosing {@link scope} like any op's result. A
 * {@link linearize}d function keeps its forward pass until `dispose()`.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";
import { nextLevel, Tracer, withTrace } from "./core.ts";
import { computeTogether } from "../kernel/multi.ts";
import { TapeTrace } from "./traces.ts";
import { adopt, checkTensor, collect, scope, scopeDepth, Tensor } from "./tensor.ts";
import * as o from "./ops.ts";

/** A function of tensors returning a tensor or a list of tensors. */
export type TensorFn = (...args: Tensor[]) => Tensor | Tensor[];

/** The outputs of a transformed function as a list, checked to be Tensors. */
export function asList(out: Tensor | Tensor[], what: string): Tensor[] {
  const list = Array.isArray(out) ? out : [out];
  for (const t of list) {
    if (!(t instanceof Tensor)) throw new SgnError(`${what}: the function must return Tensors`);
  }
  return list;
}

/** Throws unless `f` is a function, naming the transformation. */
export function checkFn(f: unknown, what: string): void {
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

/** Throws unless `tangents` are Tensors shaped like `primals`, one each. */
export function checkMatch(primals: Tensor[], tangents: Tensor[], what: string): void {
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
 * The results of one transformation, computed together when a reader first needs one of them
 * (kernel/multi.ts `computeTogether`): a loss and its gradients in one pass, a dense layer's
 * weight and bias gradients as one product. Traced results are left to their trace.
 */
export function together<T extends readonly Tensor[]>(ts: T): T {
  computeTogether(ts.filter((t) => !(t instanceof Tracer) && !t.disposed).map((t) => t.lazy));
  return ts;
}

/**
 * {@link linearize}, also returning the concrete tensors it handed to the caller: the outputs it
 * created (with what lies beneath traced ones). Like any op's result they belong to the enclosing
 * scope, so a scope around the call frees them; outputs that `f` did not create (an input it
 * returns as it is, a constant it closes over) are left alone.
 */
export function record(f: TensorFn, primals: Tensor[]): Recorded {
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
      return together(
        scope(() => trace.forward(tangents, nodes).map((t, i) => t ?? o.zerosLike(outputs[i]))),
      );
    },
    vjp: (...cts) => {
      alive("linearize.vjp");
      checkMatch(outputs, cts, "linearize.vjp");
      return together(
        scope(() => trace.backward(cts, nodes).map((g, i) => g ?? o.zerosLike(primals[i]))),
      );
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
      together([y, ...grads]);
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
