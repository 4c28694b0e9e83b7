/**
 * Flat parameter vectors: the optimizers run their vector arithmetic on one flat tensor holding
 * every parameter (one fused kernel per operation), while models take a list of tensors.
 * Conversions are single backend calls (concat and split, one dispatch on WebGPU).
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";

import { sizeOf } from "../kernel/shape.ts";
import { Tensor } from "../autodiff/tensor.ts";
import * as k from "../kernel/graph.ts";
import type { Lazy } from "../kernel/lazy.ts";
import { foldColumnSums } from "../kernel/matmul.ts";
import { stack } from "../kernel/multi.ts";

/**
 * Checks what an optimizer is given as its parameters: a non-empty list of live tensors on one
 * backend with one dtype (what `net.init()` returns). `who` names the optimizer in the error.
 */
export function checkParams(params: unknown, who: string): Tensor[] {
  const hint = "pass the list of tensors that net.init() returns";
  if (!Array.isArray(params) || params.length === 0) {
    throw new SgnError(`${who}: the parameters must be a non-empty list of tensors; ${hint}`);
  }
  params.forEach((p, i) => {
    if (!(p instanceof Tensor)) {
      throw new SgnError(`${who}: parameter ${i} is ${showValue(p)}, not a tensor; ${hint}`);
    }
    if (p.disposed) throw new SgnError(`${who}: parameter ${i} was already disposed`);
    if (p.backend !== params[0].backend || p.dtype !== params[0].dtype) {
      throw new SgnError(
        `${who}: the parameters must live on one backend with one dtype (parameter ${i} is ` +
          `${p.dtype} on ${p.backend.name}, parameter 0 ${params[0].dtype} on ` +
          `${params[0].backend.name})`,
      );
    }
  });
  return params as Tensor[];
}

/**
 * Concatenates tensors into one flat vector [sum of sizes] (one routine, run when needed). Parts
 * that are consecutive windows of one vector (what {@link splitFlat} returns) give that vector
 * back without a copy; parts of one shape (a few scalars) are computed now, together, and
 * gathered by one kernel. (Not a reshape: that is `flatten` in autodiff/ops.ts.)
 *
 * @example
 * ```ts
 * import { init, tensor } from "../mod.ts";
 * import { concatFlat } from "./vectors.ts";
 * await init({ backend: "cpu" });
 * const v = concatFlat([tensor([[1, 2], [3, 4]]), tensor([5])]);
 * console.log(v.shape, Array.from(await v.data())); // [5] [1, 2, 3, 4, 5]
 * ```
 */
export function concatFlat(parts: readonly Tensor[]): Tensor {
  if (parts.length === 0) throw new SgnError("concatFlat: no tensors given");
  const be = parts[0].backend;
  const sizes = parts.map((p) => p.size);
  const shape = [sizes.reduce((a, b) => a + b, 0)];
  const windows = parts.map((p) => p.lazy.window());
  const src = windows[0]?.src;
  let at = 0;
  const whole = src && src.size === shape[0] && windows.every((w, i) => {
    const ok = w !== undefined && w.src === src && w.offset === at;
    at += sizes[i];
    return ok;
  });
  if (whole) return new Tensor(be, k.reshape(src, shape), shape, parts[0].dtype);
  // Parts of one shape (the scalars a step reads back): computed together, then gathered by
  // one kernel (kernel/multi.ts).
  const stacked = stack(parts.map((p) => p.lazy));
  if (stacked) {
    const lazy = k.reshape(stacked, shape);
    stacked.release();
    return new Tensor(be, lazy, shape, parts[0].dtype);
  }
  // A layer's weight and bias gradients side by side: one product (kernel/matmul.ts).
  const folded = foldColumnSums(parts.map((p) => p.lazy));
  const widths = folded.map((l) => l.size);
  const lazy = k.routine({ op: "concat", outer: 1, widths }, folded, shape);
  for (const l of folded) l.release();
  return new Tensor(be, lazy, shape, parts[0].dtype);
}

/**
 * Splits a flat vector into tensors of the given shapes, the inverse of {@link concatFlat}:
 * windows of the (computed) vector, no copy; matrix products read them in place.
 *
 * @example
 * ```ts
 * import { init, tensor } from "../mod.ts";
 * import { splitFlat } from "./vectors.ts";
 * await init({ backend: "cpu" });
 * const [w, b] = splitFlat(tensor([1, 2, 3, 4, 5]), [[2, 2], [1]]);
 * console.log(w.shape, b.shape); // [2, 2] [1]
 * ```
 */
export function splitFlat(flat: Tensor, shapes: readonly (readonly number[])[]): Tensor[] {
  const total = shapes.reduce((s, sh) => s + sizeOf(sh), 0);
  if (flat.size !== total) {
    throw new SgnError(
      `splitFlat: a vector of ${flat.size} elements cannot hold ${total} parameters`,
    );
  }
  flat.realize();
  let at = 0;
  return shapes.map((shape) => {
    const piece = k.slice(flat.lazy, [at], [sizeOf(shape)]);
    at += sizeOf(shape);
    const view = k.reshape(piece, shape);
    piece.release();
    return new Tensor(flat.backend, view, shape, flat.dtype);
  });
}

/**
 * The diagonal preconditioner of SGN applied to a: `a / (b * b + c) ^ p`, element-wise (one
 * fused kernel, or part of one).
 */
export function precondT(a: Tensor, b: Tensor, c: number, p: number): Tensor {
  const be = a.backend;
  const temps: Lazy[] = [];
  const t = (x: Lazy) => (temps.push(x), x);
  const damped = t(
    k.binary("add", t(k.binary("mul", b.lazy, b.lazy)), t(k.full(be, [], c, a.dtype))),
  );
  const out = k.binary("div", a.lazy, t(k.binary("pow", damped, t(k.full(be, [], p, a.dtype)))));
  for (const x of temps) x.release();
  return new Tensor(be, out, a.shape, a.dtype);
}
