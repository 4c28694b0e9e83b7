/**
 * Matrix products through the native backend against NumPy's `a @ b` on the same shapes and
 * dtypes, in the same run: `deno run -A bench/blas_report.ts [--python /usr/bin/python3]`.
 *
 * Debian's python3-numpy calls the same OpenBLAS (libblas.so.3 -> openblas-pthread), so NumPy
 * runs with the OPENBLAS_CORETYPE and thread count this process chose (printed), and the table
 * compares the two callers of one library. Each figure is the best of `TRIALS` timings of one
 * product.
 */
import { parseArgs } from "node:util";
import { NativeBackend } from "../cpu/native.ts";
import { Random } from "../random.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { python: { type: "string", default: "/usr/bin/python3" } },
});
const TRIALS = 30;
const SHAPES: [number, number, number][] = [[1000, 784, 256], [1000, 512, 512], [1000, 784, 20]];

const r = NativeBackend.create();
if (!r.backend) {
  console.error(`native backend unavailable: ${r.reason}`);
  Deno.exit(1);
}
const be = r.backend;
const core = Deno.env.get("OPENBLAS_CORETYPE") ?? "";
const threads = String(be.blas.threads ?? "");
console.log(`native: ${be.description}; OPENBLAS_CORETYPE=${core || "(unset)"}`);

const PY = `
import sys, time, numpy as np
m, k, n, dt, trials = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
rng = np.random.default_rng(1)
a = rng.uniform(-1, 1, (m, k)).astype(dt); b = rng.uniform(-1, 1, (k, n)).astype(dt)
a @ b
best = min((lambda t0: (a @ b, time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(trials))
libs = sorted({l.split()[-1].split('/')[-1] for l in open('/proc/self/maps') if 'blas' in l})
print(best * 1e3, np.__version__, ",".join(libs))
`;

async function numpy(m: number, k: number, n: number, dtype: string) {
  const out = await new Deno.Command(flags.python, {
    args: ["-c", PY, String(m), String(k), String(n), dtype, String(TRIALS)],
    env: {
      ...(core ? { OPENBLAS_CORETYPE: core } : {}),
      ...(threads ? { OPENBLAS_NUM_THREADS: threads } : {}),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  const [ms, version, libs] = new TextDecoder().decode(out.stdout).trim().split(" ");
  return { ms: Number(ms), version, libs };
}

console.log("| shape | dtype | native ms | native GFLOP/s | numpy ms | numpy GFLOP/s | ratio |");
console.log("|---|---|---:|---:|---:|---:|---:|");
let about = "";
for (const dtype of ["float32", "float64"] as const) {
  for (const [m, k, n] of SHAPES) {
    const rng = new Random(1);
    const make = (size: number) => {
      const v = rng.array(size, (q) => q.range(-1, 1));
      return be.upload(dtype === "float64" ? v : Float32Array.from(v));
    };
    const a = make(m * k), b = make(k * n);
    be.release(be.matmul(a, b, { m, k, n }));
    let best = Infinity;
    for (let t = 0; t < TRIALS; t++) {
      const t0 = performance.now();
      const c = be.matmul(a, b, { m, k, n });
      best = Math.min(best, performance.now() - t0);
      be.release(c);
    }
    be.release(a);
    be.release(b);
    const np = await numpy(m, k, n, dtype);
    about = `numpy ${np.version} with ${np.libs}`;
    const gf = (ms: number) => (2 * m * k * n / ms / 1e6).toFixed(1);
    console.log(
      `| ${m}x${k}x${n} | ${dtype} | ${best.toFixed(3)} | ${gf(best)} | ${np.ms.toFixed(3)} | ` +
        `${gf(np.ms)} | ${(np.ms / best).toFixed(2)}x |`,
    );
  }
}
console.log(`\n${about}; ratio = numpy time / native time (>= 1: native as fast or faster)`);
