/**
 * Runs bench/torch_port.py (the PyTorch CPU port of our runs and products) with the interpreter
 * the user names (`--torch PYTHON`). PyTorch is never a dependency: without it the bench scripts
 * stop with one line saying how to get it.
 *
 * @module
 */

import { openblasCoreType } from "../cpu/blas.ts";

/** The port's path. */
export const TORCH_PORT = new URL("./torch_port.py", import.meta.url).pathname;

/** How to get PyTorch, for the one-line errors. */
const INSTALL = "install PyTorch (Debian: apt-get install python3-torch) and pass that " +
  "interpreter, e.g. --torch /usr/bin/python3";

/** Deno's cache folder, where the port finds the npm data packages our loaders read. */
async function denoDir(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
    return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
  } catch {
    return undefined;
  }
}

/**
 * The OPENBLAS_CORETYPE our native backend runs with (cpu/blas.ts: the user's, else chosen from
 * the CPU's flags), so that PyTorch's matrix products call the same OpenBLAS kernels: Debian's
 * python3-torch calls the system's libblas.so.3, OpenBLAS 0.3.21 in Debian 12, which falls back
 * to generic kernels on CPUs newer than it.
 */
function coreType(): string | undefined {
  const set = Deno.env.get("OPENBLAS_CORETYPE");
  if (set) return set;
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return undefined;
  try {
    const line = Deno.readTextFileSync("/proc/cpuinfo").split("\n").find((l) =>
      l.startsWith("flags")
    );
    return line && openblasCoreType(line.slice(line.indexOf(":") + 1));
  } catch {
    return undefined;
  }
}

/**
 * Runs `python torch_port.py ...args`, its progress going to this process's stderr, and returns
 * its standard output's lines. Throws an Error with one line when the interpreter is missing,
 * cannot import torch, or the port fails.
 */
export async function runTorchPort(python: string, args: string[]): Promise<string[]> {
  const dir = Deno.env.get("DENO_DIR") ?? await denoDir();
  const core = coreType();
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(python, {
      args: [TORCH_PORT, ...args],
      env: { ...(dir ? { DENO_DIR: dir } : {}), ...(core ? { OPENBLAS_CORETYPE: core } : {}) },
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    throw new Error(`--torch ${python}: cannot run it (${(e as Error).message}); ${INSTALL}`);
  }
  const stderr = new TextDecoder().decode(out.stderr).trim();
  if (out.code === 3) throw new Error(`--torch ${python}: ${stderr.split("\n").at(-1)}`);
  if (out.code !== 0) {
    throw new Error(`torch_port.py ${args[0]} failed: ${stderr.split("\n").at(-1)}`);
  }
  if (stderr) console.error(stderr);
  return new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) => l !== "");
}

/** One line on the PyTorch in use (version, interpreter, threads, oneDNN, BLAS library). */
export async function torchAbout(python: string, threads?: number): Promise<string> {
  const t = threads ? ["--threads", String(threads)] : [];
  return (await runTorchPort(python, ["about", ...t])).join(" ");
}

/**
 * For a report's `--torch PYTHON` flag: the port's `about` line, "" without the flag; when the
 * interpreter cannot run the port, prints the one-line reason and exits with status 1.
 */
export async function torchAboutOrExit(python: string | undefined): Promise<string> {
  if (!python) return "";
  try {
    return await torchAbout(python);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
