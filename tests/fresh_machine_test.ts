/**
 * What a newcomer sees: the main job and the CLI started as a user starts them, in an environment
 * without `XDG_RUNTIME_DIR` (containers, SSH sessions and CI runners have none), print on stderr
 * only the lines the CLI means to print. Without it, probing the WebGPU adapter made Mesa's
 * Vulkan driver (through libwayland-client) print "error: XDG_RUNTIME_DIR is invalid or not set
 * in the environment." twice before the program's first line (wgsl/runtime.ts `quietly`).
 */
import assert from "node:assert/strict";
import { denoDownloadLine, skipped, webgpu } from "./harness.ts";
import { vulkanDriverInstalled } from "../wgsl/runtime.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/**
 * Runs cli.ts in `cwd` with XDG_RUNTIME_DIR (and the CI-only test switches) unset, and its
 * temporary files in `cwd/tmp`.
 */
async function asNewcomer(cwd: string, ...args: string[]) {
  await Deno.mkdir(`${cwd}/tmp`, { recursive: true });
  const env: Record<string, string> = { ...Deno.env.toObject(), TMPDIR: `${cwd}/tmp` };
  for (const k of ["XDG_RUNTIME_DIR", "SGN_REQUIRE_WEBGPU", "SGN_REQUIRE_NATIVE", "SGN_BACKEND"]) {
    delete env[k];
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** The stderr lines that are not the CLI's one backend notice. */
function foreignLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) =>
    l !== "" && !/^sgn: using the \w+ backend/.test(l) && !denoDownloadLine(l)
  );
}

Deno.test("fresh machine: the main job without XDG_RUNTIME_DIR prints only its backend line on stderr", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sgn-newcomer-" });
  try {
    const run = await asNewcomer(dir);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(foreignLines(run.stderr), [], "stderr holds lines the CLI did not write");
    // The default choice explains itself in exactly one line.
    const own = run.stderr.trim().split("\n").filter((l) => !denoDownloadLine(l));
    assert.equal(own.length, 1, run.stderr);
    assert.match(run.stdout, /^open file:\/\/.*report\.html in a browser$/m);
    // The probe's private runtime directory is gone, and the user's environment was not changed.
    const left = [...Deno.readDirSync(`${dir}/tmp`)]
      .filter((e) => e.name.startsWith("sgn-webgpu-probe-"));
    assert.deepEqual(left.map((e) => e.name), [], "probe directories left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fresh machine: train on WebGPU and on the default backend without XDG_RUNTIME_DIR writes no foreign stderr line", async () => {
  const gpu = await webgpu();
  const dir = await Deno.makeTempDir({ prefix: "sgn-newcomer-" });
  try {
    const base = ["train", "--dataset", "sine_10", "--layers", "4", "--epochs", "1"];
    for (const backend of [...(gpu ? ["webgpu"] : []), "auto"]) {
      const run = await asNewcomer(dir, ...base, "--backend", backend, "--f", `run_${backend}`);
      assert.equal(run.code, 0, `${backend}: ${run.stderr}`);
      assert.deepEqual(foreignLines(run.stderr), [], `--backend ${backend}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "fresh machine: where a Vulkan driver is installed, WebGPU never loads libEGL (its exit-time destructor aborted runs)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const gpu = await webgpu();
    const icd = vulkanDriverInstalled();
    if (!gpu || !icd) {
      skipped("fresh machine: libEGL", "no WebGPU adapter, or no Vulkan driver installed");
      return;
    }
    const maps = await Deno.readTextFile("/proc/self/maps");
    assert.doesNotMatch(maps, /libEGL/, "libEGL is mapped into the process");
    assert.equal(Deno.env.get("DENO_WEBGPU_BACKEND"), undefined, "the probe's setting is undone");
  },
});
