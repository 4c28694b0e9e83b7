/**
 * The data a report page receives, shared by the builder (report/html.ts) and the page script
 * (report/page.ts), which only imports these types.
 *
 * @module
 */

/** The test metric of a run: accuracy (classification) or loss (regression), as the seed names them. */
export type Metric = "test_acc" | "test_loss";

/**
 * How a run stands, as results.json's `status` says: still training, done, stopped because the
 * loss went non-finite, or stopped early (killed, out of time). Files without it are finished.
 */
export type { RunStatus } from "../train/results.ts";

/** Per-epoch statistics over the runs of a group; null where some run is not finite. */
export interface Band {
  /** Mean over the runs at each epoch. */
  mean: (number | null)[];
  /** Smallest value over the runs at each epoch. */
  min: (number | null)[];
  /** Largest value over the runs at each epoch. */
  max: (number | null)[];
  /** Sample standard deviation (n - 1 in the denominator; 0 for one run). */
  std: (number | null)[];
}

/** One configuration of one source, as the page draws it. */
export interface PageGroup {
  /** Legend name, e.g. "ours mnist SGN_3 (n=3)". */
  label: string;
  /** Label of the source the runs come from, e.g. "ours" or "seed". */
  source: string;
  /**
   * The line's colour, `#rrggbb`: its own for every (source, configuration) pair, in the hue of
   * the configuration and the shade of the source (report/style.ts).
   */
  color: string;
  /** The line's dash pattern ([] is solid): one per source. */
  dash: number[];
  /** The experiment, e.g. "mnist". */
  experiment: string;
  /** `<solver>_<setting>`, e.g. "SGN_3". */
  config: string;
  /** Number of runs in the group. */
  n: number;
  /** Epoch numbers 1..k of the points. */
  epochs: number[];
  /** Mean cumulative seconds over the runs at each epoch. */
  seconds: number[];
  /** Training loss per epoch over the runs. */
  loss: Band;
  /** The test metric, when every run has the same one. */
  metric?: Metric;
  /** The test metric per epoch over the runs, when `metric` is set. */
  metricBand?: Band;
  /** Absent when every run finished, else e.g. "2 diverged, 1 running" (marked in the legend). */
  status?: string;
  /** The same with counts out of n and the runs' reasons, e.g. "2 of 5 runs diverged: ...". */
  statusDetail?: string;
}

/** The curvature diagnostics of one run (`train --diagnose`), as the page draws them. */
export interface PageDiagnostics {
  /** Legend name: its group's and the run's seed (or folder), e.g. "ours mnist SGN_3 seed 2". */
  label: string;
  /** The index of its group in {@link PageData.groups} (hiding the group hides it too). */
  group: number;
  /** Its group's colour and dash. */
  color: string;
  /** Its group's dash pattern. */
  dash: number[];
  /** The steps measured. */
  step: number[];
  /** The largest eigenvalue of G at each step; null where not measured. */
  topEigenvalue: (number | null)[];
  /** trace G at each step; null where not measured. */
  trace: (number | null)[];
  /** The condition number of G + rho I at each step; null where not measured or infinite. */
  condition: (number | null)[];
}

/** Everything the page script needs, embedded in the HTML as JSON. */
export interface PageData {
  /** Page title. */
  title: string;
  /** The groups to draw, in table order. */
  groups: PageGroup[];
  /** The runs with curvature diagnostics, in table order; absent when none has them. */
  diagnostics?: PageDiagnostics[];
}
