/**
 * Lazy arrays: ops build a graph and kernels run only when a value is needed (read back, or
 * handed to a routine such as matmul). Until then, element-wise ops and views compose into one
 * expression, so a chain of them becomes one kernel:
 *
 * - element-wise ops and views (reshape, transpose, broadcast, slice) inline their operands'
 *   expressions; a view moves the strides of the loads beneath it, so it never copies, and a
 *   contiguous view of a computed buffer shares that buffer;
 * - a reduction takes its operand's expression as its body (a reduction of a reduction of the
 *   same kind merges into one);
 * - an element-wise op on the result of a reduction, or of a routine that takes an epilogue
 *   (matmul), becomes that kernel's epilogue (bias, activation, masks and scalings fuse into the
 *   matmul that produces them).
 *
 * Memory is reference counted: a {@link Lazy} is held by its tensor and by the pending arrays
 * that read it; its buffer goes back to the backend when the last holder lets go. A pending array
 * no one realizes never runs.
 *
 * Fusing a reduction or a routine into a consumer means its own value is not stored: if it is
 * needed later on its own, it is computed again ({@link lazyStats}.recomputed counts these, and
 * tests keep the training workloads at zero).
 *
 * @module
 */

import type { Backend, DeviceBuffer, Epilogue } from "./backend.ts";

import { broadcastShapes, type DType, sizeOf } from "./shape.ts";

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
  walk,
} from "./ir.ts";
import * as ir from "./ir.ts";

/** Counters of the lazy layer, on every backend (tests and benchmarks read them). */
export const lazyStats = {
  /** IR kernels run (element-wise and reductions). */
  kernels: 0,
  /** Routines run (matmul, convolutions, pooling, softmax, concat, split). */
  routines: 0,
  /** Reductions or routines computed again after being fused into another kernel. */
  recomputed: 0,
};

/** Largest expression (in nodes) inlined into a consumer; larger ones are computed first. */
const MAX_EXPR = 64;
/** Most input buffers of one kernel (WebGPU guarantees 8 storage buffers, one is the output). */
export const MAX_INPUTS = 7;

/** An expression over the array's own index space, reading `srcs`. */
export interface Fragment {
  expr: Expr;
  srcs: Lazy[];
}

/** How a pending array is computed: a map, a reduction, or a routine (with its epilogue). */
export type Recipe =
  | { kind: "map"; expr: Expr; srcs: Lazy[] }
  | {
    kind: "reduce";
    op: ReduceOp;
    redShape: number[];
    body: Expr;
    epilogue?: Expr;
    srcs: Lazy[];
  }
  | {
    kind: "routine";
    name: string;
    args: Lazy[];
    run: (bufs: DeviceBuffer[], epilogue?: Epilogue, offsets?: number[]) => DeviceBuffer;
    /** Whether the routine applies an epilogue itself. */
    fusable: boolean;
    /** Whether the routine reads its arguments at offsets (windows of larger buffers). */
    windows: boolean;
    /** What the routine computes (its backend spec), for rewrites that recognize it. */
    spec?: object;
    epilogue?: Expr;
    srcs: Lazy[];
  };

/**
 * An n-dimensional array on a backend: computed (it has a buffer), or pending (a recipe over
 * other arrays). See the module documentation.
 */
export class Lazy {
  #refs = 1;
  #buffer: DeviceBuffer | undefined;
  /** The array whose buffer this one shares (a contiguous view). */
  #base: Lazy | undefined;
  #recipe: Recipe | undefined;
  /** Pending consumers that fused this array's work into theirs (see {@link Lazy.absorb}). */
  #absorbers: Lazy[] = [];
  /**
   * For a consumer that fused its operand's work: rebuilds it over the operand's buffer, once
   * that buffer exists (then fusing would compute the operand twice). Holds its operands.
   */
  #unfused: { host: Lazy; operands: Lazy[]; build: () => Lazy } | undefined;
  /** Whether a consumer has computed this array's work inside its own kernel. */
  #fusedDone = false;

  private constructor(
    readonly backend: Backend,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}

  /** Wraps a buffer (the new array owns it). */
  static of(backend: Backend, buffer: DeviceBuffer, shape: readonly number[]): Lazy {
    if (buffer.size !== sizeOf(shape)) {
      throw new SgnError(
        `a buffer of ${buffer.size} elements cannot have shape [${shape.join(", ")}]`,
      );
    }
    const l = new Lazy(backend, shape, buffer.dtype);
    l.#buffer = buffer;
    return l;
  }

  /** A pending array (takes over the references its recipe holds). */
  static pending(backend: Backend, shape: readonly number[], dtype: DType, recipe: Recipe): Lazy {
    const l = new Lazy(backend, shape, dtype);
    l.#recipe = recipe;
    return l;
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Whether the array has been computed. */
  get computed(): boolean {
    return this.#buffer !== undefined || this.#base !== undefined;
  }

  /** The pending recipe, if any (for the builders below). */
  get recipe(): Recipe | undefined {
    return this.#recipe;
  }

  /** Adds a holder. */
  retain(): this {
    if (this.#refs <= 0) throw new SgnError("a released array was used (a disposed tensor?)");
    this.#refs++;
    return this;
  }

  /** Drops a holder; the last one frees the buffer (or the recipe's references). */
  release(): void {
    if (--this.#refs > 0) return;
    if (this.#refs < 0) throw new SgnError("an array was released twice");
    if (this.#buffer) this.backend.release(this.#buffer);
    this.#base?.release();
    if (this.#recipe) dropRecipe(this.#recipe);
    this.#dropUnfused();
    this.#buffer = undefined;
    this.#base = undefined;
    this.#recipe = undefined;
  }

  /** Computes the array if it is pending, and returns its buffer. */
  realize(): DeviceBuffer {
    if (this.#refs <= 0) throw new SgnError("a released array was used (a disposed tensor?)");
    if (this.#base) return this.#base.realize();
    if (this.#buffer) return this.#buffer;
    const r = this.#recipe!;
    const inputs = () => (r.kind === "routine" ? [...r.args, ...r.srcs] : [...r.srcs]);
    // A source or argument that fused a kernel whose host someone else holds: compute the host
    // first (it is needed anyway, and the source becomes a map over its buffer, which
    // inlinePendingMaps may inline), whatever reads the source: a map, an epilogue, a
    // reduction's body or a routine. Otherwise the host would be computed twice.
    for (const s of inputs()) {
      if (this.#recipe !== r) break;
      if (!s.computed && s.recipe?.kind !== "map") s.settle();
    }
    // That host may be this array's own: it was then rebuilt over the host's buffer (and `r`
    // dropped), so compute what it is now.
    if (this.#recipe !== r) return this.realize();
    if (r.kind === "map" && isIdentity(r.expr, this.shape) && r.srcs[0].size === this.size) {
      // A contiguous view of a whole array: share its buffer.
      const base = r.srcs[0];
      base.realize();
      this.#base = base;
      this.#recipe = undefined;
      return base.realize();
    }
    readWindows(r);
    inlinePendingMaps(r, this.shape);
    // Computing an input may compute the host this array fused (an input that reads it, as in
    // x - sum(x) of a matmul x): this array is then rebuilt over the host's buffer, as above.
    for (const s of inputs()) {
      if (r.kind === "routine" && r.windows && r.args.includes(s)) s.realizeWindow();
      else s.realize();
      if (this.#recipe !== r) return this.realize();
    }
    if (this.#unfused) this.#unfused.host.#fusedDone = true;
    if (this.#fusedDone && r.kind !== "map") {
      lazyStats.recomputed++;
    }
    const be = this.backend;
    let out: DeviceBuffer;
    if (r.kind === "routine") {
      const views = r.windows ? r.args.map((a) => a.realizeWindow()) : undefined;
      const bufs = views ? views.map((v) => v.buffer) : r.args.map((a) => a.realize());
      const epi = r.epilogue
        ? { body: r.epilogue, inputs: r.srcs.map((s) => s.realize()) }
        : undefined;
      lazyStats.routines++;
      out = r.run(bufs, epi, views?.map((v) => v.offset));
    } else {
      const inputs = r.srcs.map((s) => s.realize());
      const kernel: Kernel = r.kind === "map"
        ? { shape: this.shape, inputs: inputs.length, body: r.expr }
        : {
          shape: this.shape,
          inputs: inputs.length,
          body: r.body,
          reduce: { op: r.op, shape: r.redShape },
          ...(r.epilogue ? { epilogue: r.epilogue } : {}),
        };
      lazyStats.kernels++;
      out = be.run(kernel, inputs, this.dtype);
    }
    this.#buffer = out;
    this.#recipe = undefined;
    dropRecipe(r);
    this.#dropUnfused();
    // Consumers that fused this work and are still pending now read the buffer instead.
    for (const c of this.#absorbers.splice(0)) c.#unfuse();
    return out;
  }

  /**
   * When this array is a contiguous window of another one's memory (a slice or reshape of it, no
   * copy made yet): that array and where the window starts. Routines that take an offset read
   * it in place.
   */
  window(): { src: Lazy; offset: number } | undefined {
    const r = this.#recipe;
    if (r?.kind !== "map" || r.expr.k !== "load" || r.srcs.length !== 1) return undefined;
    const want = contiguous(this.shape);
    const e = r.expr;
    if (!this.shape.every((d, i) => d === 1 || e.strides[i] === want[i])) return undefined;
    const src = r.srcs[0];
    return e.offset + this.size <= src.size ? { src, offset: e.offset } : undefined;
  }

  /** The buffer and offset a routine reads this array from: its window, or its own buffer. */
  realizeWindow(): { buffer: DeviceBuffer; offset: number } {
    const w = this.#buffer || this.#base ? undefined : this.window();
    if (w) return { buffer: w.src.realize(), offset: w.offset };
    return { buffer: this.realize(), offset: 0 };
  }

  /**
   * Records that `consumer` fused this array's reduction or routine into its own kernel;
   * `build` rebuilds the consumer from `operands` (which it retains) without fusing.
   */
  absorb(consumer: Lazy, operands: Lazy[], build: () => Lazy): void {
    this.#absorbers.push(consumer);
    consumer.#unfused = { host: this, operands: operands.map((x) => x.retain()), build };
  }

  /**
   * Makes this pending array `view`, a map over computed arrays (its value computed elsewhere:
   * one output of a kernel of several, kernel/multi.ts). Consumers that fused its work now read
   * the view instead, as they would its buffer.
   */
  replaceBy(view: Lazy): void {
    const r = view.#recipe;
    if (r?.kind !== "map" || !r.srcs.every((s) => s.computed) || !this.#recipe) {
      throw new SgnError("replaceBy: a pending array takes a map over computed arrays");
    }
    const old = this.#recipe;
    this.#recipe = { kind: "map", expr: r.expr, srcs: r.srcs.map((s) => s.retain()) };
    dropRecipe(old);
    this.#dropUnfused();
    for (const c of this.#absorbers.splice(0)) c.#unfuse();
  }

  /** Rebuilds a pending consumer over its operands' buffers (see {@link Lazy.absorb}). */
  #unfuse(): void {
    const u = this.#unfused;
    if (!u || this.#refs <= 0 || !this.#recipe) return;
    const plain = u.build();
    const old = this.#recipe;
    this.#recipe = plain.#recipe;
    this.#base = plain.#base?.retain();
    this.#buffer = undefined;
    plain.#recipe = undefined;
    plain.release();
    dropRecipe(old);
    this.#dropUnfused();
  }

  /**
   * For a fused consumer about to be read element for element by another kernel: if its host is
   * held by anyone else (so will be computed anyway), compute the host now; this array then
   * becomes a map over the host's buffer, which its reader inlines.
   */
  settle(): void {
    const host = this.#unfused?.host;
    if (host && host.#refs > host.#absorbers.length && !host.computed) host.realize();
  }

  #dropUnfused(): void {
    const u = this.#unfused;
    this.#unfused = undefined;
    if (!u) return;
    // No longer an absorber of the host: settle() counts the live ones.
    const list = u.host.#absorbers;
    const i = list.indexOf(this);
    if (i >= 0) list.splice(i, 1);
    for (const x of u.operands) x.release();
  }
}

/**
 * Fusion at run time: a source that is still a pending map, read element for element over the
 * output index (by a map or an epilogue), is inlined instead of being computed on its own. (A
 * source read that way may have been a fused kernel when its reader was built, and become a map
 * since, when its own operand was computed.)
 */
function inlinePendingMaps(r: Recipe, shape: readonly number[]): void {
  const exprOf = (x: Recipe) => (x.kind === "map" ? x.expr : x.epilogue);
  let e = exprOf(r);
  if (!e) return;
  const want = contiguous(shape);
  for (let j = 0; j < r.srcs.length; j++) {
    const src = r.srcs[j];
    const sr = src.recipe;
    if (src.computed || sr?.kind !== "map" || !sameShape(src.shape, shape)) continue;
    if (r.kind === "reduce" && loadsOf(r.body).some((l) => l.input === j)) continue;
    const loads = loadsOf(e).filter((l) => l.input === j);
    const plain = loads.every((l) =>
      l.offset === 0 && l.strides.every((v, i) => shape[i] === 1 || v === want[i])
    );
    if (!loads.length || !plain || r.srcs.length + sr.srcs.length > MAX_INPUTS + 1) continue;
    // Substitute src's expression, its sources appended to ours.
    const index = sr.srcs.map((s2) => {
      let i = r.srcs.indexOf(s2);
      if (i < 0) {
        i = r.srcs.length;
        r.srcs.push(s2.retain());
      }
      return i;
    });
    const inner = mapLoads(sr.expr, (l) => (l.k === "load" ? { ...l, input: index[l.input] } : l));
    e = mapLoads(e, (l) => (l.k === "load" && l.input === j ? inner : l));
  }
  if (r.kind === "map") r.expr = e;
  else r.epilogue = e;
  // Sources no expression reads any more are dropped (renumbering the loads).
  const used = new Set<number>();
  for (const x of [r.kind === "reduce" ? r.body : undefined, e]) {
    if (x) { for (const l of loadsOf(x)) used.add(l.input); }
  }
  if (used.size === r.srcs.length) return;
  const keep = r.srcs.map((_, i) => i).filter((i) => used.has(i));
  const renumber = new Map(keep.map((old, i) => [old, i]));
  const fix = (x: Expr) =>
    mapLoads(x, (l) => (l.k === "load" ? { ...l, input: renumber.get(l.input)! } : l));
  for (let i = 0; i < r.srcs.length; i++) if (!used.has(i)) r.srcs[i].release();
  r.srcs = keep.map((i) => r.srcs[i]);
  if (r.kind === "map") r.expr = fix(r.expr);
  else {
    r.epilogue = fix(r.epilogue!);
    if (r.kind === "reduce") r.body = fix(r.body);
  }
}

/**
 * A source that is a window of a computed array (a part of a kernel's output: kernel/multi.ts)
 * is read in place, through whatever view the recipe reads it: its loads move to the array
 * beneath, at the window's offset, so it is never copied out.
 */
export function readWindows(r: Recipe): void {
  for (let j = r.srcs.length - 1; j >= 0; j--) {
    const src = r.srcs[j];
    const w = src.computed ? undefined : src.window();
    if (!w?.src.computed) continue;
    let to = r.srcs.indexOf(w.src);
    if (to < 0) to = r.srcs.push(w.src.retain()) - 1;
    // Input j moves to `to`; the inputs after j shift down one.
    const move = (e: Expr) =>
      mapLoads(e, (l) => {
        if (l.k !== "load") return l;
        if (l.input === j) {
          return { ...l, input: to > j ? to - 1 : to, offset: l.offset + w.offset };
        }
        return l.input > j ? { ...l, input: l.input - 1 } : l;
      });
    if (r.kind === "map") r.expr = move(r.expr);
    if (r.kind === "reduce") r.body = move(r.body);
    if (r.kind !== "map" && r.epilogue) r.epilogue = move(r.epilogue);
    r.srcs.splice(j, 1);
    src.release();
  }
}

function dropRecipe(r: Recipe): void {
  for (const s of r.srcs) s.release();
  if (r.kind === "routine") { for (const a of r.args) a.release(); }
}

/** Whether `e` reads input 0 contiguously from offset 0 over `shape`. */
function isIdentity(e: Expr, shape: readonly number[]): boolean {
  if (e.k !== "load" || e.input !== 0 || e.offset !== 0) return false;
  const want = contiguous(shape);
  return shape.every((d, i) => d === 1 || e.strides[i] === want[i]);
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
  const host = operands.find((x) =>
    sameShape(x.shape, shape) &&
    (x.recipe?.kind === "reduce" || (x.recipe?.kind === "routine" && x.recipe.fusable))
  );
  if (host) {
    const r = host.recipe as Exclude<Recipe, { kind: "map" }>;
    const parts = operands.map((x): Fragment =>
      x === host
        ? { expr: r.epilogue ?? ACC, srcs: r.srcs.map((s) => s.retain()) }
        : broadcastFragment(x, shape)
    );
    if (r.kind === "reduce") parts.unshift({ expr: r.body, srcs: r.srcs.map((s) => s.retain()) });
    const { exprs, srcs } = join(parts);
    if (srcs.length <= MAX_INPUTS) {
      const epilogue = build(r.kind === "reduce" ? exprs.slice(1) : exprs);
      let fused: Lazy;
      if (r.kind === "reduce") {
        fused = Lazy.pending(be, shape, dtype, { ...r, body: exprs[0], epilogue, srcs });
      } else {
        for (const a of r.args) a.retain();
        fused = Lazy.pending(be, shape, dtype, { ...r, epilogue, srcs });
      }
      host.absorb(fused, operands, () => elementwise(operands, build));
      return fused;
    }
    for (const s of srcs) s.release();
  }
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

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
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

// --- routines ---------------------------------------------------------------------------------

/**
 * A routine (matmul, convolution, ...) over computed arguments. `fusable`: the routine applies an
 * epilogue itself, so element-wise consumers fuse into it; `windows`: it reads arguments at
 * offsets, so slices of a larger buffer are passed in place (`run` gets the offsets); `spec`:
 * what it computes, for rewrites that recognize it (kernel/matmul.ts).
 */
export function routine(
  name: string,
  args: Lazy[],
  shape: readonly number[],
  run: (bufs: DeviceBuffer[], epilogue?: Epilogue, offsets?: number[]) => DeviceBuffer,
  options: { fusable?: boolean; windows?: boolean; spec?: object } = {},
): Lazy {
  return Lazy.pending(args[0].backend, shape, args[0].dtype, {
    kind: "routine",
    name,
    args: args.map((a) => a.retain()),
    run,
    fusable: options.fusable ?? false,
    windows: options.windows ?? false,
    ...(options.spec ? { spec: options.spec } : {}),
    srcs: [],
  });
}

/** The loads of an expression (for tests). */
export function loadsOf(e: Expr): (Expr & { k: "load" })[] {
  const out: (Expr & { k: "load" })[] = [];
  walk(e, (x) => x.k === "load" && out.push(x));
  return out;
}
