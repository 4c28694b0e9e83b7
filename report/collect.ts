/**
 * Reading results folders for the report: finding runs (folders, globs, recursion), validating
 * the seed's results.json and config.json, grouping the seeds of one configuration, and the
 * per-epoch statistics over them. Nothing here prints: every problem comes back as a
 * {@link Problem} naming its file, so one bad run never hides the others.
 *
 * Input is not trusted. Symlinked folders are followed, but each real folder is entered at most
 * once per walk (tracked by `Deno.realPath`), so a symlink loop such as `a/loop -> ..` ends. Only
 * regular files are read (a FIFO, a device such as /dev/zero, a folder named results.json is a
 * problem, never opened), and no larger than {@link INPUT_LIMITS}, checked before reading and
 * again while reading, so a file that grows meanwhile is still cut off.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import { basename, dirname, join, resolve } from "node:path";
import type { Band, Metric, RunStatus } from "./types.ts";

export type { RunStatus } from "./types.ts";
import { DIAGNOSTICS_KEYS, type DiagnosticsRecord, RUN_STATUSES } from "../train/results.ts";
export { RUN_STATUSES };
export type { DiagnosticsRecord } from "../train/results.ts";

/** The largest input files the report reads, in bytes. */
export interface InputLimits {
  /** results.json */
  resultsJson: number;
  /** config.json */
  configJson: number;
}

/**
 * The size limits of the input files: a results.json of 600 epochs is some tens of KiB and a
 * config.json under one, so a larger file is not a run's (and is not read into memory).
 *
 * @example
 * ```ts
 * import { INPUT_LIMITS } from "./collect.ts";
 * console.log(INPUT_LIMITS.resultsJson / 2 ** 20); // 64
 * ```
 */
export const INPUT_LIMITS: Readonly<InputLimits> = Object.freeze({
  resultsJson: 64 * 2 ** 20,
  configJson: 2 ** 20,
});

/** Where runs come from: a folder, a run folder, a results.json, or a glob, under a label. */
export interface ReportSource {
  /** Name of the source in the legend and table, e.g. "ours" or "seed". */
  label: string;
  /** A path or a glob (`*`, `?`, `[...]`, `**`), as given on the command line. */
  path: string;
}

/** Something wrong with one file. */
export interface Problem {
  /** The file (or run folder) concerned, as reached from the source's path. */
  file: string;
  /** What is wrong with it, e.g. "missing" or "not valid JSON (...)". */
  reason: string;
  /** True when the run was left out of the report; false when it is drawn anyway. */
  skipped: boolean;
}

/** The per-epoch series of one run, validated. */
export interface RunSeries {
  /** Mean training loss of each epoch (results.json's `avg_loss`). */
  avgLoss: number[];
  /** Which test metric the run recorded, if any. */
  metric?: Metric;
  /** The test metric after each epoch; present exactly when `metric` is. */
  metricValues?: number[];
  /** Cumulative seconds at the end of each epoch. */
  seconds: number[];
  /** Where the seconds come from: measured per epoch, or tot_time spread uniformly. */
  timeBasis: "epoch_time" | "tot_time";
  /** How the run stands (results.json's `status`); absent in older files, which are finished. */
  status?: RunStatus;
  /** Why it stands so (results.json's `status_reason`), e.g. why it diverged. */
  statusReason?: string;
  /**
   * The curvature diagnostics the run measured (results.json's `diagnostics`, see
   * `train --diagnose`), with NaN where the file has null.
   */
  diagnostics?: Diagnostics;
}

/** A run's curvature diagnostics as the report reads them: null values become NaN. */
export type Diagnostics = { [K in keyof DiagnosticsRecord]: number[] };

/** One run of a source, named and validated. */
export interface Run extends RunSeries {
  /** Label of the source the run was found in, e.g. "ours" or "seed". */
  source: string;
  /** The run folder, as reached from the argument. */
  dir: string;
  /** The experiment, e.g. "mnist": the run folder's parent, or config.json's data set. */
  experiment: string;
  /** `<solver>_<setting>`, e.g. "SGN_3" or "SGD_0.1". */
  config: string;
  /** The solver, e.g. "SGN" or "SGD". */
  solver: string;
  /** CG iterations (SGN) or learning rate (others), as in the folder name; "" when unknown. */
  setting: string;
  /** The seed, from the folder name or config.json, when known. */
  seed?: string;
}

/** Mean, min and max over the runs of a group of one final figure; non-finite values left out. */
export interface Final {
  /** Mean over the finite values; null when there is none. */
  mean: number | null;
  /** Smallest finite value; null when there is none. */
  min: number | null;
  /** Largest finite value; null when there is none. */
  max: number | null;
  /** How many runs ended non-finite (diverged). */
  nonFinite: number;
}

/** The runs of one configuration (experiment, solver and setting) from one source. */
export interface Group {
  /** Label of the source, as in {@link Run.source}. */
  source: string;
  /** The experiment, as in {@link Run.experiment}. */
  experiment: string;
  /** `<solver>_<setting>`, as in {@link Run.config}. */
  config: string;
  /** The solver, as in {@link Run.solver}. */
  solver: string;
  /** The setting, as in {@link Run.setting}. */
  setting: string;
  /** e.g. "ours mnist SGN_3 (n=3)". */
  label: string;
  /** The runs of the group, one per seed. */
  runs: Run[];
  /** Fewest and most epochs among the runs. */
  epochs: { min: number; max: number };
  /** Mean cumulative seconds over the runs at epochs 1..epochs.min. */
  seconds: number[];
  /** Training loss per epoch over the runs, at epochs 1..epochs.min. */
  loss: Band;
  /** The test metric, when every run has the same one. */
  metric?: Metric;
  /** The test metric per epoch over the runs, when `metric` is set. */
  metricBand?: Band;
  /** Last-epoch loss and metric over the runs, and the mean seconds per epoch. */
  final: { loss: Final; metric?: Final; secondsPerEpoch: number };
  /** Where the runs' seconds come from ({@link RunSeries.timeBasis}); "mixed" when they differ. */
  timeBasis: "epoch_time" | "tot_time" | "mixed";
  /** How the runs stand: see {@link GroupStatus}. */
  status: GroupStatus;
  /** What a reader should know about this group (unequal lengths, divergence). */
  notes: string[];
}

/** How the runs of a group stand, from their results.json `status` (absent: finished). */
export interface GroupStatus {
  /** How many runs have each status. */
  counts: Record<RunStatus, number>;
  /** The distinct reasons the runs of each status give (results.json's `status_reason`). */
  reasons: Partial<Record<RunStatus, string[]>>;
  /** Absent when every run finished, e.g. "2 of 5 runs diverged: loss is NaN; 1 of 5 still running". */
  summary?: string;
  /** The summary without reasons, for the legend, e.g. "2 diverged, 1 running". */
  short?: string;
}

/** What {@link collectRuns} found. */
export interface Collection {
  /** Each source with its label, its path and how many runs were read from it. */
  sources: { label: string; path: string; runs: number }[];
  /** Every run read, from all sources. */
  runs: Run[];
  /** The runs grouped by source, experiment and configuration (see {@link groupRuns}). */
  groups: Group[];
  /** Missing or malformed files met on the way. */
  problems: Problem[];
  /**
   * Absolute real paths of the input files: the results.json and config.json of every run
   * folder looked at (whether or not it exists or could be read) and, for symlinks, their
   * targets. The report refuses to write over any of them.
   */
  inputs: string[];
}

const NAN_MARK = "__sgn_NaN__";
/** The longest status_reason kept, in characters. */
const REASON_MAX = 300;

/**
 * JSON.parse that also takes the bare NaN, Infinity and -Infinity Python's json module writes
 * (the seed's diverged runs have them); NaN comes back as the string marker {@link isNanMark}
 * knows, so a `null` in a file stays an error.
 */
function parseLenientJson(text: string): unknown {
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
  return JSON.parse(fixed);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v.length > 20 ? v.slice(0, 20) + "..." : v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return String(v);
}

/** A list of numbers (NaN and ±Infinity allowed), or the reason it is not one. */
function numberList(obj: Record<string, unknown>, key: string): number[] | string {
  const v = obj[key];
  if (!Array.isArray(v)) return `${key} is ${describe(v)}, not a list of numbers`;
  const out: number[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x === "number") out[i] = x;
    else if (x === NAN_MARK) out[i] = NaN;
    else return `${key}[${i}] is ${describe(x)}, not a number`;
  }
  return out;
}

/**
 * Validates the text of a results.json in the seed's format. Required: avg_loss, and epoch_time
 * (cumulative seconds per epoch, ours) or tot_time (the seed's only timing: epochs are then
 * taken as equally long). test_acc or test_loss is drawn when present. Optional: `status`, one
 * of {@link RUN_STATUSES} (absent means finished, as in the seed's files; any other value skips
 * the run), `status_reason`, a string, and `diagnostics`, the curvature diagnostics of
 * `train --diagnose` (train/results.ts; when malformed, the run is skipped). Problems name
 * `file`.
 *
 * @example
 * ```ts
 * import { parseResults } from "./collect.ts";
 * const { series, problems } = parseResults('{"avg_loss": [2, 1], "tot_time": 10}', "r.json");
 * console.log(series?.seconds, problems); // [5, 10] [ ...a note that no test metric is there ]
 * ```
 */
export function parseResults(
  text: string,
  file: string,
): { series?: RunSeries; problems: Problem[] } {
  const problems: Problem[] = [];
  const fail = (reason: string) => ({ problems: [...problems, { file, reason, skipped: true }] });
  let json: unknown;
  try {
    json = parseLenientJson(text);
  } catch (e) {
    return fail(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return fail(`holds ${describe(json)}, not an object of results`);
  }
  const r = json as Record<string, unknown>;
  let status: RunStatus = "finished";
  if ("status" in r) {
    if (!RUN_STATUSES.includes(r.status as RunStatus)) {
      return fail(
        `status is ${describe(r.status)}, not one of ${
          RUN_STATUSES.map((x) => `"${x}"`).join(", ")
        } (a results.json written by a newer sgn?)`,
      );
    }
    status = r.status as RunStatus;
  }
  let statusReason: string | undefined;
  if ("status_reason" in r) {
    if (typeof r.status_reason === "string") {
      // The reason is shown in the table: a few lines at most, whatever the file holds.
      statusReason = r.status_reason.length > REASON_MAX
        ? r.status_reason.slice(0, REASON_MAX) + "..."
        : r.status_reason;
    } else {
      problems.push({
        file,
        reason: `status_reason is ${describe(r.status_reason)}, not a string: ignored`,
        skipped: false,
      });
    }
  }
  if (!("avg_loss" in r)) return fail("no avg_loss (the per-epoch train loss)");
  const avgLoss = numberList(r, "avg_loss");
  if (typeof avgLoss === "string") return fail(avgLoss);
  const n = avgLoss.length;
  if (n === 0) {
    return fail(
      status === "finished"
        ? "avg_loss is empty"
        : `avg_loss is empty: the run is ${status} with no epoch done yet`,
    );
  }

  let metric: Metric | undefined;
  let metricValues: number[] | undefined;
  for (const key of ["test_acc", "test_loss"] as const) {
    if (!(key in r)) continue;
    const v = numberList(r, key);
    if (typeof v === "string") return fail(v);
    if (v.length !== n) return fail(`${key} has ${v.length} entries but avg_loss has ${n}`);
    metric = key;
    metricValues = v;
    break;
  }
  if (!metric) {
    problems.push({
      file,
      reason: "no test_acc or test_loss: only the train loss is drawn",
      skipped: false,
    });
  }

  let seconds: number[];
  let timeBasis: RunSeries["timeBasis"];
  if ("epoch_time" in r) {
    const t = numberList(r, "epoch_time");
    if (typeof t === "string") return fail(t);
    if (t.length !== n) return fail(`epoch_time has ${t.length} entries but avg_loss has ${n}`);
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(t[i]) || t[i] < 0 || (i > 0 && t[i] < t[i - 1])) {
        return fail(`epoch_time[${i}] = ${t[i]}: not a cumulative time in seconds`);
      }
    }
    seconds = t;
    timeBasis = "epoch_time";
  } else if ("tot_time" in r) {
    const tot = r.tot_time;
    if (typeof tot !== "number" || !Number.isFinite(tot) || tot < 0) {
      return fail(`tot_time is ${describe(tot)}, not a number of seconds`);
    }
    if ("tot_epochs" in r && r.tot_epochs !== n) {
      problems.push({
        file,
        reason: `tot_epochs is ${describe(r.tot_epochs)} but avg_loss has ${n} entries; ` +
          `using ${n}`,
        skipped: false,
      });
    }
    // The seed records only the total: spread it evenly, epoch k ending at tot_time * k / n.
    seconds = Array.from({ length: n }, (_, k) => tot * (k + 1) / n);
    timeBasis = "tot_time";
  } else {
    return fail("neither epoch_time nor tot_time: the seconds are unknown");
  }

  let diagnostics: Diagnostics | undefined;
  if ("diagnostics" in r) {
    const d = parseDiagnostics(r.diagnostics, n);
    if (typeof d === "string") return fail(d);
    diagnostics = d;
  }

  const bad = avgLoss.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) {
    problems.push({
      file,
      reason: `avg_loss is not finite from epoch ${bad + 1} on (diverged); drawn up to there`,
      skipped: false,
    });
  }
  return {
    series: {
      avgLoss,
      metric,
      metricValues,
      seconds,
      timeBasis,
      status,
      ...(statusReason === undefined ? {} : { statusReason }),
      ...(diagnostics ? { diagnostics } : {}),
    },
    problems,
  };
}

/**
 * results.json's `diagnostics` checked against the schema (train/results.ts): an object of
 * equally long lists, steps increasing positive integers, epochs from 1 to the run's `epochs`
 * in order, the measurements numbers or null (read as NaN), rho numbers >= 0. Returns the reason
 * when it is not so.
 */
function parseDiagnostics(v: unknown, epochs: number): Diagnostics | string {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return `diagnostics is ${describe(v)}, not an object of lists`;
  }
  const d = v as Record<string, unknown>;
  const out: Partial<Diagnostics> = {};
  for (const key of DIAGNOSTICS_KEYS) {
    const name = `diagnostics.${key}`;
    if (!(key in d)) return `${name} is missing`;
    const nullable = key !== "step" && key !== "epoch" && key !== "rho";
    const list = numberList({ [name]: nullable ? nullsAsNaN(d[key]) : d[key] }, name);
    if (typeof list === "string") return list;
    if (out.step && list.length !== out.step.length) {
      return `${name} has ${list.length} entries but diagnostics.step has ${out.step.length}`;
    }
    for (let i = 0; i < list.length; i++) {
      const x = list[i];
      const wrong = key === "step"
        ? !(Number.isInteger(x) && x >= 1 && (i === 0 || x > list[i - 1]))
        : key === "epoch"
        ? !(Number.isInteger(x) && x >= 1 && x <= epochs && (i === 0 || x >= list[i - 1]))
        : key === "rho"
        ? !(Number.isFinite(x) && x >= 0)
        : false;
      if (wrong) {
        const what = key === "step"
          ? "a step number (increasing positive integers)"
          : key === "epoch"
          ? `an epoch from 1 to ${epochs} (in order)`
          : "a damping >= 0";
        return `${name}[${i}] = ${describe(d[key] && (d[key] as unknown[])[i])}: not ${what}`;
      }
    }
    out[key] = list;
  }
  return out as Diagnostics;
}

/** A list with its nulls as NaN markers (a value that was not measured); anything else as is. */
function nullsAsNaN(v: unknown): unknown {
  return Array.isArray(v) ? v.map((x) => (x === null ? NAN_MARK : x)) : v;
}

/**
 * Splits a run folder name `res_<solver>_<setting>_<seed>` (e.g. res_SGD_0.1_4), as the seed
 * and our reproduction name them; undefined when the name has another form.
 *
 * @example
 * ```ts
 * import { parseRunName } from "./collect.ts";
 * console.log(parseRunName("res_SGD_0.1_4")); // { solver: "SGD", setting: "0.1", seed: "4" }
 * ```
 */
export function parseRunName(
  name: string,
): { solver: string; setting: string; seed: string } | undefined {
  const m = /^res_([A-Za-z][A-Za-z0-9]*)_(.+)_(\d+)$/.exec(name);
  return m ? { solver: m[1], setting: m[2], seed: m[3] } : undefined;
}

/**
 * Solver, setting and seed from a config.json (ours or the seed's): the setting is the CG
 * iterations for SGN (MAX_CG_ITERS) and the learning rate (LR0) for the others, as the seed's
 * folder names use them. `dataset` is ours only.
 *
 * @example
 * ```ts
 * import { configNaming } from "./collect.ts";
 * const c = configNaming({ config: { SOLVER: "SGN", MAX_CG_ITERS: 3 }, seed: 2 });
 * console.log(c); // { solver: "SGN", setting: "3", seed: "2", dataset: undefined }
 * ```
 */
export function configNaming(
  json: unknown,
): { solver: string; setting: string; seed?: string; dataset?: string } | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const top = json as Record<string, unknown>;
  const c = top.config as Record<string, unknown> | undefined;
  if (typeof c !== "object" || c === null || typeof c.SOLVER !== "string") return undefined;
  const setting = c.SOLVER === "SGN" ? c.MAX_CG_ITERS : c.LR0;
  if (typeof setting !== "number" && typeof setting !== "string") return undefined;
  return {
    solver: c.SOLVER,
    setting: String(setting),
    seed: typeof top.seed === "number" || typeof top.seed === "string"
      ? String(top.seed)
      : undefined,
    dataset: typeof top.dataset === "string" ? top.dataset : undefined,
  };
}

function sampleStd(xs: number[], mean: number): number {
  if (xs.length < 2) return 0;
  let s = 0;
  for (const x of xs) s += (x - mean) * (x - mean);
  return Math.sqrt(s / (xs.length - 1));
}

/**
 * Per-epoch mean, min, max and sample standard deviation over runs, up to the shortest run
 * (where every run has a value); null at an epoch where some run is not finite, so a diverged
 * seed shows as a gap rather than a misleading mean.
 *
 * @example
 * ```ts
 * import { aggregate } from "./collect.ts";
 * const b = aggregate([[1, 2, 9], [3, 4]]);
 * console.log(b.mean, b.min, b.max); // [2, 3] [1, 2] [3, 4]
 * ```
 */
export function aggregate(series: number[][]): Band {
  const len = series.length ? Math.min(...series.map((s) => s.length)) : 0;
  const band: Band = { mean: [], min: [], max: [], std: [] };
  for (let k = 0; k < len; k++) {
    const xs = series.map((s) => s[k]);
    if (xs.some((x) => !Number.isFinite(x))) {
      band.mean.push(null);
      band.min.push(null);
      band.max.push(null);
      band.std.push(null);
      continue;
    }
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    band.mean.push(mean);
    band.min.push(Math.min(...xs));
    band.max.push(Math.max(...xs));
    band.std.push(sampleStd(xs, mean));
  }
  return band;
}

/**
 * Mean, min and max of the finite values, and how many were not finite.
 *
 * @example
 * ```ts
 * import { finalFigure } from "./collect.ts";
 * console.log(finalFigure([0.5, 1, NaN])); // { mean: 0.75, min: 0.5, max: 1, nonFinite: 1 }
 * ```
 */
export function finalFigure(values: number[]): Final {
  const ok = values.filter(Number.isFinite);
  if (!ok.length) return { mean: null, min: null, max: null, nonFinite: values.length };
  return {
    mean: ok.reduce((a, b) => a + b, 0) / ok.length,
    min: Math.min(...ok),
    max: Math.max(...ok),
    nonFinite: values.length - ok.length,
  };
}

const STATUS_VERB: Record<RunStatus, string> = {
  finished: "finished",
  diverged: "diverged",
  interrupted: "interrupted",
  running: "still running",
};

/**
 * How the runs of a group stand: counts and reasons per status, and, unless all finished, a
 * sentence such as "2 of 5 runs diverged: loss is NaN; 1 of 5 still running".
 *
 * @example
 * ```ts
 * import { groupStatus } from "./collect.ts";
 * const s = groupStatus([{ status: "diverged", statusReason: "loss is NaN" }, {}]);
 * console.log(s.summary, "/", s.short); // 1 of 2 runs diverged: loss is NaN / 1 diverged
 * ```
 */
export function groupStatus(
  runs: readonly Pick<RunSeries, "status" | "statusReason">[],
): GroupStatus {
  const counts = Object.fromEntries(RUN_STATUSES.map((s) => [s, 0])) as Record<RunStatus, number>;
  const reasons: GroupStatus["reasons"] = {};
  for (const r of runs) {
    const s = r.status ?? "finished";
    counts[s]++;
    if (r.statusReason !== undefined && !reasons[s]?.includes(r.statusReason)) {
      (reasons[s] ??= []).push(r.statusReason);
    }
  }
  const n = runs.length;
  const open = RUN_STATUSES.filter((s) => s !== "finished" && counts[s] > 0);
  if (!open.length) return { counts, reasons };
  const summary = open.map((s) => {
    const why = reasons[s]?.length ? `: ${reasons[s]!.join("; ")}` : "";
    return `${counts[s]} of ${n} run${n === 1 ? "" : "s"} ${STATUS_VERB[s]}${why}`;
  }).join("; ");
  const short = open.map((s) => `${counts[s]} ${s}`).join(", ");
  return { counts, reasons, summary, short };
}

function settingOrder(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  if (Number.isFinite(x) && Number.isFinite(y) && x !== y) return x - y;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Groups runs by source, experiment and configuration, with their statistics: lines and bands
 * per epoch over the epochs all runs have, seconds as the mean over the runs at each epoch, and
 * the final figures of each run's last epoch. Sorted by experiment, solver, setting (numerically)
 * and then source in the order of `sourceOrder`.
 *
 * @example
 * ```ts
 * import { groupRuns, type Run } from "./collect.ts";
 * const run: Run = {
 *   source: "ours", dir: "mnist/res_SGN_3_1", experiment: "mnist", config: "SGN_3",
 *   solver: "SGN", setting: "3", avgLoss: [1, 0.5], seconds: [2, 4], timeBasis: "epoch_time",
 * };
 * console.log(groupRuns([run])[0].label); // "ours mnist SGN_3 (n=1)"
 * ```
 */
export function groupRuns(runs: readonly Run[], sourceOrder: readonly string[] = []): Group[] {
  const byKey = new Map<string, Run[]>();
  for (const r of runs) {
    const key = JSON.stringify([r.source, r.experiment, r.config]);
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key)!.push(r);
  }
  const groups: Group[] = [];
  for (const members of byKey.values()) {
    const first = members[0];
    const lengths = members.map((r) => r.avgLoss.length);
    const epochs = { min: Math.min(...lengths), max: Math.max(...lengths) };
    const notes: string[] = [];
    if (epochs.min !== epochs.max) {
      notes.push(
        `runs have ${epochs.min}-${epochs.max} epochs: lines and bands stop at epoch ` +
          `${epochs.min}, the last one every run has`,
      );
    }
    const metrics = new Set(members.map((r) => r.metric));
    const metric = metrics.size === 1 ? first.metric : undefined;
    if (metrics.size > 1) {
      notes.push("runs disagree on the test metric (or lack one): no test line is drawn");
    }
    const lastLoss = members.map((r) => r.avgLoss[r.avgLoss.length - 1]);
    const diverged = lastLoss.filter((x) => !Number.isFinite(x)).length;
    if (diverged) notes.push(`${diverged} of ${members.length} runs diverged (non-finite loss)`);
    const bases = new Set(members.map((r) => r.timeBasis));
    const status = groupStatus(members);
    const secondsBand = aggregate(members.map((r) => r.seconds));
    groups.push({
      source: first.source,
      experiment: first.experiment,
      config: first.config,
      solver: first.solver,
      setting: first.setting,
      label: `${first.source} ${first.experiment} ${first.config} (n=${members.length})`,
      runs: members,
      epochs,
      seconds: secondsBand.mean.map((x) => x ?? NaN),
      loss: aggregate(members.map((r) => r.avgLoss)),
      metric,
      metricBand: metric ? aggregate(members.map((r) => r.metricValues!)) : undefined,
      final: {
        loss: finalFigure(lastLoss),
        metric: metric
          ? finalFigure(members.map((r) => r.metricValues![r.metricValues!.length - 1]))
          : undefined,
        secondsPerEpoch: members.reduce(
          (a, r) => a + r.seconds[r.seconds.length - 1] / r.seconds.length,
          0,
        ) / members.length,
      },
      timeBasis: bases.size === 1 ? first.timeBasis : "mixed",
      status,
      notes,
    });
  }
  const rank = (s: string) => {
    const i = sourceOrder.indexOf(s);
    return i < 0 ? sourceOrder.length : i;
  };
  return groups.sort((a, b) =>
    a.experiment.localeCompare(b.experiment) || a.solver.localeCompare(b.solver) ||
    settingOrder(a.setting, b.setting) || rank(a.source) - rank(b.source) ||
    a.source.localeCompare(b.source)
  );
}

/**
 * Reads `label=path` (or a bare path, labelled by {@link defaultLabel}).
 *
 * @example
 * ```ts
 * import { parseSourceArg } from "./collect.ts";
 * console.log(parseSourceArg("seed=../shared/seed/results/mnist"));
 * // { label: "seed", path: "../shared/seed/results/mnist" }
 * ```
 */
export function parseSourceArg(arg: string): ReportSource {
  const m = /^([^=/\\]+)=(.+)$/.exec(arg);
  return m ? { label: m[1], path: m[2] } : { label: defaultLabel(arg), path: arg };
}

const GLOB = /[*?[]/;

/**
 * The label of an unlabelled source: the folder above a `results` folder when the path runs
 * through one (…/main/results/mnist is "main", …/seed/results/mnist is "seed"), else the name of
 * the top folder the path gives; run folders (res_*) and a glob's wildcard part are skipped.
 *
 * @example
 * ```ts
 * import { defaultLabel } from "./collect.ts";
 * console.log(defaultLabel("/work/shared/seed/results/mnist/res_SGN_*")); // "seed"
 * ```
 */
export function defaultLabel(path: string): string {
  const segments = resolve(
    path.split("/").filter((_s, i, all) => !all.slice(0, i + 1).some((x) => GLOB.test(x))).join(
      "/",
    ) || ".",
  ).split("/").filter(Boolean);
  while (
    segments.length &&
    (/^res_/.test(segments.at(-1)!) || /\.json$/.test(segments.at(-1)!))
  ) segments.pop();
  const at = segments.lastIndexOf("results");
  if (at > 0 && at >= segments.length - 2) return segments[at - 1];
  return segments.at(-1) ?? "runs";
}

function globRegex(segment: string): RegExp {
  let re = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = segment.indexOf("]", i + 2);
      if (end < 0) {
        re += "\\[";
        continue;
      }
      let body = segment.slice(i + 1, end);
      if (body.startsWith("!")) body = "^" + body.slice(1);
      re += `[${body.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  try {
    return new RegExp(`^${re}$`);
  } catch (e) {
    // A class the regular expression engine refuses, e.g. a reversed range [9-1].
    throw new SgnError(
      `the pattern "${segment}" is not a valid glob (${
        (e as Error).message.replace(/^.*: /, "")
      }); write ranges low to high, e.g. [1-9]`,
    );
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

async function realPathOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.realPath(path);
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function subdirs(path: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(path)) {
      if (e.name.startsWith(".") || e.name === "node_modules") continue;
      const full = join(path, e.name);
      if (e.isDirectory || (e.isSymlink && await isDir(full))) out.push(e.name);
    }
  } catch {
    // An unreadable folder holds no runs we can draw; the caller reports an empty result.
  }
  return out.sort();
}

/**
 * Expands a glob the shell did not (quoted, or on Windows): `*`, `?` and `[...]` within one
 * path segment, `**` for any depth of folders. A path without wildcards comes back as it is.
 *
 * @example
 * ```ts ignore
 * console.log(await expandGlob("results/*\/res_SGN_*")); // ["results/mnist/res_SGN_3_1", ...]
 * ```
 */
export async function expandGlob(pattern: string): Promise<string[]> {
  if (!GLOB.test(pattern)) return [pattern];
  const absolute = pattern.startsWith("/");
  const segments = pattern.split("/").filter((s) => s !== "");
  let bases = [absolute ? "/" : ""];
  for (const seg of segments) {
    const next: string[] = [];
    for (const base of bases) {
      const dir = base || ".";
      if (seg === "**") {
        // Zero or more folders: the base itself and every folder below it, each real folder
        // once, so that a symlink loop (a/loop -> ..) ends.
        const visited = new Set<string>();
        const stack = [base];
        while (stack.length) {
          const d = stack.pop()!;
          const real = await realPathOrUndefined(d || ".");
          if (real === undefined || visited.has(real)) continue;
          visited.add(real);
          next.push(d);
          for (const s of await subdirs(d || ".")) stack.push(d ? join(d, s) : s);
        }
      } else if (GLOB.test(seg)) {
        const re = globRegex(seg);
        const names: string[] = [];
        try {
          for await (const e of Deno.readDir(dir)) {
            if (re.test(e.name) && (!e.name.startsWith(".") || seg.startsWith("."))) {
              names.push(e.name);
            }
          }
        } catch {
          // Not a folder, or unreadable: nothing matches below it.
        }
        for (const name of names.sort()) next.push(base ? join(base, name) : name);
      } else {
        next.push(base ? join(base, seg) : seg);
      }
    }
    bases = [...new Set(next)];
  }
  const found: string[] = [];
  for (const b of bases) if (b && await exists(b)) found.push(b);
  return found;
}

/**
 * Run folders at or below `dir`: folders holding results.json or config.json, or named res_*
 * (a run folder's subfolders are not searched). Symlinked folders are followed, each real folder
 * once (`seen`), so a symlink loop ends. A missing or unreadable folder holds none.
 *
 * @example
 * ```ts ignore
 * console.log(await findRunDirs("results")); // ["results/boston/res_SGN_10_1", ...]
 * ```
 */
export async function findRunDirs(
  dir: string,
  seen: Set<string> = new Set<string>(),
): Promise<string[]> {
  const real = await realPathOrUndefined(dir);
  if (real === undefined || seen.has(real)) return [];
  seen.add(real);
  if (
    /^res_/.test(basename(real)) || await exists(join(dir, "results.json")) ||
    await exists(join(dir, "config.json"))
  ) return [dir];
  const out: string[] = [];
  for (const s of await subdirs(dir)) out.push(...await findRunDirs(join(dir, s), seen));
  return out;
}

function sizeText(bytes: number): string {
  const MiB = 2 ** 20;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

function kindText(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a folder";
  if (info.isFifo) return "a named pipe (FIFO)";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

/** What {@link readInput} found: the text, no file at all, or why it was not read. */
type InputRead = { text: string } | { missing: true } | { reason: string };

/**
 * Reads a regular file of at most `limit` bytes as UTF-8. Anything else is a reason, found
 * without opening the file: a FIFO would block the read forever and a device such as /dev/zero
 * would never end. The size is checked with stat first and then counted while reading, so a
 * file that grows (or whose stat size is 0, as in /proc) is still cut off at `limit` + 1 bytes.
 * (Between the stat and the open, the name could be swapped for a FIFO by someone racing us;
 * Deno cannot open without blocking, so that race is left open.)
 */
async function readInput(path: string, limit: number, what: string): Promise<InputRead> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      return { reason: `cannot be read (${(e as Error).message})` };
    }
    const link = await Deno.readLink(path).catch(() => undefined);
    return link === undefined
      ? { missing: true }
      : { reason: `is a symlink to ${link}, which does not exist` };
  }
  if (!info.isFile) {
    const target = await Deno.lstat(path).then(
      async (l) => l.isSymlink ? await realPathOrUndefined(path) : undefined,
      () => undefined,
    );
    return {
      reason: `is ${target ? `a symlink to ${target}, ` : ""}${kindText(info)}, not a regular ` +
        "file: not read",
    };
  }
  const tooBig = `over the ${sizeText(limit)} limit for a ${what}: not read`;
  if (info.size > limit) return { reason: `is ${info.size} bytes, ${tooBig}` };
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    return { reason: `cannot be read (${(e as Error).message})` };
  }
  try {
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(Math.min(limit + 1, 2 ** 20));
    let text = "";
    let total = 0;
    while (true) {
      // Never ask for more than one byte past the limit: enough to tell that it is over.
      const n = await file.read(buffer.subarray(0, Math.min(buffer.length, limit + 1 - total)));
      if (n === null) break;
      total += n;
      if (total > limit) return { reason: `grew past ${limit} bytes while read, ${tooBig}` };
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    return { text: text + decoder.decode() };
  } catch (e) {
    return { reason: `cannot be read (${(e as Error).message})` };
  } finally {
    file.close();
  }
}

/**
 * Reads a run folder's config.json, as the report reads every input: a regular file of at most
 * `limits.configJson` bytes, JSON with Python's NaN and Infinity allowed. What stops it is a
 * {@link Problem} (not `skipped`: config.json only names a run), and `config` is then undefined.
 *
 * @example
 * ```ts ignore
 * const { config, problem } = await readRunConfig("results/mnist/res_SGN_3_1");
 * console.log(configNaming(config), problem?.reason);
 * ```
 */
export async function readRunConfig(
  dir: string,
  limits: InputLimits = INPUT_LIMITS,
): Promise<{ config?: unknown; problem?: Problem }> {
  const file = join(dir, "config.json");
  const read = await readInput(file, limits.configJson, "config.json");
  if ("missing" in read) return { problem: { file, reason: "missing", skipped: false } };
  if ("reason" in read) return { problem: { file, reason: read.reason, skipped: false } };
  try {
    return { config: parseLenientJson(read.text) };
  } catch (e) {
    return {
      problem: { file, reason: `not valid JSON (${(e as Error).message})`, skipped: false },
    };
  }
}

/** Reads one run folder: its results, and its name from the folder or config.json. */
async function readRun(
  dir: string,
  source: string,
  problems: Problem[],
  limits: InputLimits,
): Promise<Run | undefined> {
  const resultsFile = join(dir, "results.json");
  const results = await readInput(resultsFile, limits.resultsJson, "results.json");
  if ("missing" in results) {
    problems.push({
      file: resultsFile,
      reason: "missing (the run has not finished, or failed)",
      skipped: true,
    });
    return undefined;
  }
  if ("reason" in results) {
    problems.push({ file: resultsFile, reason: results.reason, skipped: true });
    return undefined;
  }
  // config.json only names the run: when it cannot be read, the run is still drawn.
  const { config, problem } = await readRunConfig(dir, limits);
  if (problem) problems.push(problem);
  const parsed = parseResults(results.text, resultsFile);
  problems.push(...parsed.problems);
  if (!parsed.series) return undefined;

  const name = basename(resolve(dir));
  const parent = basename(dirname(resolve(dir)));
  let naming: { solver: string; setting: string; seed?: string };
  let experiment = parent;
  const fromName = parseRunName(name);
  const fromConfig = configNaming(config);
  if (fromName) {
    naming = fromName;
  } else if (fromConfig) {
    naming = fromConfig;
    // A folder not named res_<solver>_<setting>_<seed> was made by hand (e.g. --f res_mnist):
    // its parent says little, the data set it ran says what the experiment is.
    experiment = fromConfig.dataset ?? parent;
  } else {
    naming = { solver: name, setting: "" };
    problems.push({
      file: dir,
      reason: "name is not res_<solver>_<setting>_<seed> and config.json names no solver: " +
        "drawn on its own",
      skipped: false,
    });
  }
  return {
    ...parsed.series,
    source,
    dir,
    experiment,
    config: naming.setting ? `${naming.solver}_${naming.setting}` : naming.solver,
    solver: naming.solver,
    setting: naming.setting,
    seed: naming.seed,
  };
}

/**
 * A run cut to its first `epochs` epochs (all of it when shorter), so that long runs (the seed's
 * ran 100 to 600 epochs) can be drawn on the scale of short ones.
 *
 * @example
 * ```ts ignore
 * const short = truncateRun(run, 5); // avgLoss, the metric, seconds and diagnostics of epochs 1-5
 * ```
 */
export function truncateRun<R extends RunSeries>(run: R, epochs: number): R {
  const d = run.diagnostics;
  const kept = d ? d.epoch.findLastIndex((e) => e <= epochs) + 1 : 0;
  return {
    ...run,
    avgLoss: run.avgLoss.slice(0, epochs),
    seconds: run.seconds.slice(0, epochs),
    ...(run.metricValues ? { metricValues: run.metricValues.slice(0, epochs) } : {}),
    ...(d
      ? {
        diagnostics: Object.fromEntries(
          DIAGNOSTICS_KEYS.map((k) => [k, d[k].slice(0, kept)]),
        ) as Diagnostics,
      }
      : {}),
  };
}

/** Options of {@link collectRuns}. */
export interface CollectOptions {
  /** Keep only the first this many epochs of every run (default: all). */
  maxEpochs?: number;
  /** Size limits of the input files, in bytes (default {@link INPUT_LIMITS}). */
  limits?: Partial<InputLimits>;
}

/**
 * Finds, reads, validates and groups the runs of the sources. A source path may be a run
 * folder, any folder above run folders (searched recursively), a results.json, or a glob. A
 * missing, malformed, oversized (see {@link INPUT_LIMITS}) or irregular file (a FIFO, a device, a
 * folder) is a {@link Problem} and the other runs are still collected; a run reached twice
 * under one label counts once. Symlinked folders are followed, each real folder once.
 *
 * @example
 * ```ts ignore
 * const c = await collectRuns([
 *   { label: "ours", path: "results/mnist" },
 *   { label: "seed", path: "../shared/seed/results/mnist/res_SGN_3_*" },
 * ]);
 * for (const g of c.groups) console.log(g.label, g.final.metric?.mean);
 * for (const p of c.problems) console.log(`${p.file}: ${p.reason}`);
 * ```
 */
export async function collectRuns(
  sources: readonly ReportSource[],
  options: CollectOptions = {},
): Promise<Collection> {
  const max = options.maxEpochs;
  if (max !== undefined && !(Number.isInteger(max) && max >= 1)) {
    throw new RangeError(`maxEpochs must be a positive integer, got ${max}`);
  }
  const limits = { ...INPUT_LIMITS, ...options.limits };
  for (const [key, v] of Object.entries(limits)) {
    if (!(Number.isSafeInteger(v) && v >= 1)) {
      throw new RangeError(`limits.${key} must be a positive number of bytes, got ${v}`);
    }
  }
  const problems: Problem[] = [];
  const runs: Run[] = [];
  const inputs = new Set<string>();
  const seen = new Set<string>();
  const summary: Collection["sources"] = [];
  for (const source of sources) {
    let count = 0;
    const paths = GLOB.test(source.path)
      ? await expandGlob(source.path)
      : await exists(source.path)
      ? [source.path]
      : [];
    if (!paths.length) {
      const reason = GLOB.test(source.path) ? "matches nothing" : "no such file or folder";
      problems.push({ file: source.path, reason, skipped: true });
    }
    for (const path of paths) {
      const dirs = !(await isDir(path)) && /\.json$/.test(path)
        ? [dirname(path)]
        : await findRunDirs(path);
      if (!dirs.length) {
        problems.push({ file: path, reason: "holds no results.json at any depth", skipped: true });
      }
      for (const dir of dirs) {
        const real = await realPathOrUndefined(dir);
        if (real === undefined) {
          problems.push({ file: dir, reason: "is gone, or not a folder", skipped: true });
          continue;
        }
        for (const name of ["results.json", "config.json"]) {
          inputs.add(join(real, name));
          const target = await realPathOrUndefined(join(real, name));
          if (target !== undefined) inputs.add(target);
        }
        const key = `${source.label}\u0000${real}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const run = await readRun(dir, source.label, problems, limits);
        if (run) {
          runs.push(max === undefined ? run : truncateRun(run, max));
          count++;
        }
      }
    }
    summary.push({ label: source.label, path: source.path, runs: count });
  }
  const order = [...new Set(sources.map((s) => s.label))];
  return { sources: summary, runs, groups: groupRuns(runs, order), problems, inputs: [...inputs] };
}
