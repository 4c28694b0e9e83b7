/**
 * The bias gradient folded into the matrix product that gives the weight gradient.
 *
 * A dense layer z = x W + b has the weight gradient x^T dy and the bias gradient, dy summed over
 * the batch. In a flat parameter vector b follows W, so [dW; db] is one block: the product of
 * x^T with a row of ones appended, which the backend computes as one product with B's sums as one
 * more row (`MatmulSpec.sums`) instead of a product and a reduction. A conv layer's pair is
 * folded the same way where the backend asks for it (`Backend.convBiasFold`): its weight
 * gradient's routine gives dy's sums per filter after the weights (`Conv2dSpec.sums`).
 * {@link foldColumnSums} finds those pairs among the parts of a flat vector.
 *
 * @module
 */

import { type Kernel, kernelKey } from "./ir.ts";
import type { Lazy } from "./lazy.ts";
import { isIdentity } from "./loads.ts";
import { reduce, routine } from "./graph.ts";
import type { Routine } from "./routines.ts";

/**
 * The parts of a flat vector with each pending pair (a product x^T y, y's sums over its first
 * axis) that lies side by side folded into one product with the sums as its last row (same
 * layout, one kernel). Returns a new reference per part; the caller releases them.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "../cpu/oracle.ts";
 * import { Lazy } from "./lazy.ts";
 * import { reduce, routine } from "./graph.ts";
 * import { foldColumnSums } from "./matmul.ts";
 * const cpu = new CpuBackend();
 * const x = Lazy.of(cpu, cpu.upload(new Float32Array([1, 2, 3, 4, 5, 6])), [3, 2]);
 * const dy = Lazy.of(cpu, cpu.upload(new Float32Array([1, 0, 2])), [3, 1]);
 * const dW = routine({ op: "matmul", spec: { m: 2, k: 3, n: 1, transA: true } }, [x, dy], [2, 1]);
 * const db = reduce("sum", dy, [0]);
 * const [both] = foldColumnSums([dW, db]);
 * console.log(both.shape, await cpu.read(both.realize())); // [ 3, 1 ] [11, 14, 3]
 * for (const l of [x, dy, dW, db, both]) l.release();
 * ```
 */
export function foldColumnSums(parts: readonly Lazy[]): Lazy[] {
  const out: Lazy[] = [];
  for (let i = 0; i < parts.length; i++) {
    const folded = i + 1 < parts.length ? withSums(parts[i], parts[i + 1]) : undefined;
    out.push(folded ?? parts[i].retain());
    if (folded) i++;
  }
  return out;
}

/**
 * Among pending arrays computed together, each pair of a weight gradient and its bias gradient
 * (a product x^T y and y's sums over its first axis, or a conv weight gradient and dy's sums per
 * filter; in any order), with the one routine that gives both, the sums after the weights
 * ({@link foldColumnSums} for arrays in no order).
 * The caller releases each `both`.
 */
export function sumsPairs(xs: readonly Lazy[]): { w: Lazy; b: Lazy; both: Lazy }[] {
  const out: { w: Lazy; b: Lazy; both: Lazy }[] = [];
  const used = new Set<Lazy>();
  const sums = xs.filter((b) => !b.computed && sumsOf(b).recipe?.kind === "reduce");
  for (const w of xs) {
    if (w.computed || w.recipe?.kind !== "routine") continue;
    for (const b of sums) {
      const both = used.has(b) ? undefined : withSums(w, b);
      if (!both) continue;
      out.push({ w, b, both });
      used.add(b);
      break;
    }
  }
  return out;
}

/**
 * The routine that gives `w` and, after it, the sums `bias` holds, if it does: a product with
 * B's sums as its last row (`MatmulSpec.sums`; a dense layer), or a convolution's weight
 * gradient with dy's sums per filter after it (`Conv2dSpec.sums`; a conv layer).
 */
function withSums(w: Lazy, bias: Lazy): Lazy | undefined {
  const r = w.recipe;
  if (r?.kind !== "routine" || r.epilogue) return undefined;
  if (bias.shape.length !== 1 || bias.dtype !== w.dtype) return undefined;
  const [x, y] = r.args;
  let both: { routine: Routine; shape: number[]; axes: number[] } | undefined;
  if (r.routine.op === "matmul") {
    const spec = r.routine.spec;
    if ((spec.batch ?? 1) !== 1 || spec.sums || spec.transB || w.shape.length !== 2) return;
    const [m, n] = w.shape;
    const routine = { op: "matmul" as const, spec: { ...spec, sums: true } };
    if (bias.shape[0] === n) both = { routine, shape: [m + 1, n], axes: [0] };
  } else if (r.routine.op === "conv2dWeightGrad" && w.backend.convBiasFold) {
    const spec = r.routine.spec;
    if (spec.sums) return;
    const routine = { op: "conv2dWeightGrad" as const, spec: { ...spec, sums: true } };
    if (bias.shape[0] === spec.f) both = { routine, shape: [w.size + spec.f], axes: [0, 2, 3] };
  }
  if (!both) return undefined;
  // The sums the graph would build now over y: the same work as `bias` if `bias` is y's sums.
  const sums = reduce("sum", y, both.axes);
  const same = sameReduction(sumsOf(bias), sums, w.dtype);
  sums.release();
  return same ? routine(both.routine, [x, y], both.shape) : undefined;
}

/** The reduction behind `x`: x itself, or the array x views whole (a reshape of it). */
function sumsOf(x: Lazy): Lazy {
  const r = x.recipe;
  if (r?.kind !== "map" || r.srcs.length !== 1 || r.srcs[0].size !== x.size) return x;
  return isIdentity(r.expr, x.shape) ? r.srcs[0] : x;
}

/** Whether two pending reductions compute the same: one structure over the same arrays. */
function sameReduction(a: Lazy, b: Lazy, dtype: Lazy["dtype"]): boolean {
  const ra = a.recipe, rb = b.recipe;
  if (ra?.kind !== "reduce" || rb?.kind !== "reduce") return false;
  if (ra.srcs.length !== rb.srcs.length || ra.srcs.some((s, i) => s !== rb.srcs[i])) return false;
  const kernel = (x: Lazy, r: typeof ra): Kernel => ({
    shape: x.shape,
    inputs: r.srcs.length,
    body: r.body,
    reduce: { op: r.op, shape: r.redShape },
    ...(r.epilogue ? { epilogue: r.epilogue } : {}),
  });
  const ka = kernelKey(kernel(a, ra), dtype), kb = kernelKey(kernel(b, rb), dtype);
  return ka.key === kb.key && ka.consts.every((c, i) => Object.is(c, kb.consts[i]));
}
