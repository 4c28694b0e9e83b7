/**
 * The interpreter core of the autodiff, in the shape of JAX's autodidax: every operation is a
 * primitive applied with {@link bind}; the innermost active transformation whose tracers appear
 * among the arguments processes it, and everything else is evaluation on a backend.
 *
 * Two transformations exist:
 * - {@link JvpTrace} carries (primal, tangent) pairs forward: forward mode, streaming.
 * - {@link TapeTrace} records the primitives applied to its inputs together with their primal
 *   values. A recorded tape can then be swept forward with the JVP rules (J v, without rerunning
 *   the forward pass: this is `linearize`) or backward with the VJP rules (J^T u).
 *
 * Rules are written with the same ops users call, so the sweeps themselves are differentiable:
 * the JVP of a backward sweep is a Hessian-vector product (forward-over-reverse), with no special
 * code. Levels order nested transformations: a tracer of level L is a value for level L + 1.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { checkTensor, claim, keep, Tensor } from "./tensor.ts";
import type { Memo, ParamsOf, PrimName, Rule } from "./primitives.ts";

/** Every primitive's rules, typed over the primitive names. */
export type RuleTable = { [K in PrimName]: Rule<ParamsOf[K]> };

/** Evaluates a primitive on concrete tensors (level 0). */
export type Evaluate = <K extends PrimName>(prim: K, args: Tensor[], params: ParamsOf[K]) => Tensor;

/** A Memo that caches nothing. */
export const noMemo: Memo = (_key, make) => make();

/**
 * The primitives' rules and evaluator, registered by primitives.ts (which ops.ts imports) so that
 * this module does not import primitives.ts, which imports it: the autodiff modules form no
 * import cycle.
 */
let table: { rules: RuleTable; evaluate: Evaluate } | undefined;

/** Registers the rule table and evaluator (primitives.ts does, once, when it loads). */
export function registerRules(rules: RuleTable, evaluate: Evaluate): void {
  table = { rules, evaluate };
}

function registered(): { rules: RuleTable; evaluate: Evaluate } {
  if (!table) {
    throw new SgnError(
      "the primitives' rules are not loaded: import autodiff/ops.ts (or mod.ts) before tracing",
    );
  }
  return table;
}

/** A transformation in progress. */
export abstract class Trace {
  /** False once the transformation returned; its tracers must not be used any more. */
  active = true;
  constructor(readonly level: number) {}
  /** Applies `prim` to arguments of which at least one is a tracer of this trace. */
  abstract process<K extends PrimName>(prim: K, args: Tensor[], params: ParamsOf[K]): Tensor;
}

/** A value inside a transformation: a Tensor with no buffer of its own. */
export abstract class Tracer extends Tensor {
  constructor(readonly trace: Trace, like: Tensor) {
    super(like.backend, undefined, like.shape, like.dtype);
  }
  /** The value this tracer stands for, one level down. */
  abstract get value(): Tensor;
  /** Reads the concrete value beneath all transformations. */
  override data() {
    return this.value.data();
  }
  override get buffer(): never {
    throw new SgnError(
      "a traced value has no buffer of its own: kernels run on the values beneath it",
    );
  }
}

const stack: Trace[] = [];

/** Runs `fn` with `trace` active as the innermost transformation. */
export function withTrace<T>(trace: Trace, fn: () => T): T {
  stack.push(trace);
  try {
    return fn();
  } finally {
    stack.pop();
  }
}

/** The level a new transformation gets. */
export function nextLevel(): number {
  return stack.length + 1;
}

/** Applies a primitive: to the innermost trace among the arguments, or evaluates it. */
export function bind<K extends PrimName>(prim: K, args: Tensor[], params: ParamsOf[K]): Tensor {
  let top: Trace | undefined;
  for (const [i, a] of args.entries()) {
    checkTensor(a, `${prim}: operand ${i + 1}`);
    if (a instanceof Tracer) {
      if (!a.trace.active) {
        throw new SgnError(
          `${prim}: a value traced by a transformation that has already returned was used ` +
            "(do not keep tracers from inside jvp/vjp/grad outside them)",
        );
      }
      if (!top || a.trace.level > top.level) top = a.trace;
    }
  }
  return top ? top.process(prim, args, params) : registered().evaluate(prim, args, params);
}

// --- forward mode ---------------------------------------------------------------------------

/** A primal with its tangent. */
export class JvpTracer extends Tracer {
  constructor(trace: JvpTrace, readonly primal: Tensor, readonly tangent: Tensor) {
    super(trace, primal);
  }
  get value(): Tensor {
    return this.primal;
  }
  override children(): readonly Tensor[] {
    return [this.primal, this.tangent];
  }
}

/** Forward mode: each primitive's JVP rule maps input tangents to the output tangent. */
export class JvpTrace extends Trace {
  process<K extends PrimName>(prim: K, args: Tensor[], params: ParamsOf[K]): Tensor {
    const primals = args.map((a) => (this.owns(a) ? a.primal : a));
    const tangents = args.map((a) => (this.owns(a) ? a.tangent : null));
    const out = bind(prim, primals, params);
    const t = registered().rules[prim].jvp(primals, tangents, params, out, noMemo);
    return t ? new JvpTracer(this, out, t) : out;
  }
  owns(a: Tensor): a is JvpTracer {
    return a instanceof JvpTracer && a.trace === this;
  }
}

// --- recorded forward pass --------------------------------------------------------------------

/** One recorded primitive application. Inputs index earlier nodes; -1 marks a constant. */
interface Node {
  prim: PrimName;
  params: unknown;
  inputs: number[];
  primals: Tensor[];
  out: Tensor;
  memo?: Map<string, Tensor>;
}

/** A recorded value: its primal one level down, and its node in the tape. */
export class TapeTracer extends Tracer {
  constructor(trace: TapeTrace, readonly primal: Tensor, readonly node: number) {
    super(trace, primal);
  }
  get value(): Tensor {
    return this.primal;
  }
  override children(): readonly Tensor[] {
    return [this.primal];
  }
}

/**
 * Records the primitives that depend on its inputs. Nodes 0..inputs-1 are the inputs. After the
 * forward pass, {@link forward} and {@link backward} sweep the tape with the JVP and VJP rules.
 */
export class TapeTrace extends Trace {
  readonly nodes: Node[] = [];
  readonly inputs: TapeTracer[] = [];
  /** Values cached by the rules' memo across sweeps; freed with the tape. */
  readonly memos: Tensor[] = [];

  /** `depth`: the index of the collection that owns what this tape records. */
  constructor(level: number, readonly depth: number) {
    super(level);
  }

  /** Makes a tracer for one input of the recorded function. */
  input(primal: Tensor): TapeTracer {
    const t = new TapeTracer(this, primal, this.nodes.length);
    this.nodes.push({ prim: "add", params: undefined, inputs: [], primals: [], out: primal });
    this.inputs.push(t);
    return t;
  }

  process<K extends PrimName>(prim: K, args: Tensor[], params: ParamsOf[K]): Tensor {
    const primals = args.map((a) => (this.owns(a) ? a.primal : a));
    const out = bind(prim, primals, params);
    const inputs = args.map((a) => (this.owns(a) ? a.node : -1));
    const t = new TapeTracer(this, out, this.nodes.length);
    this.nodes.push({ prim, params, inputs, primals, out });
    for (const v of [...primals, out]) this.own(v);
    return t;
  }

  owns(a: Tensor): a is TapeTracer {
    return a instanceof TapeTracer && a.trace === this;
  }

  /** The memo of node i: concrete values are cached for later sweeps, tracers are not. */
  private memoFor(n: Node): Memo {
    return (key, make) => {
      const hit = n.memo?.get(key);
      if (hit) return hit;
      const v = make();
      if (!(v instanceof Tracer)) {
        keep(v);
        (n.memo ??= new Map()).set(key, v);
        this.memos.push(v);
      }
      return v;
    };
  }

  /** Takes ownership of the concrete tensors beneath a recorded value (see `claim`). */
  private own(v: Tensor): void {
    claim(v, this.depth);
    for (const c of v.children()) this.own(c);
  }

  /**
   * J v: sweeps tangents of the inputs forward through the tape with the JVP rules. Returns the
   * tangent of each requested node (null where it does not depend on the inputs).
   */
  forward(tangents: (Tensor | null)[], outputs: number[]): (Tensor | null)[] {
    const tan: (Tensor | null)[] = new Array(this.nodes.length).fill(null);
    tangents.forEach((t, i) => (tan[i] = t));
    const last = Math.max(-1, ...outputs);
    for (let i = this.inputs.length; i <= last; i++) {
      const n = this.nodes[i];
      const tin = n.inputs.map((j) => (j >= 0 ? tan[j] : null));
      if (tin.every((t) => t === null)) continue;
      tan[i] = registered().rules[n.prim].jvp(
        n.primals,
        tin,
        n.params as never,
        n.out,
        this.memoFor(n),
      );
    }
    return outputs.map((o) => tan[o]);
  }

  /**
   * J^T u: sweeps cotangents of the given nodes backward with the VJP rules. Returns the
   * cotangent of each input (null where the outputs do not depend on it).
   */
  backward(cotangents: (Tensor | null)[], outputs: number[]): (Tensor | null)[] {
    const ct: (Tensor | null)[] = new Array(this.nodes.length).fill(null);
    const accumulate = (j: number, g: Tensor) => {
      ct[j] = ct[j] ? bind("add", [ct[j]!, g], undefined) : g;
    };
    outputs.forEach((o, k) => {
      if (o >= 0 && cotangents[k]) accumulate(o, cotangents[k]!);
    });
    for (let i = this.nodes.length - 1; i >= this.inputs.length; i--) {
      const c = ct[i];
      if (!c) continue;
      const n = this.nodes[i];
      const needs = n.inputs.map((j) => j >= 0);
      const grads = registered().rules[n.prim].vjp(
        c,
        n.primals,
        n.params as never,
        n.out,
        needs,
        this.memoFor(n),
      );
      n.inputs.forEach((j, k) => {
        if (j >= 0 && grads[k]) accumulate(j, grads[k]!);
      });
    }
    return this.inputs.map((t) => ct[t.node]);
  }
}
