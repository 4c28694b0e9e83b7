/**
 * Predicates on the loads of an expression of the IR, which the lazy graph asks before it shares
 * a buffer or inlines a pending map (kernel/lazy.ts).
 *
 * @module
 */

import { contiguous, type Expr, walk } from "./ir.ts";

/** Whether a load reads its input contiguously from offset 0 over `shape`. */
export function wholeLoad(l: Expr & { k: "load" }, shape: readonly number[]): boolean {
  const want = contiguous(shape);
  return l.offset === 0 && l.strides.every((v, i) => shape[i] === 1 || v === want[i]);
}

/** Whether every load of `e` reads its input element for element over `shape` (no index leaf). */
export function readsElementwise(e: Expr, shape: readonly number[]): boolean {
  let ok = true;
  walk(e, (x) => {
    if (x.k === "index" || (x.k === "load" && !wholeLoad(x, shape))) ok = false;
  });
  return ok;
}

/** Whether `e` reads input 0 contiguously from offset 0 over `shape`. */
export function isIdentity(e: Expr, shape: readonly number[]): boolean {
  return e.k === "load" && e.input === 0 && wholeLoad(e, shape);
}

/** The loads of an expression. */
export function loadsOf(e: Expr): (Expr & { k: "load" })[] {
  const out: (Expr & { k: "load" })[] = [];
  walk(e, (x) => x.k === "load" && out.push(x));
  return out;
}
