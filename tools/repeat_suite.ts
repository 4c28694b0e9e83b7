/**
 * Runs the test suite (or some test files) many times, to catch a rare failure at process exit:
 * glibc's "corrupted size vs. prev_size in fastbins" and exit 134 (SIGABRT) after every test had
 * passed. Found with it: in about 2% of runs, libEGL's destructor (wgpu's OpenGL backend loaded
 * it beside Vulkan) and a worker thread's exit freed the same thread state; the WebGPU probe now
 * keeps wgpu to Vulkan where a Vulkan driver is installed (wgsl/runtime.ts).
 *
 * Each run gets core dumps (`ulimit -c unlimited`; cores land in the run's own folder when the
 * kernel's core_pattern is relative) and, with `--malloc-check`, glibc's heap consistency checks
 * (`GLIBC_TUNABLES=glibc.malloc.check=3:glibc.malloc.perturb=165`), which make heap corruption
 * abort nearer to its cause. Logs of every failing run are kept. To read a core:
 * `gdb -batch -ex "thread apply all bt" $(readlink -f $(which deno)) core`.
 *
 * Run (not part of CI; the whole suite takes minutes a run on 2 cores):
 * `deno run -A tools/repeat_suite.ts [--runs N] [--backend native|webgpu|both] [--malloc-check]
 *  [--out DIR] [test files...]`
 * Exits 1 if any run failed; prints a line per run and a summary.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** What one run of the suite ended with. */
export interface RunOutcome {
  code: number;
  signal: string | null;
  /** The glibc heap message, if the run printed one. */
  heap?: string;
  /** Deno's closing line (`ok | N passed | ...` or `FAILED | ...`), if it printed one. */
  summary?: string;
}

/** Reads the outcome of a run from its exit status and its combined output. */
export function outcomeOf(code: number, signal: string | null, output: string): RunOutcome {
  // deno-lint-ignore no-control-regex
  const text = output.replace(/\x1b\[[0-9;]*m/g, "");
  const heap = /(corrupted [^\n]*|double free[^\n]*|free\(\): [^\n]*|malloc\(\): [^\n]*)/.exec(
    text,
  );
  const summary = [...text.matchAll(/^(ok|FAILED) \| \d+ passed.*$/gm)].at(-1)?.[0];
  return { code, signal, ...(heap ? { heap: heap[1] } : {}), ...(summary ? { summary } : {}) };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      runs: { type: "string", default: "10" },
      backend: { type: "string", default: "both" },
      "malloc-check": { type: "boolean", default: false },
      out: { type: "string", default: "" },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`--runs must be a positive integer, not "${values.runs}"`);
    Deno.exit(2);
  }
  const backends = values.backend === "both" ? ["native", "webgpu"] : [values.backend];
  if (!backends.every((b) => b === "native" || b === "webgpu")) {
    console.error(`--backend must be native, webgpu or both, not "${values.backend}"`);
    Deno.exit(2);
  }
  const root = new URL("..", import.meta.url).pathname;
  const out = values.out || await Deno.makeTempDir({ prefix: "sgn-repeat-" });
  await Deno.mkdir(out, { recursive: true });
  const files = positionals.length > 0 ? positionals.join(" ") : "";
  let failed = 0;
  for (let i = 1; i <= runs; i++) {
    for (const backend of backends) {
      const dir = `${out}/run-${i}-${backend}`;
      await Deno.mkdir(dir, { recursive: true });
      const env: Record<string, string> = { SGN_BACKEND: backend, NO_COLOR: "1" };
      if (values["malloc-check"]) {
        env.GLIBC_TUNABLES = "glibc.malloc.check=3:glibc.malloc.perturb=165";
      }
      // A shell, for `ulimit -c`; cores land in the run's folder where core_pattern is relative.
      const cmd = `ulimit -c unlimited; cd ${JSON.stringify(root)} && ` +
        `${JSON.stringify(Deno.execPath())} test -A --parallel=false ${files} ` +
        `> ${JSON.stringify(`${dir}/log`)} 2>&1`;
      const t0 = performance.now();
      const r = await new Deno.Command("bash", { args: ["-c", cmd], env, cwd: dir }).output();
      const log = await Deno.readTextFile(`${dir}/log`);
      const o = outcomeOf(r.code, r.signal, log);
      const secs = ((performance.now() - t0) / 1000).toFixed(0);
      const bad = o.code !== 0 || o.heap !== undefined || o.summary === undefined;
      if (bad) failed++;
      else await Deno.remove(dir, { recursive: true });
      console.log(
        `${bad ? "FAILED" : "ok    "} run ${i}/${runs} ${backend}: exit ${o.code}` +
          `${o.signal ? ` (${o.signal})` : ""}, ${o.summary ?? "no closing line"}` +
          `${o.heap ? `, heap: ${o.heap}` : ""} (${secs} s)${bad ? `, log in ${dir}` : ""}`,
      );
    }
  }
  console.log(`${runs * backends.length - failed} of ${runs * backends.length} runs clean`);
  Deno.exit(failed > 0 ? 1 : 0);
}
