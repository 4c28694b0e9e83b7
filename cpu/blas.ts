/**
 * BLAS through Deno's FFI: `cblas_sgemm` / `cblas_dgemm` from a system library (Debian's
 * OpenBLAS, the `libblas.so.3` / `libcblas.so.3` alternatives, Accelerate on macOS,
 * `libopenblas.dll` on Windows, or a path in `SGN_BLAS`). Loading is always optional: without
 * the FFI permission or the library, {@link loadBlas} says why in one line and the caller falls
 * back to plain TypeScript.
 *
 * @module
 */

import type { MatmulSpec } from "../kernel/backend.ts";
import type { TypedArray } from "../kernel/shape.ts";
import { denoNs, env, openFirst } from "./ffi.ts";

/** Row-major GEMM on typed arrays: C = alpha op(A) op(B) + beta C. */
export interface Blas {
  /** Where the library was loaded from. */
  readonly path: string;
  /**
   * The threads BLAS uses for large products (when the library lets us set them; else
   * undefined); products below {@link SINGLE_THREAD_WORK} multiply-adds run on one.
   */
  readonly threads: number | undefined;
  /** OpenBLAS's kernel family (e.g. "SkylakeX"), when the library says. */
  readonly core: string | undefined;
  /**
   * C[m, n] (leading dimension ldc) = alpha op(A)[m, k] op(B)[k, n] + beta C, row-major; A, B
   * and C are typed arrays of one element type (subarrays give offsets).
   */
  gemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array | Float64Array,
    lda: number,
    b: Float32Array | Float64Array,
    ldb: number,
    beta: number,
    c: Float32Array | Float64Array,
    ldc: number,
  ): void;
}

/** Why BLAS did not load, or the library when it did. */
export type BlasResult = { blas: Blas } | { blas: undefined; reason: string };

const CBLAS_ROW_MAJOR = 101;
const CBLAS_NO_TRANS = 111;
const CBLAS_TRANS = 112;

const gemmArgs = (real: "f32" | "f64") =>
  ({
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      real,
      "buffer",
      "i32",
      "buffer",
      "i32",
      real,
      "buffer",
      "i32",
    ],
    result: "void",
  }) as const;

const SYMBOLS = {
  cblas_sgemm: gemmArgs("f32"),
  cblas_dgemm: gemmArgs("f64"),
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
  openblas_get_corename: { parameters: [], result: "pointer", optional: true },
} as const;

/**
 * The OpenBLAS kernel family for this CPU from its feature flags (Linux x86-64), or undefined.
 * OpenBLAS picks its kernels by CPU model, and a build older than the CPU falls back to generic
 * SSE kernels (Debian 12's 0.3.21 on a Sapphire Rapids core: "Prescott", 39 GFLOP/s against 149
 * with its SkylakeX kernels, measured on sgemm 1000x784x256). The flags say what the core can
 * run, so choosing from them is safe; a user's OPENBLAS_CORETYPE always wins.
 */
export function openblasCoreType(cpuinfoFlags: string): string | undefined {
  const flags = new Set(cpuinfoFlags.split(/\s+/));
  const all = (...f: string[]) => f.every((x) => flags.has(x));
  if (all("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd")) return "SkylakeX";
  if (all("avx2", "fma")) return "Haswell";
  return undefined;
}

/** Sets OPENBLAS_CORETYPE from the CPU flags before OpenBLAS loads, unless the user set it. */
function chooseCoreType(deno: typeof Deno): string | undefined {
  if (deno.build.os !== "linux" || deno.build.arch !== "x86_64") return undefined;
  try {
    if (deno.env.get("OPENBLAS_CORETYPE")) return undefined;
    const info = deno.readTextFileSync("/proc/cpuinfo");
    const line = info.split("\n").find((l) => l.startsWith("flags"));
    const core = line && openblasCoreType(line.slice(line.indexOf(":") + 1));
    if (core) deno.env.set("OPENBLAS_CORETYPE", core);
    return core;
  } catch {
    return undefined; // no permission to read the flags or set the variable: OpenBLAS decides
  }
}

/** The libraries tried, in order, on this operating system. */
export function blasCandidates(os: string): string[] {
  if (os === "darwin") {
    return [
      "/System/Library/Frameworks/Accelerate.framework/Accelerate",
      "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
      "/usr/local/opt/openblas/lib/libopenblas.dylib",
    ];
  }
  if (os === "windows") return ["libopenblas.dll", "openblas.dll"];
  return [
    "libopenblas.so.0",
    "libopenblas.so",
    "libcblas.so.3",
    "libblas.so.3",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
  ];
}

let cached: BlasResult | undefined;

/**
 * Loads BLAS once per process. `SGN_BLAS` names a library path to use instead of the search
 * (`SGN_BLAS=none` disables BLAS); `SGN_BLAS_THREADS` sets the thread count of large products
 * (default: all cores; small ones run on one, see {@link SINGLE_THREAD_WORK}).
 *
 * @example
 * ```ts
 * import { loadBlas } from "./blas.ts";
 * const r = loadBlas();
 * console.log(r.blas ? `BLAS from ${r.blas.path}` : `no BLAS: ${r.reason}`);
 * ```
 */
export function loadBlas(): BlasResult {
  return (cached ??= tryLoad());
}

function tryLoad(): BlasResult {
  const deno = denoNs();
  if (deno) chooseCoreType(deno);
  const r = openFirst({
    what: "BLAS",
    variable: "SGN_BLAS",
    candidates: blasCandidates,
    install: {
      linux: "apt-get install libopenblas0-pthread",
      darwin: "Accelerate should be present; or brew install openblas",
      windows: "put libopenblas.dll on PATH",
    },
  }, SYMBOLS);
  return r.lib ? { blas: wrap(deno!, r.lib, r.path) } : { blas: undefined, reason: r.reason };
}

/**
 * Products with fewer multiply-adds (m n k) than this run on one OpenBLAS thread. Measured on 2
 * cores (bench/README.md, issue 21): below it a second thread gains little or loses (784 x 20
 * x 1000, W1's first layer: 0.29 ms on one thread, 0.46 on two; 1000 x 120 x 256: 0.35 and
 * 0.34), above it two threads take 0.55-0.6x the time (W2's 784 x 512 x 1000). OpenBLAS's
 * workers also spin for a while after each threaded call, taking the core that oneDNN's threads
 * and our own kernels want next: a Fashion-MNIST conv net's small dense layers ran its epoch
 * 1.45x slower with two threads.
 */
export const SINGLE_THREAD_WORK = 2 ** 26;

function wrap(deno: typeof Deno, lib: Deno.DynamicLibrary<typeof SYMBOLS>, path: string): Blas {
  const s = lib.symbols;
  let threads: number | undefined;
  /** Sets OpenBLAS's threads for a product of m n k multiply-adds (when it lets us). */
  let threadsFor = (_work: number) => {};
  if (s.openblas_set_num_threads) {
    const set = s.openblas_set_num_threads;
    const want = Number(env("SGN_BLAS_THREADS") ?? "") ||
      (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator
        ?.hardwareConcurrency ||
      1;
    set(Math.max(1, Math.floor(want)));
    threads = s.openblas_get_num_threads ? s.openblas_get_num_threads() : want;
    const most = threads;
    let now = most;
    threadsFor = (work) => {
      const t = work < SINGLE_THREAD_WORK ? 1 : most;
      if (t !== now) set(now = t);
    };
  }
  const namePtr = s.openblas_get_corename ? s.openblas_get_corename() : null;
  const core = namePtr ? new deno.UnsafePointerView(namePtr).getCString() : undefined;
  const sgemm = s.cblas_sgemm;
  const dgemm = s.cblas_dgemm;
  return {
    path,
    threads,
    core,
    gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
      if (m === 0 || n === 0) return;
      const ta = transA ? CBLAS_TRANS : CBLAS_NO_TRANS;
      const tb = transB ? CBLAS_TRANS : CBLAS_NO_TRANS;
      // BLAS rejects leading dimensions below 1 even when a dimension is empty.
      lda = Math.max(1, lda);
      ldb = Math.max(1, ldb);
      ldc = Math.max(1, ldc);
      threadsFor(m * n * k);
      if (c instanceof Float64Array) {
        dgemm(CBLAS_ROW_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      } else {
        sgemm(CBLAS_ROW_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      }
    },
  };
}

/**
 * A checked matrix product spec through `blas.gemm`, one call per batch entry, into `out` (the
 * m n results of each entry one after the other): the calls the native backend makes for a
 * matmul, plainly and in replays (cpu/native_replay.ts), so both give the same numbers.
 *
 * @example
 * ```ts
 * import { gemmProduct, loadBlas } from "./blas.ts";
 * const { blas } = loadBlas();
 * const out = new Float32Array(4);
 * const spec = { m: 2, k: 2, n: 2, transA: false, transB: false, batch: 1, batchA: false,
 *   batchB: false, offsetA: 0, offsetB: 0, sums: false };
 * const a = new Float32Array([1, 2, 3, 4]);
 * if (blas) gemmProduct(blas, spec, a, a, out);
 * console.log(out); // [7, 10, 15, 22] with BLAS
 * ```
 */
export function gemmProduct(
  blas: Blas,
  spec: Required<MatmulSpec>,
  a: TypedArray,
  b: TypedArray,
  out: TypedArray,
): void {
  const { m, k, n, transA, transB, batch, batchA, batchB, offsetA, offsetB } = spec;
  const lda = transA ? m : k;
  const ldb = transB ? k : n;
  for (let t = 0; t < batch; t++) {
    const oa = offsetA + (batchA ? t * m * k : 0);
    const ob = offsetB + (batchB ? t * k * n : 0);
    blas.gemm(
      transA,
      transB,
      m,
      n,
      k,
      1,
      a.subarray(oa, oa + m * k),
      lda,
      b.subarray(ob, ob + k * n),
      ldb,
      0,
      out.subarray(t * m * n, (t + 1) * m * n),
      n,
    );
  }
}
