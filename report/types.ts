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
  mean: (number | null)[];
  min: (number | null)[];
  max: (number | null)[];
  /** Sample standard deviation (n - 1 in the denominator; 0 for one run). */
  std: (number | null)[];
}

/** One configuration of one source, as the page draws it. */
export interface PageGroup {
  /** Legend name, e.g. "ours mnist SGN_3 (n=3)". */
  label: string;
  source: string;
  /**
   * The line's colour, `#rrggbb`: its own for every (source, configuration) pair, in the hue of
   * the configuration and the shade of the source (report/style.ts).
   */
  color: string;
  /** The line's dash pattern ([] is solid): one per source. */
  dash: number[];
  experiment: string;
  config: string;
  n: number;
  /** Epoch numbers 1..k of the points. */
  epochs: number[];
  /** Mean cumulative seconds over the runs at each epoch. */
  seconds: number[];
  loss: Band;
  metric?: Metric;
  metricBand?: Band;
  /** Absent when every run finished, else e.g. "2 diverged, 1 running" (marked in the legend). */
  status?: string;
  /** The same with counts out of n and the runs' reasons, e.g. "2 of 5 runs diverged: ...". */
  statusDetail?: string;
}

/** Everything the page script needs, embedded in the HTML as JSON. */
export interface PageData {
  title: string;
  groups: PageGroup[];
}
