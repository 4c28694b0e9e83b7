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
  avg_loss: number[];
  acc?: number[];
  test_acc?: number[];
  test_loss?: number[];
  tot_time: number;
  tot_iterations: number;
  tot_epochs?: number;
  rho?: number[];
  alpha?: number[];
  epoch_time: number[];
}

/** results.json as written: the record plus where the run stands. */
export interface ResultsFile extends ResultsRecord {
  status?: RunStatus;
  status_reason?: string;
}
