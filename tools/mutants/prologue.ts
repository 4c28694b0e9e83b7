/**
 * Mutants of operands computed in a product's loads (kernel/backend.ts `Prologue`): the WGSL
 * product kernel's loads and constants, the fallback that computes a prologue first, the lazy
 * graph's choice of the maps that become prologues and of their holders, and the early views of
 * a dense layer's gradients that let go of the loss's gradient. Caught by tests/prologue_test.ts
 * against float64 loops and the oracle, and by tests/dispatch_test.ts's counts.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const PROLOGUE = ["tests/prologue_test.ts"];
const COUNTS = ["tests/dispatch_test.ts"];

/** The mutants (tagged, so `--only "[prologue]"` runs them). */
export const MUTANTS: Mutant[] = ([
  {
    file: "wgsl/matmul_source.ts",
    find: "`pro${x}${N.tag}(${at}, 0.0)`",
    replace: "`pro${x}${N.tag}(${at} + 1u, 0.0)`",
    what: "a prologue is evaluated one element on",
    tests: PROLOGUE,
  },
  {
    file: "wgsl/matmul.ts",
    find: "    slot += src.consts.length;\n",
    replace: "",
    what: "B's prologue reads its constants where A's are",
    tests: PROLOGUE,
  },
  {
    file: "wgsl/matmul.ts",
    find: "if (batch > 1 || consts > PRODUCT_CONSTS) {",
    replace: "if (batch > 1) {",
    what: "a prologue whose constants overflow the parameter block runs in the product",
    tests: PROLOGUE,
  },
  {
    file: "wgsl/matmul.ts",
    find: "  for (const x of p.temps ?? []) rt.release(x);\n}\n\n/**\n * The storage buffers",
    replace: "}\n\n/**\n * The storage buffers",
    what: "a prologue computed first for a batched product is never given back",
    tests: PROLOGUE,
  },
  {
    file: "kernel/prologues.ts",
    find: "&& holders(a) === held.filter((b) => b === a).length",
    replace: "&& holders(a) >= 1",
    what: "a map someone else holds is computed in the products' loads (and again on its own)",
    tests: PROLOGUE,
  },
  {
    file: "kernel/prologues.ts",
    find: "if (binds(recipe) <= MAX_INPUTS + 1) continue;",
    replace: "continue;",
    what: "a prologue's inputs may take a product past the buffers one kernel binds",
    tests: PROLOGUE,
  },
  {
    file: "kernel/lazy.ts",
    find: '      out.push(...hr.srcs, ...(hr.kind === "routine" ? hr.args : []));\n',
    replace: "",
    what: "a host a product fused, held by nothing else, still counts as a reader of its operands",
    tests: COUNTS,
  },
  {
    file: "kernel/multi.ts",
    find: "    for (const p of pairs) split(p, false);\n",
    replace: "",
    what: "a dense layer's gradients hold the loss's gradient while their product runs",
    tests: COUNTS,
  },
  {
    file: "wgsl/webgpu.ts",
    find: "return this.matmuls !== undefined && this.mapsInLoads;",
    replace: "return false;",
    what: "WebGPU takes no prologue",
    tests: [...PROLOGUE, ...COUNTS],
  },
  {
    file: "wgsl/webgpu.ts",
    find: "return this.matmuls !== undefined && this.mapsInLoads;",
    replace: "return this.matmuls !== undefined;",
    what: "mapsInLoads = false leaves maps in the products' loads",
    tests: PROLOGUE,
  },
  {
    file: "kernel/lazy.ts",
    find: 'const fit = !a.computed && ar?.kind === "map" && !a.#unfused &&',
    replace: 'const fit = !a.computed && ar?.kind === "map" && !a.#unfused && !a.#onRead &&',
    what: "a map made with other arrays (a transformation's result) is never a prologue",
    tests: COUNTS,
  },
] as Mutant[]).map((m) => ({ ...m, what: `[prologue] ${m.what}` }));
