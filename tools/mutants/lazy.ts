/**
 * Mutants of the lazy graph: view composition, fusion and its bookkeeping (kernel/lazy.ts,
 * kernel/graph.ts, kernel/recipe.ts, kernel/multi.ts), and the pooling kernels it builds
 * (kernel/pool.ts, autodiff/primitives.ts). Caught by the generated lazy programs and graphs
 * (tests/property_lazy_programs_test.ts, lazy_leaks_test.ts, together_test.ts,
 * pool_node_test.ts) and by the counts of tests/kernel_test.ts and dispatch_test.ts. Tagged
 * "[kernel]" with the kernel layer's others (kernel.ts).
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const PROP = [
  "tests/property_lazy_programs_test.ts",
  "tests/property_routines_test.ts",
  "tests/property_grid_test.ts",
];
const LEAKS = ["tests/lazy_leaks_test.ts"];

/** The mutants of the lazy graph (tagged, so `--only "[kernel]"` runs them). */
export const MUTANTS: Mutant[] = ([
  // --- kernel/lazy.ts ------------------------------------------------------------------------
  {
    file: "kernel/graph.ts",
    find: "o + starts.reduce((a, v, i) => a + v * s[i], 0)",
    replace: "o + starts.reduce((a, v) => a + v, 0)",
    what: "slice moves the offset by the start index without its stride",
    tests: PROP,
  },
  {
    file: "kernel/graph.ts",
    find: "(i < lead || (x.shape[i - lead] === 1 && d !== 1) ? 0 : s[i - lead])",
    replace: "(i <= lead || (x.shape[i - lead] === 1 && d !== 1) ? 0 : s[i - lead])",
    what: "broadcastTo also zeroes the stride of the first kept axis (off by one on lead)",
    tests: PROP,
  },
  {
    file: "kernel/graph.ts",
    find: "(s, o) => [perm.map((i) => s[i]), o]",
    replace: "(s, o) => [perm.map((_, i) => s[perm.indexOf(i)]), o]",
    what: "transpose moves the strides by the inverse permutation",
    tests: PROP,
  },
  {
    file: "kernel/lazy.ts",
    find: "return { buffer: w.src.realize(), offset: w.offset, holder: w.src };",
    replace: "return { buffer: w.src.realize(), offset: 0, holder: w.src };",
    what: "a routine reading a window of a larger buffer loses the window's offset",
    tests: PROP,
  },
  {
    file: "kernel/lazy.ts",
    find: "isIdentity(r.expr, this.shape) && r.srcs[0].size === this.size",
    replace: "isIdentity(r.expr, this.shape)",
    what: "a contiguous prefix (slice at offset 0) shares its whole source buffer",
    tests: PROP,
  },
  {
    file: "kernel/graph.ts",
    find: "const host = operands.find((x) => sameShape(x.shape, shape) && hosts(x));",
    replace: "const host = operands.find((x) => hosts(x));",
    what: "an element-wise op fuses into a reduction it broadcasts (as if read whole)",
    tests: PROP,
  },
  {
    file: "kernel/graph.ts",
    find: 'r?.kind === "reduce" && !r.epilogue && r.op === op',
    replace: 'r?.kind === "reduce" && r.op === op',
    what: "a reduction of a reduction merges through the inner one's epilogue",
    tests: PROP,
  },
  {
    file: "kernel/graph.ts",
    find: "const order = [...kept, ...axes, ...r.redShape.map((_, i) => rank + i)];",
    replace: "const order = [...axes, ...kept, ...r.redShape.map((_, i) => rank + i)];",
    what: "a reduction of a reduction orders the merged loop axes reduced-first",
    tests: PROP,
  },
  {
    file: "kernel/lazy.ts",
    find: 'if (!s.computed && s.recipe?.kind !== "map") s.settle();',
    replace: 'if (!s.computed && s.recipe?.kind === "map") s.settle();',
    what: "realize settles only sources that are maps (a fused source's host is computed twice)",
    tests: PROP,
  },
  {
    file: "kernel/recipe.ts",
    find: "? { ...l, input: index[l.input], strides: at.strides, offset: at.offset }",
    replace: "? { ...l, input: index[l.input], offset: at.offset }",
    what: "a map inlined through a view keeps its own loads' strides instead of the view's",
    tests: ["tests/pool_node_test.ts"],
  },
  {
    file: "kernel/recipe.ts",
    find: "const through = !plain && readsElementwise(sr.expr, src.shape);",
    replace: "const through = !plain;",
    what: "a map that broadcasts or permutes its sources is inlined through a view as if it " +
      "read them element for element",
    tests: ["tests/lazy_leaks_test.ts"],
  },
  {
    file: "autodiff/primitives.ts",
    find: "const cells = k.kernelNode(gather, [index ?? x, dy]);",
    replace: "const cells = k.kernelNode(gather, [x, dy]);",
    what: "the max-pool backward node for overlapping windows reads x where the windows' argmax " +
      "belongs",
    tests: ["tests/pool_node_test.ts"],
  },
  {
    file: "autodiff/primitives.ts",
    find: "(v === x || spec.kh * spec.kw <= PICK_MAX)",
    replace: "true",
    what: "the max-pool JVP built as one select chain for windows of any size (too many constants)",
    tests: ["tests/pool_node_test.ts"],
  },
  {
    file: "kernel/pool.ts",
    find: "for (let k = hi - 1; k >= lo; k--) {",
    replace: "for (let k = hi - 1; k > lo; k--) {",
    what: "the max-pool JVP's select chain leaves out its first window position",
    tests: ["tests/pool_node_test.ts"],
  },
  {
    file: "kernel/graph.ts",
    find: "return t && { ...l, strides: t };",
    replace: "return { ...l, strides: t ?? l.strides };",
    what:
      "a load that does not take the host's shape is fused through a reshape with its old strides",
    tests: ["tests/kernel_test.ts", "tests/property_lazy_programs_test.ts"],
  },
  {
    file: "kernel/graph.ts",
    find:
      "  const reshaped = fuseThroughReshape(operands, shape, build);\n  if (reshaped) return reshaped;\n",
    replace: "",
    what: "an element-wise op on a reshape of a pending product does not fuse into its epilogue",
    tests: ["tests/kernel_test.ts"],
  },

  {
    file: "kernel/lazy.ts",
    find: "host's old work again.\n    if (this.#refresh()) return this.realize();\n",
    replace: "host's old work again.\n",
    what: "a consumer whose host is rebuilt while its inputs are computed runs the host's old work",
    tests: ["tests/kernel_test.ts"],
  },
  {
    file: "kernel/lazy.ts",
    find: "    if (!host || !(host.#refresh() ||",
    replace: "    if (!host || !(",
    what: "a consumer fused two levels over a rebuilt host is not rebuilt (its host first)",
    tests: ["tests/kernel_test.ts"],
  },

  {
    file: "kernel/lazy.ts",
    find:
      "    const operands = this.#detach();\n    const old = this.#recipe;\n    const plain = u.build();",
    replace:
      "    const old = this.#recipe;\n    const plain = u.build();\n    const operands = this.#detach();",
    what: "a rebuild that computes an operand is rebuilt again in its middle (re-entered #unfuse)",
    tests: ["tests/together_test.ts"],
    // Found by the fuzzer after some hundreds of generated networks.
    fuzz: 60,
  },

  // Removed (2026-12-06, ninth pass): "realize goes on with a recipe an input's computation
  // replaced" (`compute` returning true instead of `this.#recipe === r`) survived the runs of the
  // last sessions and is an equivalent mutant. An input's computation replaces the recipe only
  // when it computes the host this array fused, that is when the input reads that host: an
  // epilogue's input, never one of the host's operands. The operands come first in the recipe's
  // inputs (args, then srcs) and are computed by then (those a product computes in its loads come
  // later, but the host's computation has computed their sources); the inputs after the one that
  // rebuilt the array are epilogue inputs that the rebuilt recipe (a map over the host's buffer
  // and them) holds too. So going on computes only what the rebuilt recipe computes next, no array is
  // dropped twice, and the launch checks `this.#recipe !== r` again. The check stays in
  // kernel/lazy.ts as an early return.
  {
    file: "kernel/lazy.ts",
    find: "      s.retain();\n      try {\n" +
      '        if (r.kind === "routine" && passedAsWindow(r.routine, r.args, s)) {\n' +
      "          s.realizeWindow();\n        } else s.realize();\n      } finally {\n" +
      "        s.release();\n      }\n",
    replace: '      if (r.kind === "routine" && passedAsWindow(r.routine, r.args, s)) {\n' +
      "        s.realizeWindow();\n      } else s.realize();\n",
    what: "realize does not hold an input while computing it (a rebuild frees it mid-way)",
    tests: ["tests/together_test.ts"],
  },

  {
    file: "kernel/lazy.ts",
    find: "      if (v.#refs <= n) theirs += v.#recipe!.srcs.filter((x) => x === this).length;",
    replace: "      theirs += v.#recipe!.srcs.filter((x) => x === this).length;",
    what:
      "a view a consumer fused through counts as the consumer's even when another reader holds it (the host is computed twice)",
    tests: ["tests/fused_views_test.ts"],
  },
  {
    file: "kernel/lazy.ts",
    find: "        if (x === this) theirs++;",
    replace: "        if (x === this) theirs += 0;",
    what:
      "a host held only by its fused consumers counts as held elsewhere (computed apart, one more kernel)",
    tests: ["tests/kernel_test.ts"],
  },
  {
    file: "kernel/multi.ts",
    find:
      "  for (const x of pending) x.retain();\n  try {\n    computePending(pending);\n  } finally {\n    for (const x of pending) x.release();\n  }\n",
    replace: "  computePending(pending);\n",
    what:
      "arrays computed together are not held while they are computed (a rebuild lets an intermediate go)",
    tests: ["tests/property_programs_test.ts"],
  },
  {
    file: "kernel/multi.ts",
    find: "for (const x of pending) for (let s = next(x); s; s = next(x)) s.realize();",
    replace:
      'for (const x of pending) for (const s of [...(x.recipe?.srcs ?? [])]) if (!s.computed && s.recipe?.kind !== "map" && !pending.has(s)) s.realize();',
    what:
      "realizeTogether computes the sources of a list taken once (a source released when an earlier one rebuilt the array is used)",
    tests: LEAKS,
  },
  {
    file: "kernel/lazy.ts",
    find: "const moot = this.#recipe !== old;",
    replace: "const moot = false;",
    what:
      "a consumer computed while its rebuild ran is rebuilt over all the same (its buffer lost, an undefined recipe dropped)",
    tests: ["tests/together_test.ts"],
  },
] as Mutant[]).map((m) => ({ ...m, what: `[kernel] ${m.what}` }));
