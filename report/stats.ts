/**
 * The report's statistics over the seeds of one configuration: per-epoch bands (mean, min, max,
 * sample standard deviation) and the final figures of the runs' last epochs. A non-finite value
 * (a diverged seed) is never averaged in: a band shows a gap there, a final figure counts it.
 *
 * @module
 */

import type { Band } from "./types.ts";

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
 * import { aggregate } from "./stats.ts";
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
 * import { finalFigure } from "./stats.ts";
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
