/**
 * The results.json schema, one definition for the writer (the training loop and run folders)
 * and the reader (the report): the seed's keys, ours (epoch_time), and the run's status.
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
  /** Cumulative seconds at the end of each epoch. */
  epoch_time: number[];
}

/** results.json as written: the record plus where the run stands. */
export interface ResultsFile extends ResultsRecord {
  status?: RunStatus;
  status_reason?: string;
}
