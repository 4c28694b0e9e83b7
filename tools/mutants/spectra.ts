/**
 * Mutants of the spectral tools (linalg/) and of what `train --diagnose` records, aimed at
 * tests/spectra_test.ts, spectra_ggn_test.ts and diagnose_test.ts: Lanczos without full
 * reorthogonalization or without its breakdown test, a tridiagonal eigensolver that rotates its
 * vectors wrongly, quadrature weights from the wrong components, Hutchinson probes without signs
 * or a standard error without its square root of n, a density that forgets the number of probes,
 * and the training loop's and the report's side: diagnosing counted in the times, measured at the
 * wrong steps or with the wrong damping, diagnostics not checked or cut, config.json keys written
 * for every run. Each `what` starts with "[spectra]": `deno run -A tools/mutate.ts --only
 * "[spectra]"` runs this list.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const TESTS = ["tests/spectra_test.ts", "tests/spectra_ggn_test.ts", "tests/diagnose_test.ts"];

/** The mutants of linalg/ and of the diagnostics in train/ and report/. */
export const MUTANTS: Mutant[] = [
  {
    file: "linalg/spectra.ts",
    find: "for (const b of basis) subtract(w, dot(b, w), b);",
    replace: "for (const b of basis.slice(-2)) subtract(w, dot(b, w), b);",
    what: "[spectra] Lanczos orthogonalizes against the last two vectors only (no full " +
      "reorthogonalization: ghost eigenvalues)",
    tests: TESTS,
  },
  {
    file: "linalg/spectra.ts",
    find: "if (beta <= tol * scale) {",
    replace: "if (beta < 0) {",
    what: "[spectra] Lanczos never detects breakdown (normalizes rounding noise on)",
    tests: TESTS,
  },
  {
    file: "linalg/spectra.ts",
    find: "weights[i] = eig.vectors[i] ** 2;",
    replace: "weights[i] = eig.vectors[(m - 1) * m + i] ** 2;",
    what: "[spectra] quadrature weights from the last components of T's eigenvectors",
    tests: TESTS,
  },
  {
    file: "linalg/spectra.ts",
    find: "z[i] = rng.nextU32() >>> 31 ? 1 : -1;",
    replace: "z[i] = rng.nextU32() >>> 31 ? 1 : 1;",
    what: "[spectra] Rademacher probes without their signs (all ones)",
    tests: TESTS,
  },
  {
    file: "linalg/spectra.ts",
    find: "Math.sqrt(ss / (samples - 1) / samples)",
    replace: "Math.sqrt(ss / (samples - 1))",
    what: "[spectra] Hutchinson's standard error is the probes' standard deviation (no 1/sqrt n)",
    tests: TESTS,
  },
  {
    file: "linalg/spectra.ts",
    find: "const norm = 1 / (nodes.length * sigma * Math.sqrt(2 * Math.PI));",
    replace: "const norm = 1 / (sigma * Math.sqrt(2 * Math.PI));",
    what: "[spectra] the density sums the probes instead of averaging them",
    tests: TESTS,
  },
  {
    file: "linalg/tridiagonal.ts",
    find: "z[row * k + i] = c * zi - s * zi1;",
    replace: "z[row * k + i] = c * zi + s * zi1;",
    what: "[spectra] the QL rotation of the eigenvectors with a wrong sign",
    tests: TESTS,
  },
  {
    file: "linalg/operator.ts",
    find: "return rho === 0 ? av : o.add(av, o.mul(v, rho));",
    replace: "return rho === 0 ? av : o.add(av, o.mul(av, rho));",
    what: "[spectra] the damped operator adds rho A v instead of rho v",
    tests: TESTS,
  },
  {
    file: "linalg/diagnostics.ts",
    find: "bottomEigenvalue: singular ? 0 : Math.max(0, top.values[0]),",
    replace: "bottomEigenvalue: Math.max(0, top.values[0]),",
    what: "[spectra] a G singular by its shape gets its smallest Ritz value as the bottom",
    tests: TESTS,
  },
  {
    file: "train/loop.ts",
    find: "const seconds = () => (performance.now() - t0 - diagnosing) / 1000;",
    replace: "const seconds = () => (performance.now() - t0) / 1000;",
    what: "[spectra] the time spent diagnosing is counted in epoch_time and tot_time",
    tests: TESTS,
  },
  {
    file: "train/loop.ts",
    find: "if (diagnose && iterations % diagnose.every === 0) {",
    replace: "if (diagnose && (iterations + 1) % diagnose.every === 0) {",
    what: "[spectra] diagnostics at steps EVERY, 2 EVERY, ... instead of 1, 1 + EVERY, ...",
    tests: TESTS,
  },
  {
    file: "train/loop.ts",
    find: "? (rec as unknown as { rho: number }).rho",
    replace: "? diagnose!.rho",
    what: "[spectra] an SGN run's condition number takes the default damping, not the step's",
    tests: TESTS,
  },
  {
    file: "train/settings.ts",
    find: "if (key && (recordIf?.(s) ?? true)) out[key] = s[name];",
    replace: "if (key) out[key] = s[name];",
    what: "[spectra] config.json records the --diagnose rows of runs that do not diagnose",
    tests: TESTS,
  },
  {
    file: "train/results.ts",
    find: "if (want !== undefined && v.length !== want) {",
    replace: "if (want !== undefined && v.length > want) {",
    what: "[spectra] the results schema takes lists shorter than their count",
    tests: TESTS,
  },
  {
    file: "report/run.ts",
    find: "const kept = d ? d.epoch.findLastIndex((e) => e <= epochs) + 1 : 0;",
    replace: "const kept = d ? d.epoch.findLastIndex((e) => e < epochs) + 1 : 0;",
    what: "[spectra] --epochs N cuts the diagnostics of epoch N too",
    tests: TESTS,
  },
];
