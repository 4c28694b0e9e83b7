/**
 * The results.json schema, one definition for the writer (the training loop and run folders)
 * and the reader (the report): the seed's keys, ours (epoch_time, diagnostics), and the run's
 * status; and the fields of config.json that say what a run was.
 *
 * The types say what sgn writes. The tables beside them ({@link RESULTS_SCHEMA},
 * {@link CONFIG_SCHEMA}), typed over the same keys, say how each field is checked, when sgn writes
 * it, and how a reader takes it when it is absent or malformed: the seed's files and older runs
 * lack fields sgn writes today (status, epoch_time), so the reader is more lenient than the
 * writer, and each table row says where. {@link checkResults} and {@link checkConfig} apply them.
 *
 * @module
 */

import { showValue } from "../errors.ts";

/** Where a run stands, as results.json's `status` says (absent: the seed's files: finished). */
export type RunStatus = "running" | "finished" | "diverged" | "interrupted";

/** Every run status, in the order the report lists them. */
export const RUN_STATUSES: readonly RunStatus[] = [
  "finished",
  "diverged",
  "interrupted",
  "running",
];

/**
 * The seed's results.json: per-epoch lists (avg_loss, acc and test_acc, or test_loss), totals
 * (tot_time in seconds, tot_iterations, and tot_epochs for classification, as the seed writes
 * them), rho and alpha per step for SGN; plus `epoch_time`, the cumulative seconds at the end of
 * each epoch (ours: for plotting against time). results.json adds `status` and, for a run that
 * stopped early, `status_reason` ({@link ResultsFile}).
 */
export interface ResultsRecord {
  /** Mean training loss of each epoch (over its mini-batches). */
  avg_loss: number[];
  /** Mean training accuracy of each epoch (classification only). */
  acc?: number[];
  /** Test accuracy after each epoch (classification with a test set). */
  test_acc?: number[];
  /** Test loss after each epoch (regression with a test set). */
  test_loss?: number[];
  /** Seconds from the start of training to the end of the last epoch recorded. */
  tot_time: number;
  /** Optimizer steps taken. */
  tot_iterations: number;
  /** Epochs completed (classification only, as the seed writes it). */
  tot_epochs?: number;
  /** The damping rho each SGN step used (SGN only). */
  rho?: number[];
  /** The step size each SGN step took after its line search (SGN only). */
  alpha?: number[];
  /** Cumulative seconds at the end of each epoch (time spent on `diagnostics` left out). */
  epoch_time: number[];
  /** Curvature diagnostics, when the run measured them (`train --diagnose`). */
  diagnostics?: DiagnosticsRecord;
}

/**
 * The curvature diagnostics of a run (`train --diagnose EVERY`, `train({ diagnose })`): one
 * entry per measured step, every list as long as `step`. Each is measured on the step's
 * mini-batch at the parameters the step starts from, i.e. on the Gauss-Newton matrix G that the
 * step's conjugate gradient uses. A value that could not be measured (its products were not
 * finite), or the condition number of an undamped singular system, is null.
 */
export interface DiagnosticsRecord {
  /** The optimizer step measured, counted from 1 over the run. */
  step: number[];
  /** Its epoch, counted from 1. */
  epoch: number[];
  /** The largest eigenvalue of G (Lanczos). */
  top_eigenvalue: (number | null)[];
  /**
   * The smallest eigenvalue of G: 0 when the batch has fewer outputs than the model parameters
   * (G is then singular), else Lanczos's smallest Ritz value (an upper bound).
   */
  bottom_eigenvalue: (number | null)[];
  /** trace G (Hutchinson). */
  trace: (number | null)[];
  /** The standard error of `trace` (null with one probe). */
  trace_std_error: (number | null)[];
  /** The damping rho of the condition number: the SGN step's, or the SGN default for others. */
  rho: number[];
  /** (top_eigenvalue + rho) / (bottom_eigenvalue + rho): the condition of G + rho I. */
  condition: (number | null)[];
}

/** results.json as sgn writes it: the record plus where the run stands. */
export interface ResultsFile extends ResultsRecord {
  /** Where the run stands; rewritten after every epoch. */
  status: RunStatus;
  /** Why a run diverged or was interrupted. */
  status_reason?: string;
}

/**
 * results.json as a reader takes it (see {@link RESULTS_SCHEMA}): only avg_loss is certain; the
 * seed's files lack status and epoch_time, and one of epoch_time and tot_time is there.
 */
export type ResultsRead = Partial<ResultsFile> & Pick<ResultsFile, "avg_loss">;

/**
 * The fields of config.json that say what a run was, by their path in the file: `config.SOLVER`
 * is SOLVER in the seed's block `config`. sgn writes them from the settings table
 * (train/settings.ts); the seed's files hold the block and, for MLPs, `layers`.
 */
export interface ConfigFields {
  /** The optimizer: "SGN", "SGD" or "Adam". */
  "config.SOLVER": string;
  /** SGN's CG iterations: the setting an SGN run folder is named after. */
  "config.MAX_CG_ITERS"?: number;
  /** SGD's and Adam's learning rate: the setting their run folders are named after. */
  "config.LR0"?: number;
  /** The mini-batch size. */
  "config.BATCH_SIZE": number;
  /** The run's random seed. */
  seed: number;
  /** The data set, e.g. "mnist". */
  dataset: string;
  /** The MLP's hidden layer sizes. */
  layers?: number[];
  /** The conv net's architecture, e.g. "architecture_4". */
  architecture?: string;
  /** "float32" or "float64". */
  dtype: string;
}

// --- checks of one value ------------------------------------------------------------------

/** The lengths lists are measured against. */
export interface Counts {
  /** Epochs: the entries of avg_loss. */
  epochs: number;
  /** Optimizer steps: tot_iterations, when it is a count. */
  steps?: number;
  /** Measured steps: the entries of diagnostics.step. */
  measured?: number;
}

/** What gives each count, as messages say it. */
const COUNTED_BY: Record<keyof Counts, string> = {
  epochs: "avg_loss has",
  steps: "tot_iterations is",
  measured: "diagnostics.step has",
};

/**
 * A check of one value: why `value` (called `name` in the message) is not a `T`, or undefined
 * when it is one. `type` is never set: it ties the check to the type it checks, so that a table
 * typed over a record's keys takes only checks of each field's type.
 */
export type Check<T> = CheckFn & { readonly type?: (t: T) => T };

/** A check of one value, of no type in particular: why `value` is not what it should be. */
export type CheckFn = (value: unknown, name: string, counts: Counts) => string | undefined;

/** A rule for each entry of a list of numbers, and what such an entry is in words. */
interface Entry {
  what: (c: Counts) => string;
  ok: (x: number, before: number | undefined, c: Counts) => boolean;
}

const ENTRY = {
  secondsSoFar: {
    what: () => "a cumulative time in seconds",
    ok: (x, before) => Number.isFinite(x) && x >= 0 && (before === undefined || x >= before),
  },
  step: {
    what: () => "a step number (increasing positive integers)",
    ok: (x, before) => Number.isInteger(x) && x >= 1 && (before === undefined || x > before),
  },
  epoch: {
    what: (c) => `an epoch from 1 to ${c.epochs} (in order)`,
    ok: (x, before, c) =>
      Number.isInteger(x) && x >= 1 && x <= c.epochs && (before === undefined || x >= before),
  },
  damping: { what: () => "a damping >= 0", ok: (x) => Number.isFinite(x) && x >= 0 },
} satisfies Record<string, Entry>;

/** A value as a message about a file shows it: lists and objects by kind, long strings cut. */
function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 20 ? v.slice(0, 20) + "..." : v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object" && v !== null) return "an object";
  return showValue(v);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * A list of numbers (NaN and ±Infinity allowed: a diverged run's), as long as `per` counts when
 * that count is known, each entry following `entry`; nulls allowed when `nullable`.
 */
function numbers(
  o: { per?: keyof Counts; entry?: Entry; nullable: true },
): Check<(number | null)[]>;
function numbers(o?: { per?: keyof Counts; entry?: Entry }): Check<number[]>;
function numbers(
  o: { per?: keyof Counts; entry?: Entry; nullable?: boolean } = {},
): CheckFn {
  return (v, name, c) => {
    if (!Array.isArray(v)) return `${name} is ${describe(v)}, not a list of numbers`;
    const want = o.per === undefined ? undefined : c[o.per];
    if (want !== undefined && v.length !== want) {
      return `${name} has ${v.length} entries but ${COUNTED_BY[o.per!]} ${want}`;
    }
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (x === null && o.nullable) continue;
      if (typeof x !== "number") return `${name}[${i}] is ${describe(x)}, not a number`;
      if (o.entry && !o.entry.ok(x, i > 0 ? v[i - 1] : undefined, c)) {
        return `${name}[${i}] = ${describe(x)}: not ${o.entry.what(c)}`;
      }
    }
    return undefined;
  };
}

/** A number that `ok` accepts, `what` in words. */
function number(what: string, ok: (x: number) => boolean): Check<number> {
  return (v, name) =>
    typeof v === "number" && ok(v) ? undefined : `${name} is ${describe(v)}, not ${what}`;
}

function isCount(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

const count = number("a count (an integer >= 0)", isCount);

/** The number of epochs, which avg_loss gives. */
const epochCount: Check<number> = (v, name, c) =>
  v === c.epochs ? undefined : `${name} is ${describe(v)} but avg_loss has ${c.epochs} entries`;

const text: Check<string> = (v, name) =>
  typeof v === "string" ? undefined : `${name} is ${describe(v)}, not a string`;

/** One of `values`; `hint` says why another may be met. */
function oneOf<T extends string>(values: readonly T[], hint: string): Check<T> {
  return (v, name) =>
    values.includes(v as T)
      ? undefined
      : `${name} is ${describe(v)}, not one of ${values.map((x) => `"${x}"`).join(", ")} (${hint})`;
}

/** How each list of a {@link DiagnosticsRecord} is checked, in the order results.json has them. */
const DIAGNOSTICS_SCHEMA: {
  readonly [K in keyof DiagnosticsRecord]-?: Check<DiagnosticsRecord[K]>;
} = {
  step: numbers({ entry: ENTRY.step }),
  epoch: numbers({ per: "measured", entry: ENTRY.epoch }),
  top_eigenvalue: numbers({ per: "measured", nullable: true }),
  bottom_eigenvalue: numbers({ per: "measured", nullable: true }),
  trace: numbers({ per: "measured", nullable: true }),
  trace_std_error: numbers({ per: "measured", nullable: true }),
  rho: numbers({ per: "measured", entry: ENTRY.damping }),
  condition: numbers({ per: "measured", nullable: true }),
};

/** The lists of a {@link DiagnosticsRecord}, in the order results.json writes them. */
export const DIAGNOSTICS_KEYS = Object.keys(DIAGNOSTICS_SCHEMA) as readonly (
  keyof DiagnosticsRecord
)[];

/** An object of equally long lists, one per {@link DIAGNOSTICS_KEYS}, each checked by its row. */
const diagnostics: Check<DiagnosticsRecord> = (v, name, c) => {
  if (!isObject(v)) return `${name} is ${describe(v)}, not an object of lists`;
  const counts = { ...c, measured: Array.isArray(v.step) ? v.step.length : undefined };
  for (const key of DIAGNOSTICS_KEYS) {
    if (v[key] === undefined) return `${name}.${key} is missing`;
    const why = DIAGNOSTICS_SCHEMA[key](v[key], `${name}.${key}`, counts);
    if (why !== undefined) return why;
  }
  return undefined;
};

// --- the tables -----------------------------------------------------------------------------

/** One field of a file: its check, when sgn writes it, and how a reader takes it. */
export interface Field<T, K extends string = string> {
  /** What it holds, in a few words (a message about its absence says it). */
  about: string;
  /** Its check. */
  check: Check<NonNullable<T>>;
  /**
   * "always" when every file sgn writes has it (its type has it required); else when sgn
   * writes it, in words.
   */
  written: undefined extends T ? string : "always";
  /**
   * When a reader needs it: "required" (without it the file is not a run's), `orElse`: one of
   * it and that other field is required, or (absent) optional.
   */
  read?: "required" | { orElse: K };
  /** A malformed value when reading: "skip" the file, or (absent) ignore the field, with a note. */
  malformed?: "skip";
}

/** A field table: a row per key of the record `F`, in the order they are checked. */
export type Schema<F> = { readonly [K in keyof F]-?: Field<F[K], Extract<keyof F, string>> };

/**
 * results.json, a row per field. Reading is lenient where the seed's files and older runs
 * require it: `status` is absent in the seed's files (they are finished), `epoch_time` too (its
 * `tot_time` is then spread evenly over the epochs), and the fields the report does not draw are
 * left out with a note when malformed, rather than losing the run.
 *
 * @example
 * ```ts
 * import { RESULTS_SCHEMA } from "./results.ts";
 * console.log(RESULTS_SCHEMA.epoch_time.read); // { orElse: "tot_time" }
 * ```
 */
export const RESULTS_SCHEMA: Schema<ResultsFile> = {
  // Absent in the seed's files, which are finished.
  status: {
    about: "where the run stands",
    check: oneOf(RUN_STATUSES, "a results.json written by a newer sgn?"),
    written: "always",
    malformed: "skip",
  },
  status_reason: { about: "why the run stopped", check: text, written: "when it stopped early" },
  avg_loss: {
    about: "the per-epoch train loss",
    check: numbers(),
    written: "always",
    read: "required",
    malformed: "skip",
  },
  acc: {
    about: "the train accuracy",
    check: numbers({ per: "epochs" }),
    written: "classification",
  },
  test_acc: {
    about: "the test accuracy after each epoch",
    check: numbers({ per: "epochs" }),
    written: "for classification with a test set",
    malformed: "skip",
  },
  test_loss: {
    about: "the test loss after each epoch",
    check: numbers({ per: "epochs" }),
    written: "for regression with a test set",
    malformed: "skip",
  },
  // The seed's files have only tot_time: the epochs are then taken as equally long.
  epoch_time: {
    about: "when each epoch ended, in seconds",
    check: numbers({ per: "epochs", entry: ENTRY.secondsSoFar }),
    written: "always",
    read: { orElse: "tot_time" },
    malformed: "skip",
  },
  tot_time: {
    about: "the seconds of training",
    check: number("a number of seconds", (x) => Number.isFinite(x) && x >= 0),
    written: "always",
    read: { orElse: "epoch_time" },
    malformed: "skip",
  },
  tot_epochs: { about: "the epochs done", check: epochCount, written: "for classification" },
  tot_iterations: { about: "the optimizer steps taken", check: count, written: "always" },
  rho: { about: "the damping of each step", check: numbers({ per: "steps" }), written: "for SGN" },
  alpha: {
    about: "the step size of each step",
    check: numbers({ per: "steps" }),
    written: "for SGN",
  },
  diagnostics: {
    about: "the curvature diagnostics",
    check: diagnostics,
    written: "with --diagnose",
    malformed: "skip",
  },
};

/**
 * config.json's fields that name a run, a row each. Every one is optional when reading (the
 * seed's files have no data set, seed or precision), and a malformed one is left out with a
 * note: config.json only names the run.
 *
 * @example
 * ```ts
 * import { CONFIG_SCHEMA } from "./results.ts";
 * console.log(CONFIG_SCHEMA.dataset.written); // always
 * ```
 */
export const CONFIG_SCHEMA: Schema<ConfigFields> = {
  "config.SOLVER": { about: "the optimizer", check: text, written: "always" },
  "config.MAX_CG_ITERS": { about: "SGN's CG iterations", check: count, written: "for SGN" },
  "config.LR0": {
    about: "the learning rate",
    check: number("a number", Number.isFinite),
    written: "for SGD and Adam",
  },
  "config.BATCH_SIZE": { about: "the mini-batch size", check: count, written: "always" },
  seed: { about: "the seed", check: count, written: "always" },
  dataset: { about: "the data set", check: text, written: "always" },
  layers: { about: "the hidden layer sizes", check: numbers(), written: "for MLPs" },
  architecture: { about: "the conv net", check: text, written: "for conv nets" },
  dtype: { about: "the precision", check: text, written: "always" },
};

// --- reading a file -------------------------------------------------------------------------

/** Something wrong with a field of a file, found by {@link checkResults} or {@link checkConfig}. */
export interface Issue {
  /** What is wrong, naming the field, e.g. `avg_loss[1] is "x", not a number`. */
  reason: string;
  /** True when the file cannot be used; false when only the field is left out ("ignored"). */
  fatal: boolean;
}

/** How a file is checked: as a reader takes it, or as sgn must write it (every row strictly). */
export type CheckMode = "read" | "written";

/** The value at a dotted path, e.g. "config.SOLVER". */
function at(obj: Record<string, unknown>, path: string): unknown {
  let v: unknown = obj;
  for (const part of path.split(".")) v = isObject(v) ? v[part] : undefined;
  return v;
}

/** Checks `json` row by row; stops at the first fatal issue (then `value` is undefined). */
function checkFields<F>(
  json: unknown,
  schema: Schema<F>,
  mode: CheckMode,
  counts: Counts,
  what: string,
): { value?: Partial<F>; issues: Issue[] } {
  if (!isObject(json)) {
    return {
      issues: [{ reason: `holds ${describe(json)}, not an object of ${what}`, fatal: true }],
    };
  }
  const value: Record<string, unknown> = {};
  const issues: Issue[] = [];
  const rows = Object.entries(schema) as [string, Field<unknown>][];
  for (const [key, field] of rows) {
    const v = at(json, key);
    if (v === undefined) {
      const other = typeof field.read === "object" ? field.read.orElse : undefined;
      const missing = mode === "written"
        ? field.written === "always"
        : field.read === "required" || (other !== undefined && at(json, other) === undefined);
      if (!missing) continue;
      const reason = mode === "read" && other !== undefined
        ? `neither ${key} nor ${other} (${field.about})`
        : `no ${key} (${field.about})`;
      return { issues: [...issues, { reason, fatal: true }] };
    }
    const why = field.check(v, key, counts);
    if (why === undefined) value[key] = v;
    else if (mode === "read" && field.malformed !== "skip") {
      issues.push({ reason: `${why}: ignored`, fatal: false });
    } else return { issues: [...issues, { reason: why, fatal: true }] };
  }
  return { value: value as Partial<F>, issues };
}

/**
 * Checks a parsed results.json against {@link RESULTS_SCHEMA}: `results` holds the fields that
 * passed (undefined when the file cannot be used), `issues` what was wrong, the fatal one last.
 * Mode "written" checks a file as sgn must write it: every row strictly, and every field it
 * always writes present.
 *
 * @example
 * ```ts
 * import { checkResults } from "./results.ts";
 * const r = checkResults({ avg_loss: [2, 1], tot_time: 4, status_reason: 3 });
 * console.log(r.results?.tot_time, r.issues[0].reason); // 4 status_reason is 3, not a string: ignored
 * const written = checkResults({ avg_loss: [2, 1], tot_time: 4, status: "finished" }, "written");
 * console.log(written.issues[0].reason);
 * // no epoch_time (when each epoch ended, in seconds)
 * ```
 */
export function checkResults(
  json: unknown,
  mode: CheckMode = "read",
): { results?: ResultsRead; issues: Issue[] } {
  const r = isObject(json) ? json : {};
  const counts: Counts = {
    epochs: Array.isArray(r.avg_loss) ? r.avg_loss.length : 0,
    steps: isCount(r.tot_iterations) ? r.tot_iterations : undefined,
  };
  const { value, issues } = checkFields(json, RESULTS_SCHEMA, mode, counts, "results");
  return { results: value as ResultsRead | undefined, issues };
}

/**
 * Checks a parsed config.json against {@link CONFIG_SCHEMA}: `config` holds the fields that
 * passed, by path (undefined when the file is not an object), `issues` the fields left out.
 *
 * @example
 * ```ts
 * import { checkConfig } from "./results.ts";
 * const c = checkConfig({ config: { SOLVER: "SGN", MAX_CG_ITERS: 3 }, seed: "one" });
 * console.log(c.config?.["config.SOLVER"], c.issues[0].reason);
 * // SGN seed is "one", not a count (an integer >= 0): ignored
 * ```
 */
export function checkConfig(
  json: unknown,
  mode: CheckMode = "read",
): { config?: Partial<ConfigFields>; issues: Issue[] } {
  const { value, issues } = checkFields(json, CONFIG_SCHEMA, mode, { epochs: 0 }, "settings");
  return { config: value, issues };
}

const NAN_MARK = "__sgn_NaN__";

/**
 * JSON.parse that also takes the bare NaN, Infinity and -Infinity Python's json module writes
 * (the seed's diverged runs have them): sgn's writer never writes them (JSON has no NaN), but its
 * readers take the seed's files.
 *
 * @example
 * ```ts
 * import { parseLenientJson } from "./results.ts";
 * console.log(parseLenientJson('{"avg_loss": [1, NaN, -Infinity], "s": "NaN"}'));
 * // { avg_loss: [ 1, NaN, -Infinity ], s: "NaN" }
 * ```
 */
export function parseLenientJson(text: string): unknown {
  const fixed = text.replace(
    /"(?:[^"\\]|\\.)*"|-?\bInfinity\b|\bNaN\b/g,
    (m) =>
      m.startsWith('"')
        ? m
        : m === "NaN"
        ? `"${NAN_MARK}"`
        : m.startsWith("-")
        ? "-1e999"
        : "1e999",
  );
  return JSON.parse(fixed, (_key, v) => v === NAN_MARK ? NaN : v);
}
