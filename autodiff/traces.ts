/**
 * The two transformations of the autodiff, each a {@link Trace} of core.ts:
 * - {@link JvpTrace} carries (primal, tangent) pairs forward: forward mode, streaming.
 * - {@link TapeTrace} records the primitives applied to its inputs together with their primal
 *   values. A recorded tape can then be swept forward with the JVP rules (J v, without rerunning
 *   the forward pass: this is `linearize`) or backward with the VJP rules (J^T u).
 *
 * The rules (derivatives.ts) are written with the same ops users call, so the sweeps themselves
 * are differentiable: the JVP of a backward sweep is a Hessian-vector product
 * (forward-over-reverse), with no special code.
 *
 * @module
 */

import { bind, Trace, Tracer } from "./core.ts";
import { DERIVATIVES, type Memo, noMemo } from "./derivatives.ts";
import type { ParamsOf, PrimName } from "./primitives.ts";
import { claim, keep, type Tensor } from "./tensor.ts";

// --- forward mode ---------------------------------------------------------------------------

/** A tracer that stands for its primal, one level down. */
abstract class PrimalTracer extends Tracer {
  constructor(trace: Trace, readonly primal: Tensor) {
    super(trace, primal);
  }
  get value(): Tensor {
    return this.primal;
  }
}

/** A primal with its tangent. */
export class JvpTracer extends PrimalTracer {
  constructor(trace: JvpTrace, primal: Tensor, readonly tangent: Tensor) {
    super(trace, primal);
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
    const t = DERIVATIVES[prim].jvp(primals, tangents, params, out, noMemo);
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
export class TapeTracer extends PrimalTracer {
  constructor(trace: TapeTrace, primal: Tensor, readonly node: number) {
    super(trace, primal);
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
      tan[i] = DERIVATIVES[n.prim].jvp(
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
      const grads = DERIVATIVES[n.prim].vjp(
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
