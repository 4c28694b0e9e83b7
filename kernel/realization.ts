/**
 * A realization: the computation of some pending arrays as one pass (kernel/lazy.ts's
 * `realize`, kernel/multi.ts's arrays computed together). While one is under way, an array
 * realized is part of it; on a backend that runs products together, the products it will
 * compute are known from its start, so that those ready at once run together.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import type { Recipe, Source } from "./recipe.ts";

/** A pending array as a realization sees it (kernel/lazy.ts's `Lazy`). */
export interface Node extends Source {
  readonly backend: Backend;
  readonly recipe: Recipe<Node> | undefined;
}

/** Whether a realization is under way. */
let underWay = false;

/**
 * The pending products the realization under way will compute (set while it runs, on
 * backends that run products together): each reached from its roots through recipes.
 */
let demand: Set<Node> | undefined;

/** Whether a realization is under way (an array realized now is part of it). */
export function realizationUnderWay(): boolean {
  return underWay;
}

/**
 * The products the realization under way has still to compute, on a backend that runs products
 * together (a product computed takes itself out); undefined otherwise.
 */
export function demandedProducts(): Set<Node> | undefined {
  return demand;
}

/**
 * Runs `run`, which computes `roots`, as one realization: on a backend that runs products
 * together, the products it will compute are known first, so that those ready at once run
 * together (kernel/lazy.ts `#mates`). Inside a realization already under way, simply runs `run`.
 */
export function realizing<T>(roots: readonly Node[], run: () => T): T {
  if (underWay) return run();
  underWay = true;
  demand = roots[0]?.backend.matmuls ? productsUnder(roots) : undefined;
  try {
    return run();
  } finally {
    underWay = false;
    demand = undefined;
  }
}

/** The pending products the realization of `roots` computes: those their recipes reach. */
function productsUnder(roots: readonly Node[]): Set<Node> {
  const out = new Set<Node>();
  const seen = new Set<Node>();
  const stack = [...roots];
  while (stack.length) {
    const x = stack.pop()!;
    const r = x.recipe;
    if (seen.has(x) || x.computed || !r) continue;
    seen.add(x);
    if (r.kind === "routine") {
      if (r.routine.op === "matmul") out.add(x);
      stack.push(...r.args);
    }
    stack.push(...r.srcs);
  }
  return out;
}
