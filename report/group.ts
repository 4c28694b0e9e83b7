/**
 * The runs of one configuration (source, experiment, solver and setting) grouped, with their
 * statistics (stats.ts) and how they stand (finished, diverged, interrupted, running).
 *
 * @module
 */

import { RUN_STATUSES, type RunStatus } from "../train/results.ts";
import type { Run, RunSeries } from "./run.ts";
import { aggregate, type Final, finalFigure } from "./stats.ts";
import type { Band, Metric } from "./types.ts";

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
 * import { groupStatus } from "./group.ts";
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
 * import { groupRuns } from "./group.ts";
 * import type { Run } from "./run.ts";
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
