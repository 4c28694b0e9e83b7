/**
 * What a pending lazy array is computed by (its {@link Recipe}: a map, a reduction, or a routine
 * with its epilogue), and the rewrites of a recipe just before its launch: pending maps inlined
 * into the kernels that read them, and windows of computed arrays read in place. The recipe's
 * arrays are kernel/lazy.ts's, seen through what these ask of them ({@link Source}).
 *
 * @module
 */

import { contiguous, type Expr, mapLoads, type ReduceOp } from "./ir.ts";
import { loadsOf, readsElementwise, wholeLoad } from "./loads.ts";
import type { Routine } from "./routines.ts";
import { sameShape, sizeOf } from "./shape.ts";

/** Most input buffers of one kernel (WebGPU guarantees 8 storage buffers, one is the output). */
export const MAX_INPUTS = 7;

/** An array a recipe reads (a lazy array, kernel/lazy.ts), as the rewrites here see it. */
export interface Source {
  /** The array's shape. */
  readonly shape: readonly number[];
  /** Whether it has been computed. */
  readonly computed: boolean;
  /** How it is computed while it is pending. */
  readonly recipe: Recipe | undefined;
  /** The array this one is a contiguous window of, and where the window starts. */
  window(): { src: Source; offset: number } | undefined;
  /** Adds a holder. */
  retain(): Source;
  /** Drops a holder. */
  release(): void;
}

/**
 * How a pending array is computed: a map, a reduction, or a routine (with its epilogue), over
 * arrays of type `S`.
 */
export type Recipe<S extends Source = Source> =
  | { kind: "map"; expr: Expr; srcs: S[] }
  | {
    kind: "reduce";
    op: ReduceOp;
    redShape: number[];
    body: Expr;
    epilogue?: Expr;
    srcs: S[];
  }
  | {
    kind: "routine";
    /** The routine and its spec. */
    routine: Routine;
    args: S[];
    epilogue?: Expr;
    srcs: S[];
  };

/**
 * Fusion at run time: a source that is still a pending map, read element for element over the
 * output index (by a map or an epilogue), is inlined instead of being computed on its own; so is
 * one read through any view (as kernel/pool.ts's kernel reads dy) when the map reads each of its
 * sources element for element. (A source read either way may have been a fused kernel when its
 * reader was built, and become a map since, when its own operand was computed.)
 */
export function inlinePendingMaps(r: Recipe, shape: readonly number[]): void {
  const exprOf = (x: Recipe) => (x.kind === "map" ? x.expr : x.epilogue);
  let e = exprOf(r);
  if (!e) return;
  for (let j = 0; j < r.srcs.length; j++) {
    const src = r.srcs[j];
    const sr = src.recipe;
    if (src.computed || sr?.kind !== "map") continue;
    if (r.kind === "reduce" && loadsOf(r.body).some((l) => l.input === j)) continue;
    const loads = loadsOf(e).filter((l) => l.input === j);
    const plain = sameShape(src.shape, shape) && loads.every((l) => wholeLoad(l, shape));
    const through = !plain && readsElementwise(sr.expr, src.shape);
    if (!loads.length || !(plain || through)) continue;
    if (r.srcs.length + sr.srcs.length > MAX_INPUTS + 1) continue;
    // Substitute src's expression, its sources appended to ours.
    const index = sr.srcs.map((s2) => {
      let i = r.srcs.indexOf(s2);
      if (i < 0) {
        i = r.srcs.length;
        r.srcs.push(s2.retain());
      }
      return i;
    });
    const inner = (at: Expr & { k: "load" }) =>
      mapLoads(sr.expr, (l) =>
        l.k !== "load" ? l : through
          // An element-for-element load reads its source where the view reads the map.
          ? { ...l, input: index[l.input], strides: at.strides, offset: at.offset }
          : { ...l, input: index[l.input] });
    e = mapLoads(e, (l) => (l.k === "load" && l.input === j ? inner(l) : l));
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

/**
 * When an array of `shape` computed by `r` is a contiguous window of another one's memory (a
 * slice or reshape of it, no copy made yet): that array and where the window starts.
 */
export function windowOf<S extends Source>(
  shape: readonly number[],
  r: Recipe<S> | undefined,
): { src: S; offset: number } | undefined {
  if (r?.kind !== "map" || r.expr.k !== "load" || r.srcs.length !== 1) return undefined;
  const want = contiguous(shape);
  const e = r.expr;
  if (!shape.every((d, i) => d === 1 || e.strides[i] === want[i])) return undefined;
  const src = r.srcs[0];
  return e.offset + sizeOf(shape) <= sizeOf(src.shape) ? { src, offset: e.offset } : undefined;
}

/** Lets go of what a recipe holds: its sources, and a routine's operands. */
export function dropRecipe(r: Recipe): void {
  for (const s of r.srcs) s.release();
  if (r.kind === "routine") { for (const a of r.args) a.release(); }
}
