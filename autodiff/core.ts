/**
 * The interpreter core of the autodiff, in the shape of JAX's autodidax: every operation is a
 * primitive applied with {@link bind}; the innermost active transformation whose tracers appear
 * among the arguments processes it, and everything else is evaluation on a backend (the
 * primitive's forward row, primitives.ts).
 *
 * The transformations themselves ({@link Trace}s: forward mode and the recorded tape) live in
 * traces.ts, above the ops their derivative rules are written with. Levels order nested
 * transformations: a tracer of level L is a value for level L + 1.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { checkTensor, Tensor } from "./tensor.ts";
import { evaluate, type ParamsOf, type PrimName } from "./primitives.ts";

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
  return top ? top.process(prim, args, params) : evaluate(prim, args, params);
}
