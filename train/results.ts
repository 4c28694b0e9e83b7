/**
 * The results.json schema, one definition for the writer (the training loop and run folders)
 * and the reader (the report): the seed's keys, ours (epoch_time, diagnostics), and the run's
 * status.
 *
 * @module
 */

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
 * stopped early, `status_reason` ({@link RunStatus}).
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

/** The lists of a {@link DiagnosticsRecord}, in the order results.json writes them. */
export const DIAGNOSTICS_KEYS: readonly (keyof DiagnosticsRecord)[] = [
  "step",
  "epoch",
  "top_eigenvalue",
  "bottom_eigenvalue",
  "trace",
  "trace_std_error",
  "rho",
  "condition",
];

/** results.json as written: the record plus where the run stands. */
export interface ResultsFile extends ResultsRecord {
  status?: RunStatus;
  status_reason?: string;
}
