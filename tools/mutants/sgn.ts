/**
 * Mutants of issue 23's SGN work: the one rule per option (the optimizers' and the settings
 * table's), the step's readback by name, and the demo's renamed flag. `what` starts with
 * "[i23-sgn]" so that `deno run -A tools/mutate.ts --only "[i23-sgn]"` runs exactly this list.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const OPTIONS = ["tests/sgn_options_test.ts"];

/** The mutants of the option rules, the readback and the demo's flags. */
export const MUTANTS: Mutant[] = [
  {
    file: "sgn/options.ts",
    find: "(maxOpen ? v < max : v <= max)",
    replace: "v <= max",
    what: "[i23-sgn] open upper bounds are closed (beta 1 divides by 1 - 1^t)",
    tests: OPTIONS,
  },
  {
    file: "sgn/options.ts",
    find: "export const STEP_NUMBER: Interval = { int: true, min: 1, max: 1e9 };",
    replace: "export const STEP_NUMBER: Interval = { int: true, min: 0, max: 1e9 };",
    what: "[i23-sgn] step numbers (K_CG, K) from 0, though steps count from 1",
    tests: OPTIONS,
  },
  {
    file: "sgn/readback.ts",
    find: "? Array.from({ length: v.length }, () => values[at++])",
    replace: "? Array.from({ length: v.length }, () => values[at++]).reverse()",
    what: "[i23-sgn] a list read back in reverse (the speculative line-search tries)",
    tests: ["tests/sgn_test.ts"],
  },
  {
    file: "cli.ts",
    find: 'if (args.some((a) => a === "--f" || a.startsWith("--f="))) {',
    replace: "if (false) {",
    what: "[i23-sgn] demo's old --f is an unknown flag, not a pointer to --frequency",
    tests: ["tests/sgn_train_test.ts"],
  },
];
