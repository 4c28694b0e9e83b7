/**
 * Where a native-backend run's time goes, by category, from a V8 CPU profile: BLAS, the compiled
 * kernels, the softmax loop, garbage collection, kernel lookup, allocation, and the library's
 * own host code by file and function. Percentages of samples, which a loaded machine changes
 * far less than it changes times.
 *
 * ```sh
 * SGN_BLAS_THREADS=1 deno run -A --cpu-prof --cpu-prof-dir=prof bench/overhead_report.ts 200 --only SGN
 * deno run -A bench/profile_report.ts prof/*.cpuprofile
 * ```
 *
 * (`SGN_BLAS_THREADS=1` keeps OpenBLAS's waiting threads out of the BLAS share on a busy machine.)
 */

interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * The phase of one sample: the work itself (BLAS, compiled kernels, the softmax loop), garbage
 * collection, or host code outside the work: inside a backend call (the run and matmul wrappers,
 * allocation, kernel lookup, epilogue kernels' construction), in Lazy.realize's bookkeeping, the
 * optimizer's own code, or building the graph (autodiff tracing and lazy fusion).
 */
function phase(stack: CallFrame[]): string {
  const leaf = stack[0];
  const has = (p: (f: CallFrame) => boolean) => stack.some(p);
  if (leaf.functionName === "(garbage collector)") return "garbage collection";
  if (leaf.functionName === "(idle)" || leaf.functionName === "(program)") return "idle / program";
  if (has((f) => f.functionName === "gemm")) return "work: BLAS";
  if (leaf.url === "" && leaf.functionName === "") return "work: compiled kernels";
  if (has((f) => f.functionName === "softmax" && f.url.endsWith("cpu/native.ts"))) {
    return "work: softmax loop";
  }
  if (has((f) => ["run", "matmul", "epilogue"].includes(f.functionName) && /\/cpu\//.test(f.url))) {
    return "host: inside backend calls (wrappers, allocation, kernel lookup)";
  }
  if (has((f) => f.functionName === "realize" && f.url.endsWith("kernel/lazy.ts"))) {
    return "host: Lazy.realize bookkeeping";
  }
  if (has((f) => /\/sgn\//.test(f.url)) && !has((f) => /\/autodiff\//.test(f.url))) {
    return "host: optimizer code (sgn/)";
  }
  return "host: building the graph (autodiff tracing, lazy fusion) and setup";
}

/** The category of one sample from its stack (innermost frame first). */
function category(stack: CallFrame[]): string {
  const leaf = stack[0];
  const file = (f: CallFrame) =>
    f.url.replace(/^.*?\/(?=(?:kernel|autodiff|cpu|wgsl|sgn|models|bench)\/)/, "");
  const has = (p: (f: CallFrame) => boolean) => stack.some(p);
  if (leaf.functionName === "(garbage collector)") return "garbage collection";
  if (leaf.functionName === "(idle)" || leaf.functionName === "(program)") return "idle / program";
  if (has((f) => f.functionName === "gemm")) return "BLAS";
  // Compiled kernels are anonymous functions made by new Function (no url).
  if (leaf.url === "" && leaf.functionName === "") return "compiled kernels";
  if (has((f) => f.functionName === "softmax" && f.url.endsWith("cpu/native.ts"))) {
    return "softmax loop";
  }
  if (has((f) => f.functionName === "compileKernel")) return "kernel lookup (cpu/compile.ts)";
  if (has((f) => ["alloc", "release", "zeros"].includes(f.functionName) && /\/cpu\//.test(f.url))) {
    return "allocation and release (cpu/)";
  }
  const own = stack.find((f) =>
    /\/(kernel|autodiff|cpu|sgn|models|wgsl)\//.test(f.url) || /\/backend\.ts$/.test(f.url)
  );
  return own ? `${file(own)} ${own.functionName || "(anonymous)"}` : "other";
}

const totals = new Map<string, number>();
const phases = new Map<string, number>();
let all = 0;
for (const path of Deno.args) {
  const p = JSON.parse(Deno.readTextFileSync(path)) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  p.samples.forEach((id, i) => {
    const stack: CallFrame[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      stack.push(byId.get(at)!.callFrame);
    }
    const t = p.timeDeltas[i] ?? 0;
    const c = category(stack);
    totals.set(c, (totals.get(c) ?? 0) + t);
    const ph = phase(stack);
    phases.set(ph, (phases.get(ph) ?? 0) + t);
    all += t;
  });
}
if (all === 0) {
  console.error("usage: deno run -A bench/profile_report.ts FILE.cpuprofile...");
  Deno.exit(1);
}
for (const [title, table] of [["phase", phases], ["where", totals]] as const) {
  console.log(`\n| ${title} | share of samples |\n|---|---:|`);
  for (const [c, t] of [...table].sort((a, b) => b[1] - a[1])) {
    if (t / all >= 0.002) console.log(`| ${c} | ${(100 * t / all).toFixed(1)}% |`);
  }
}
