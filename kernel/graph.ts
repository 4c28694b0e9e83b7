/**
 * The graph builders of the lazy arrays (kernel/lazy.ts): views, element-wise ops, reductions,
 * routines and constants, each a pending {@link Lazy} whose recipe inlines its operands'
 * expressions where it can. Views move the strides of the loads beneath them; an element-wise op
 * on a pending reduction or fusable routine becomes its epilogue; a reduction of a reduction of
 * the same kind merges into one.
 *
 * @module
 */

import { type Backend, matmulShape } from "./backend.ts";
import { broadcastShapes, type DType, sameShape, sizeOf } from "./shape.ts";
import { SgnError } from "../errors.ts";
import {
  ACC,
  contiguous,
  type Expr,
  exprSize,
  type Kernel,
  load,
  mapLoads,
  type ReduceOp,
  reshapeStrides,
} from "./ir.ts";
import * as ir from "./ir.ts";
import { type Routine, ROUTINES } from "./routines.ts";
import { Lazy, type Recipe } from "./lazy.ts";
import { MAX_INPUTS } from "./recipe.ts";
import { isIdentity } from "./loads.ts";

/** Largest expression (in nodes) inlined into a consumer; larger ones are computed first. */
const MAX_EXPR = 64;

/** An expression over the array's own index space, reading `srcs`. */
export interface Fragment {
  expr: Expr;
  srcs: Lazy[];
}

// --- fragments --------------------------------------------------------------------------------

/**
 * The expression reading `x` in its own index space: its own expression when it is a pending
 * map small enough to inline (the references are retained for the caller), else a load of it.
 */
function fragment(x: Lazy): Fragment {
  const r = x.recipe;
  if (r?.kind === "map" && exprSize(r.expr) <= MAX_EXPR) {
    return { expr: r.expr, srcs: r.srcs.map((s) => s.retain()) };
  }
  return { expr: load(0, contiguous(x.shape)), srcs: [x.retain()] };
}

/** Moves every load of a fragment; `fn` returns undefined when a load cannot be moved. */
function moveLoads(
  f: Fragment,
  fn: (l: Expr & { k: "load" }) => Expr | undefined,
): Fragment | undefined {
  let ok = true;
  const expr = mapLoads(f.expr, (l) => {
    if (l.k === "acc") return l;
    const m = fn(l);
    if (!m) ok = false;
    return m ?? l;
  });
  return ok ? { expr, srcs: f.srcs } : undefined;
}

/**
 * Joins fragments: one list of sources (each once, retained), loads renumbered; the fragments'
 * own references are released.
 */
export function join(parts: Fragment[]): { exprs: Expr[]; srcs: Lazy[] } {
  const srcs: Lazy[] = [];
  const exprs = parts.map((p) => {
    const index = p.srcs.map((s) => {
      let i = srcs.indexOf(s);
      if (i < 0) {
        i = srcs.length;
        srcs.push(s.retain());
      }
      return i;
    });
    return mapLoads(p.expr, (l) => (l.k === "load" ? { ...l, input: index[l.input] } : l));
  });
  for (const p of parts) for (const s of p.srcs) s.release();
  return { exprs, srcs };
}

function release(f: Fragment): void {
  for (const s of f.srcs) s.release();
}

// --- views ------------------------------------------------------------------------------------

/** `x` read through a view: each load's (strides, offset) mapped by `move`. */
function view(
  x: Lazy,
  shape: readonly number[],
  move: (strides: readonly number[], offset: number) => [number[], number] | undefined,
): Lazy {
  const apply = (f: Fragment) =>
    moveLoads(f, (l) => {
      const m = move(l.strides, l.offset);
      return m && { k: "load", input: l.input, strides: m[0], offset: m[1] };
    });
  const f = fragment(x);
  let moved = apply(f);
  if (!moved) {
    // The inlined expression cannot take this view: compute x, then view its buffer.
    release(f);
    x.realize();
    moved = apply({ expr: load(0, contiguous(x.shape)), srcs: [x.retain()] })!;
  }
  return Lazy.pending(x.backend, shape, x.dtype, { kind: "map", ...moved });
}

/** `x` with a new shape of the same size (no copy). */
export function reshape(x: Lazy, shape: readonly number[]): Lazy {
  if (sizeOf(shape) !== x.size) {
    throw new SgnError(`reshape: cannot reshape [${x.shape}] to [${shape}]`);
  }
  return view(x, shape, (s, o) => {
    const t = reshapeStrides(x.shape, s, shape);
    return t && [t, o];
  });
}

/** `x` with its axes permuted (no copy). */
export function permute(x: Lazy, perm: readonly number[]): Lazy {
  return view(x, perm.map((i) => x.shape[i]), (s, o) => [perm.map((i) => s[i]), o]);
}

/** `x` broadcast to `shape` (NumPy rules; no copy). */
export function expand(x: Lazy, shape: readonly number[]): Lazy {
  const lead = shape.length - x.shape.length;
  return view(x, shape, (s, o) => [
    shape.map((d, i) => (i < lead || (x.shape[i - lead] === 1 && d !== 1) ? 0 : s[i - lead])),
    o,
  ]);
}

/** The block of `x` at `starts` of extent `sizes` (no copy). */
export function slice(x: Lazy, starts: readonly number[], sizes: readonly number[]): Lazy {
  return view(x, sizes, (s, o) => [[...s], o + starts.reduce((a, v, i) => a + v * s[i], 0)]);
}

// --- element-wise -----------------------------------------------------------------------------

/**
 * An element-wise op over operands broadcast to one shape. When an operand is a pending
 * reduction or epilogue routine read whole, the op becomes that kernel's epilogue.
 */
function elementwise(operands: Lazy[], build: (xs: Expr[]) => Expr): Lazy {
  const be = operands[0].backend;
  const dtype = operands[0].dtype;
  let shape: number[] = [...operands[0].shape];
  for (const x of operands.slice(1)) {
    const s = broadcastShapes(shape, x.shape);
    if (!s) throw new SgnError(`shapes [${shape}] and [${x.shape}] do not broadcast`);
    shape = s;
  }
  // Epilogue fusion: the first operand that is a whole pending reduction or fusable routine.
  const host = operands.find((x) => sameShape(x.shape, shape) && hosts(x));
  const fused = host && fuseInto(host, host, operands, shape, build);
  if (fused) {
    host!.absorb(fused, operands, () => elementwise(operands, build));
    return fused;
  }
  const reshaped = fuseThroughReshape(operands, shape, build);
  if (reshaped) return reshaped;
  let parts = operands.map((x) => broadcastFragment(x, shape));
  let joined = join(parts);
  if (joined.srcs.length > MAX_INPUTS) {
    // Too many buffers for one kernel: compute the operands first, then combine them.
    for (const s of joined.srcs) s.release();
    for (const x of operands) x.realize();
    parts = operands.map((x) => broadcastFragment(x, shape, true));
    joined = join(parts);
  }
  return Lazy.pending(be, shape, dtype, {
    kind: "map",
    expr: build(joined.exprs),
    srcs: joined.srcs,
  });
}

/**
 * Whether `x` is a pending reduction or fusable routine: one that takes an epilogue. A backend
 * applies a product's epilogue over the product's own shape ([m, n], or [batch, m, n] for a
 * batch of several): a product node of another rank (a batch of one kept as [1, m, n]) does not
 * host, since the epilogue's loads would index a space of the wrong rank.
 */
function hosts(x: Lazy): boolean {
  const r = x.recipe;
  if (r?.kind === "reduce") return true;
  if (r?.kind !== "routine" || !ROUTINES[r.routine.op].fusable) return false;
  return r.routine.op !== "matmul" || sameShape(x.shape, matmulShape(r.routine.spec));
}

/**
 * `operands`, broadcast to `shape`, combined by `build` as the epilogue of `host`'s reduction or
 * routine: operand `via` stands for the host's value (the host itself, or a reshape of it), the
 * others' loads move into the host's index space by `move` (none when the shapes agree).
 * Undefined when a load does not move or the kernel would read too many buffers.
 */
function fuseInto(
  host: Lazy,
  via: Lazy,
  operands: Lazy[],
  shape: readonly number[],
  build: (xs: Expr[]) => Expr,
  move?: (l: Expr & { k: "load" }) => Expr | undefined,
): Lazy | undefined {
  const r = host.recipe as Exclude<Recipe, { kind: "map" }>;
  const parts: Fragment[] = [];
  for (const x of operands) {
    if (x === via) {
      parts.push({ expr: r.epilogue ?? ACC, srcs: r.srcs.map((s) => s.retain()) });
      continue;
    }
    const f = broadcastFragment(x, shape);
    const moved = move ? moveLoads(f, move) : f;
    if (!moved) {
      for (const g of [f, ...parts]) release(g);
      return undefined;
    }
    parts.push(moved);
  }
  if (r.kind === "reduce") parts.unshift({ expr: r.body, srcs: r.srcs.map((s) => s.retain()) });
  const { exprs, srcs } = join(parts);
  if (srcs.length > MAX_INPUTS) {
    for (const s of srcs) s.release();
    return undefined;
  }
  const epilogue = build(r.kind === "reduce" ? exprs.slice(1) : exprs);
  if (r.kind === "routine") { for (const a of r.args) a.retain(); }
  return Lazy.pending(
    host.backend,
    host.shape,
    host.dtype,
    r.kind === "reduce" ? { ...r, body: exprs[0], epilogue, srcs } : { ...r, epilogue, srcs },
  );
}

/**
 * Epilogue fusion through a reshape: when an operand is a whole pending reduction or epilogue
 * routine of another shape seen through a contiguous reshape (a flatten's gradient flowing back
 * into the relu mask of a convolution's output, say), the op becomes that kernel's epilogue in
 * the kernel's own shape, provided every other operand's loads take that shape; the result is
 * the fused kernel reshaped back to `shape`. Undefined when no operand is such a view.
 */
function fuseThroughReshape(
  operands: Lazy[],
  shape: readonly number[],
  build: (xs: Expr[]) => Expr,
): Lazy | undefined {
  const via = operands.find((x) => {
    const r = x.recipe;
    if (r?.kind !== "map" || r.srcs.length !== 1 || !sameShape(x.shape, shape)) return false;
    const h = r.srcs[0];
    return h.size === x.size && !sameShape(h.shape, shape) && isIdentity(r.expr, shape) &&
      hosts(h);
  });
  const host = (via?.recipe as { srcs: Lazy[] } | undefined)?.srcs[0];
  const fused = host && fuseInto(host, via!, operands, shape, build, (l) => {
    const t = reshapeStrides(shape, l.strides, host.shape);
    return t && { ...l, strides: t };
  });
  if (!fused) return undefined;
  host!.absorb(fused, operands, () => {
    const plain = elementwise(operands, build);
    const back = reshape(plain, host!.shape);
    plain.release();
    return back;
  });
  const out = reshape(fused, shape);
  fused.release();
  return out;
}

/** The fragment of `x` broadcast to `shape` (a load of its buffer when `whole`). */
function broadcastFragment(x: Lazy, shape: readonly number[], whole = false): Fragment {
  const lead = shape.length - x.shape.length;
  const f = whole ? { expr: load(0, contiguous(x.shape)), srcs: [x.retain()] } : fragment(x);
  if (sameShape(x.shape, shape)) return f;
  return moveLoads(f, (l) => ({
    ...l,
    strides: shape.map((d, i) =>
      i < lead || (x.shape[i - lead] === 1 && d !== 1) ? 0 : l.strides[i - lead]
    ),
  }))!;
}

/** A unary op. */
export function unary(
  op: ir.Expr extends never ? never : Parameters<typeof ir.unary>[0],
  x: Lazy,
): Lazy {
  return elementwise([x], ([a]) => ir.unary(op, a));
}

/** A binary op with broadcasting. */
export function binary(op: Parameters<typeof ir.binary>[0], a: Lazy, b: Lazy): Lazy {
  return elementwise([a, b], ([x, y]) => ir.binary(op, x, y));
}

/** `c != 0 ? a : b`, broadcast. */
export function where(c: Lazy, a: Lazy, b: Lazy): Lazy {
  return elementwise([c, a, b], ([x, y, z]) => ir.where(x, y, z));
}

/** An array of `shape` filled with `value` (computed only if a buffer is needed). */
export function full(
  backend: Backend,
  shape: readonly number[],
  value: number,
  dtype: DType,
): Lazy {
  return Lazy.pending(backend, shape, dtype, { kind: "map", expr: ir.constant(value), srcs: [] });
}

// --- reductions -------------------------------------------------------------------------------

/** Reduces `axes` (sorted, distinct) of x; the result has the remaining axes. */
export function reduce(op: ReduceOp, x: Lazy, axes: readonly number[]): Lazy {
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const outShape = kept.map((i) => x.shape[i]);
  const redShape = axes.map((i) => x.shape[i]);
  const r = x.recipe;
  if (r?.kind === "reduce" && !r.epilogue && r.op === op && op !== "argmax") {
    // A reduction of a reduction of the same kind: one kernel over both sets of axes.
    const rank = x.shape.length;
    const order = [...kept, ...axes, ...r.redShape.map((_, i) => rank + i)];
    const body = mapLoads(
      r.body,
      (l) => l.k === "load" ? { ...l, strides: order.map((i) => l.strides[i]) } : l,
    );
    const merged = Lazy.pending(x.backend, outShape, x.dtype, {
      kind: "reduce",
      op,
      redShape: [...redShape, ...r.redShape],
      body,
      srcs: r.srcs.map((s) => s.retain()),
    });
    x.absorb(merged, [x], () => reduce(op, x, axes));
    return merged;
  }
  const f = fragment(x);
  const order = [...kept, ...axes];
  const moved = moveLoads(f, (l) => ({ ...l, strides: order.map((i) => l.strides[i]) }))!;
  return Lazy.pending(x.backend, outShape, x.dtype, {
    kind: "reduce",
    op,
    redShape,
    body: moved.expr,
    srcs: moved.srcs,
  });
}

/**
 * A pending array computed by `kernel` (a reduction, possibly with an epilogue) over `srcs`, of
 * the kernel's shape: for kernels the graph's builders do not make (kernel/pool.ts).
 */
export function kernelNode(kernel: Kernel, srcs: readonly Lazy[]): Lazy {
  const r = kernel.reduce;
  if (!r || kernel.more || kernel.inputs !== srcs.length) {
    throw new SgnError("kernelNode: give a reduction of one output and its inputs");
  }
  return Lazy.pending(srcs[0].backend, kernel.shape, srcs[0].dtype, {
    kind: "reduce",
    op: r.op,
    redShape: [...r.shape],
    body: kernel.body,
    ...(kernel.epilogue ? { epilogue: kernel.epilogue } : {}),
    srcs: srcs.map((s) => s.retain()),
  });
}

// --- routines ---------------------------------------------------------------------------------

/**
 * A routine (matmul, convolution, ...; see `routines.ts`) over `args`, pending: element-wise
 * consumers of a fusable routine become its epilogue, and a routine that takes windows reads
 * slices of a larger buffer in place.
 */
export function routine(routine: Routine, args: Lazy[], shape: readonly number[]): Lazy {
  return Lazy.pending(args[0].backend, shape, args[0].dtype, {
    kind: "routine",
    routine,
    args: args.map((a) => a.retain()),
    srcs: [],
  });
}
