/**
 * One run as the report draws it: its per-epoch series from results.json, checked with the
 * schema the writer uses (train/results.ts) and then read for drawing (which test metric, the
 * seconds of each epoch, where it diverged), and its name, from its folder or its config.json.
 * Every problem comes back as a {@link Problem} naming its file, so one bad run never hides the
 * others.
 *
 * @module
 */

import {
  checkConfig,
  checkResults,
  DIAGNOSTICS_KEYS,
  type DiagnosticsRecord,
  parseLenientJson,
  type RunStatus,
} from "../train/results.ts";
import type { Metric } from "./types.ts";

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

/** The longest status_reason kept, in characters. */
const REASON_MAX = 300;

/**
 * Reads the text of a results.json in the seed's format, checked with {@link checkResults}
 * (train/results.ts): what the schema finds wrong is a problem, and skips the run when the file
 * cannot be used. For drawing, avg_loss must hold an epoch; the seconds are epoch_time, or the
 * seed's tot_time spread evenly over the epochs; test_acc or test_loss is drawn when present;
 * `status` is "finished" when absent, as in the seed's files; diagnostics' nulls become NaN.
 *
 * @example
 * ```ts
 * import { parseResults } from "./run.ts";
 * const { series, problems } = parseResults('{"avg_loss": [2, 1], "tot_time": 10}', "r.json");
 * console.log(series?.seconds, problems); // [5, 10] [ ...a note that no test metric is there ]
 * ```
 */
export function parseResults(
  text: string,
  file: string,
): { series?: RunSeries; problems: Problem[] } {
  let json: unknown;
  try {
    json = parseLenientJson(text);
  } catch (e) {
    return {
      problems: [{ file, reason: `not valid JSON (${(e as Error).message})`, skipped: true }],
    };
  }
  const { results: r, issues } = checkResults(json);
  const found = issues.map((i) => ({ file, reason: i.reason, skipped: i.fatal }));
  if (!r) return { problems: found };
  const status = r.status ?? "finished";
  const n = r.avg_loss.length;
  if (n === 0) {
    const reason = status === "finished"
      ? "avg_loss is empty"
      : `avg_loss is empty: the run is ${status} with no epoch done yet`;
    return { problems: [...found, { file, reason, skipped: true }] };
  }
  // What the drawing lacks first, then what the file had wrong.
  const problems: Problem[] = [];
  const metric = (["test_acc", "test_loss"] as const).find((key) => r[key] !== undefined);
  if (!metric) {
    problems.push({
      file,
      reason: "no test_acc or test_loss: only the train loss is drawn",
      skipped: false,
    });
  }
  const bad = r.avg_loss.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) {
    problems.push({
      file,
      reason: `avg_loss is not finite from epoch ${bad + 1} on (diverged); drawn up to there`,
      skipped: false,
    });
  }
  // The schema requires epoch_time or tot_time. The seed records only the total: spread it
  // evenly, epoch k ending at tot_time * k / n.
  const seconds = r.epoch_time ?? Array.from({ length: n }, (_, k) => r.tot_time! * (k + 1) / n);
  const reason = r.status_reason;
  const d = r.diagnostics;
  return {
    series: {
      avgLoss: r.avg_loss,
      metric,
      metricValues: metric && r[metric],
      seconds,
      timeBasis: r.epoch_time ? "epoch_time" : "tot_time",
      status,
      // The reason is shown in the table: a few lines at most, whatever the file holds.
      ...(reason === undefined ? {} : {
        statusReason: reason.length > REASON_MAX ? reason.slice(0, REASON_MAX) + "..." : reason,
      }),
      ...(d ? { diagnostics: mapDiagnostics(d, (list) => list.map((x) => x ?? NaN)) } : {}),
    },
    problems: [...problems, ...found],
  };
}

/** Each list of `d` through `f`. */
function mapDiagnostics(
  d: DiagnosticsRecord,
  f: (list: (number | null)[]) => number[],
): Diagnostics {
  return Object.fromEntries(DIAGNOSTICS_KEYS.map((k) => [k, f(d[k])])) as Diagnostics;
}

/**
 * Splits a run folder name `res_<solver>_<setting>_<seed>` (e.g. res_SGD_0.1_4), as the seed
 * and our reproduction name them; undefined when the name has another form.
 *
 * @example
 * ```ts
 * import { parseRunName } from "./run.ts";
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
 * Solver, setting and seed from a config.json (ours or the seed's), as {@link checkConfig}
 * reads it: the setting is the CG iterations for SGN (MAX_CG_ITERS) and the learning rate (LR0)
 * for the others, as the seed's folder names use them. `dataset` is ours only.
 *
 * @example
 * ```ts
 * import { configNaming } from "./run.ts";
 * const c = configNaming({ config: { SOLVER: "SGN", MAX_CG_ITERS: 3 }, seed: 2 });
 * console.log(c); // { solver: "SGN", setting: "3", seed: "2", dataset: undefined }
 * ```
 */
export function configNaming(
  json: unknown,
): { solver: string; setting: string; seed?: string; dataset?: string } | undefined {
  const c = checkConfig(json).config;
  const solver = c?.["config.SOLVER"];
  if (solver === undefined) return undefined;
  const setting = solver === "SGN" ? c!["config.MAX_CG_ITERS"] : c!["config.LR0"];
  if (setting === undefined) return undefined;
  return {
    solver,
    setting: String(setting),
    seed: c!.seed === undefined ? undefined : String(c!.seed),
    dataset: c!.dataset,
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
    ...(d ? { diagnostics: mapDiagnostics(d, (list) => list.slice(0, kept) as number[]) } : {}),
  };
}
