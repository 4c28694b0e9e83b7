/**
 * Which operands of the products about to run together are computed in the products' loads
 * (`Backend.prologues`) rather than on their own: the choice, over the graph's arrays as
 * kernel/recipe.ts sees them. kernel/lazy.ts finds the candidates (pending element-wise maps
 * among the operands) and what each product holds, and computes those not chosen.
 *
 * @module
 */

import { MAX_INPUTS, type Recipe, type Source } from "./recipe.ts";

/** A product about to run, as the choice sees it. */
export interface ProductToRun {
  /** Its recipe (a routine: its operands and its epilogue's inputs). */
  readonly recipe: Recipe & { kind: "routine" };
  /** Operands that may be computed in its loads (pending element-wise maps). */
  readonly candidates: readonly Source[];
  /**
   * What it lets go of once it has run, one entry per reference: its operands, and what it
   * holds through a fusion (kernel/lazy.ts `#fusedHolds`).
   */
  readonly held: readonly Source[];
}

/**
 * The candidates the products compute in their loads: those whose sources are computed and that
 * the group alone holds (`holders(a)` references in all; one someone else holds is computed
 * anyway, and the products read it), so long as each product binds at most
 * {@link MAX_INPUTS} + 1 buffers: its output, its stored operands, its prologues' and its
 * epilogue's inputs.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "../cpu/oracle.ts";
 * import { Lazy } from "./lazy.ts";
 * import { routine, unary } from "./graph.ts";
 * import { choosePrologues } from "./prologues.ts";
 * const cpu = new CpuBackend();
 * const x = Lazy.of(cpu, cpu.upload(new Float64Array(6)), [2, 3]);
 * const g = unary("tanh", x); // pending: a map over x
 * const p = routine({ op: "matmul", spec: { m: 2, k: 3, n: 2, transB: true } }, [g, x], [2, 2]);
 * g.release();
 * const r = p.recipe!;
 * if (r.kind === "routine") {
 *   const chosen = choosePrologues([{ recipe: r, candidates: [r.args[0]], held: r.args }], () => 1);
 *   console.log(chosen.has(r.args[0])); // true: only the product holds tanh(x)
 * }
 * for (const l of [x, p]) l.release();
 * ```
 */
export function choosePrologues(
  group: readonly ProductToRun[],
  holders: (a: Source) => number,
): Set<Source> {
  const held = group.flatMap((p) => p.held);
  const srcsOf = (a: Source) => a.recipe!.srcs;
  const chosen = new Set(
    group.flatMap((p) => p.candidates).filter((a) =>
      srcsOf(a).every((s) => s.computed) && holders(a) === held.filter((b) => b === a).length
    ),
  );
  const binds = (r: Recipe & { kind: "routine" }) =>
    new Set([...r.args.flatMap((a) => (chosen.has(a) ? srcsOf(a) : [a])), ...r.srcs]).size + 1;
  // Taking a prologue back may take a product over the limit (a map of no input binds nothing):
  // until none is over.
  for (let changed = true; changed;) {
    changed = false;
    for (const { recipe } of group) {
      if (binds(recipe) <= MAX_INPUTS + 1) continue;
      for (const a of recipe.args) changed = chosen.delete(a) || changed;
    }
  }
  return chosen;
}
