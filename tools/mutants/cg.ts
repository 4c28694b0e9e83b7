/**
 * Mutants of CG's Hessian-free refinements (warm start, relative stop, backtracking) and of
 * their options and settings rows; tests/cg_options_test.ts and tests/cg_sgn_steps_test.ts must
 * kill each. And of the replayed evaluations that backtracking and the line search make
 * (sgn/objective.ts), for tests/ls_replay_test.ts.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const T = ["tests/cg_options_test.ts", "tests/cg_sgn_steps_test.ts"];

/** The mutants of sgn/cg.ts, the CG part of sgn/sgn.ts, and the options' checks and rows. */
export const MUTANTS: Mutant[] = [
  // --- relative stop -------------------------------------------------------------------------
  {
    file: "sgn/cg.ts",
    find: "return Math.max(CG_RELATIVE.minWindow, Math.ceil(i / CG_RELATIVE.windowDivisor));",
    replace: "return Math.ceil(i / CG_RELATIVE.windowDivisor);",
    what: "[cg] the relative rule's window k = ceil(0.1 i) without the max(10, ...)",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "eps: 5e-4 }",
    replace: "eps: 5e-3 }",
    what: "[cg] the relative rule's eps 5e-3 instead of Martens' 5e-4",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "(phi - phis[k - w]) / phi",
    replace: "(phi - phis[k - w + 1]) / phi",
    what: "[cg] host form: the relative rule looks back k - 1 iterations instead of k",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "const before = relative && i > w ? phis.get(i - w) : undefined;",
    replace: "const before = relative && i > w ? phis.get(i - w + 1) : undefined;",
    what: "[cg] device form: the relative rule looks back k - 1 iterations instead of k",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "const from = i + 1 - relativeWindow(i + 1);",
    replace: "const from = i + 2 - relativeWindow(i + 1);",
    what: "[cg] device form: the phi the next window needs is freed",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "if (k > w && phi < 0 &&",
    replace: "if (k > w &&",
    what: "[cg] host form: the relative rule without phi(x_i) < 0",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "const met = o.mul(o.greater(0, phi), o.greater(w * CG_RELATIVE.eps, progress));",
    replace: "const met = o.greater(w * CG_RELATIVE.eps, progress);",
    what: "[cg] device form: the relative rule without phi(x_i) < 0",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "active = o.sub(running, stop);",
    replace: "active = running;",
    what: "[cg] device form: the relative rule's stop does not freeze the iterate",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "relStop = o.add(cur.relStop!, stop);",
    replace: "relStop = cur.relStop;",
    what: "[cg] device form: the record never says the relative rule stopped CG",
    tests: T,
  },
  // --- warm start ----------------------------------------------------------------------------
  {
    file: "sgn/cg.ts",
    find: "const d = warmStart ? o.mul(warmStart.from, warmStart.decay) : o.zerosLike(b);",
    replace: "const d = warmStart ? o.mul(warmStart.from, 1) : o.zerosLike(b);",
    what: "[cg] device form: the warm start without its decay",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "? hold(scope(() => o.mul(warmStart.from, warmStart.decay)).realize())",
    replace: "? hold(scope(() => o.mul(warmStart.from, 1)).realize())",
    what: "[cg] host form: the warm start without its decay",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "const r = warmStart ? o.add(apply(d), b) : b;",
    replace: "const r = b;",
    what: "[cg] device form: a warm start keeps r0 = b instead of A d0 + b",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "? hold(scope(() => o.add(apply(d0), b)).realize())",
    replace: "? hold(copyT(b))",
    what: "[cg] host form: a warm start keeps r0 = b instead of A d0 + b",
    tests: T,
  },
  // --- backtracking --------------------------------------------------------------------------
  {
    file: "sgn/cg.ts",
    find: "export const CG_SAVE_GROWTH = 1.3;",
    replace: "export const CG_SAVE_GROWTH = 1.5;",
    what: "[cg] iterates kept at ceil(1.5^j) instead of ceil(1.3^j)",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "    chosen = i;",
    replace: "    chosen = i + 1;",
    what: "[cg] backtracking takes the iterate after the best one",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: "if (!(t.loss < tries[tries.length - 2].loss)) break;",
    replace: "if (t.loss > tries[tries.length - 2].loss) break;",
    what: "[cg] backtracking goes on through ties and NaN losses",
    tests: T,
  },
  {
    file: "sgn/cg.ts",
    find: ".filter((c, i) => c.iter < iters || i === all.length - 1);",
    replace: ".filter(() => true);",
    what: "[cg] device form: backtracking counts the copies of the last iterate as candidates",
    tests: T,
  },
  {
    file: "sgn/sgn.ts",
    find: "const predicted = o.mul(o.dot(o.add(dir.r, grad.g), dir.d), 0.5);",
    replace: "const predicted = o.mul(o.dot(o.add(cg.r, grad.g), dir.d), 0.5);",
    what:
      "[cg] the trust region's prediction uses the last iterate's residual, not the chosen one's",
    tests: T,
  },
  {
    file: "sgn/sgn.ts",
    find: "evaluates && opt.alpha === 1 ? [chosen.at] : [];",
    replace: "evaluates && opt.alpha === 1 ? [chosen.tries[0]] : [];",
    what: "[cg] the line search's first try reuses the last iterate's loss, not the chosen one's",
    tests: T,
  },
  {
    file: "sgn/sgn.ts",
    find: "(d, more) => s.objective.at(axpyT(1, d, grad.theta), more),",
    replace: "(d, more) => s.objective.at(axpyT(opt.alpha, d, grad.theta), more),",
    what: "[cg] backtracking evaluates theta + ALPHA d_i instead of theta + d_i",
    tests: T,
  },
  // --- options and settings ------------------------------------------------------------------
  {
    file: "sgn/options.ts",
    find: 'rule: interval({ min: 0, max: 1, noun: "a decay", note: "0: off" }),',
    replace: 'rule: interval({ min: 0, max: 1, maxOpen: true, noun: "a decay", note: "0: off" }),',
    what: "[cg] cgWarmStart refuses the decay 1",
    tests: T,
  },
  {
    file: "train/settings.ts",
    find: 'if (!row.option || (row.kind !== "int" && row.kind !== "number")) return [name, row];',
    replace: 'if (!row.option || row.kind !== "int") return [name, row];',
    what: "[cg] --cg_warm_start (and every number row) loses the optimizer's bounds",
    tests: T,
  },
  {
    file: "train/settings.ts",
    find:
      "if (key && !(spec(name).omitDefault && s[name] === spec(name).default)) out[key] = s[name];",
    replace: "if (key) out[key] = s[name];",
    what: "[cg] config.json of a default run gains the new CG keys",
    tests: T,
  },
  // --- the line search's evaluations recorded and replayed (sgn/objective.ts) -----------------
  {
    file: "sgn/objective.ts",
    find: "replayable((p: Tensor) => scope(() => this.#plain(p)))",
    replace: "replayable((p: Tensor) => this.#plain(p))",
    what: "[cg] the recording is realized before the evaluation's scope ends: the model's maps " +
      "no longer fuse into its products, so replays run more launches than plain tries",
    tests: ["tests/ls_replay_test.ts"],
  },
  {
    file: "sgn/objective.ts",
    find: "if (!tryReplay.enabled || (first && !more) || p.backend.matmuls) return this.#plain(p);",
    replace: "if (!tryReplay.enabled || p.backend.matmuls) return this.#plain(p);",
    what: "[cg] a step's only evaluation is recorded too: its try is realized apart from the " +
      "step's scalars (one WebGPU dispatch more a W1 step) for no replay",
    tests: ["tests/ls_replay_test.ts", "tests/dispatch_test.ts"],
  },
  {
    file: "sgn/objective.ts",
    find: "|| (first && !more) || p.backend.matmuls) return",
    replace: "|| (first && !more)) return",
    what: "[cg] tries replay where products run together: a hardware GPU's tries no longer pair " +
      "their products (more dispatches)",
    tests: ["tests/ls_replay_test.ts"],
  },
  {
    file: "sgn/objective.ts",
    find: "const first = this.#calls++ === 0;",
    replace: "const first = this.#calls === 0;",
    what: "[cg] the step's second evaluation is not recorded: host-mode tries never replay",
    tests: ["tests/ls_replay_test.ts"],
  },
  {
    file: "sgn/sgn.ts",
    find: "      s.objective.dispose();\n",
    replace: "\n",
    what: "[cg] a step's recording of its evaluations is never freed (it holds the batch's values)",
    tests: ["tests/ls_replay_test.ts"],
  },
];
