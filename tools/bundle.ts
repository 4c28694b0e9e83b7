/**
 * Builds the browser files with esbuild: `dist/sgn.js`, the library (mod.ts) as one ES module, and
 * `dist/demo.js`, the script of `examples/browser/index.html`, which imports `./sgn.js` at run time
 * (so the demo also exercises the published bundle) and carries chart.js inside it.
 *
 * `deno task bundle` runs it; tests call {@link bundle} in-process.
 *
 * @example
 * ```ts
 * import { bundle } from "./bundle.ts";
 * const files = await bundle({ outdir: "dist" });
 * for (const f of files) console.log(f.path, f.bytes);
 * ```
 *
 * @module
 */

// The project uses full npm: specifiers rather than an import map (see README).
// deno-lint-ignore no-import-prefix
import * as esbuild from "npm:esbuild@0.28.2";
import { denoNpmPlugin } from "../report/deno_npm.ts";

/**
 * Options of {@link bundle}.
 *
 * @example
 * ```ts
 * import { bundle, type BundleOptions } from "./bundle.ts";
 * const options: BundleOptions = { outdir: "/tmp/sgn-dist", minify: true };
 * await bundle(options);
 * ```
 */
export interface BundleOptions {
  /** Output folder; default `dist/` of the repository. */
  outdir?: string;
  /** Minify the output (default false: the bundle stays readable, the sizes honest). */
  minify?: boolean;
}

/**
 * One file that {@link bundle} wrote.
 *
 * @example
 * ```ts
 * import { bundle, type BundledFile } from "./bundle.ts";
 * const files: BundledFile[] = await bundle();
 * console.log(files.map((f) => `${f.path}: ${f.bytes} bytes`).join("\n"));
 * ```
 */
export interface BundledFile {
  /** Absolute path. */
  path: string;
  bytes: number;
}

const ROOT = new URL("../", import.meta.url);

function repoPath(rel: string): string {
  return decodeURIComponent(new URL(rel, ROOT).pathname);
}

/**
 * What must never reach the browser bundle of the library: the data sets (npm packages, files),
 * and `Deno` used without a guard, which would throw in a browser at load or in training. The one
 * accepted form is `globalThis.Deno?.…`, which is undefined there.
 */
function checkLibrary(meta: esbuild.Metafile, path: string): void {
  const bad = Object.keys(meta.inputs).filter((p) => /(^|\/)datasets\//.test(p));
  if (bad.length > 0) {
    throw new Error(`${path} must not contain the data sets, but includes ${bad.join(", ")}`);
  }
  const lines = Deno.readTextFileSync(path).split("\n");
  const unguarded = lines
    .map((line, i) => ({ line, i }))
    .filter(({ line }) => /\bDeno\b/.test(line.replaceAll("globalThis.Deno?.", "")));
  if (unguarded.length > 0) {
    throw new Error(
      `${path} uses Deno without a guard (write globalThis.Deno?.… so browsers skip it):\n` +
        unguarded.map(({ line, i }) => `  line ${i + 1}: ${line.trim()}`).join("\n"),
    );
  }
}

/**
 * Writes `sgn.js` (mod.ts) and `demo.js` (examples/browser/demo.ts), each with a source map, into
 * `outdir`, and returns the files written.
 *
 * @example
 * ```ts
 * import { bundle } from "./bundle.ts";
 * console.log(await bundle());
 * ```
 */
export async function bundle(options: BundleOptions = {}): Promise<BundledFile[]> {
  const outdir = options.outdir ?? repoPath("dist");
  await Deno.mkdir(outdir, { recursive: true });
  const linkDir = await Deno.makeTempDir({ prefix: "sgn-bundle-" });
  const common: esbuild.BuildOptions = {
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    sourcemap: true,
    minify: options.minify ?? false,
    metafile: true,
    logLevel: "silent",
    absWorkingDir: repoPath("./"),
  };
  // One plugin for both builds, so that each npm package is looked up and linked once. node:
  // imports fail the build: the browser has no Node or Deno built-ins.
  const npm = denoNpmPlugin({ linkDir, rejectNode: true });
  const mod = repoPath("mod.ts");
  try {
    const lib = await esbuild.build({
      ...common,
      entryPoints: [mod],
      outfile: `${outdir}/sgn.js`,
      plugins: [npm],
    });
    checkLibrary(lib.metafile!, `${outdir}/sgn.js`);
    await esbuild.build({
      ...common,
      entryPoints: [repoPath("examples/browser/demo.ts")],
      outfile: `${outdir}/demo.js`,
      plugins: [
        {
          name: "library-from-sgn-js",
          setup(build) {
            // The demo loads the library the way a user's page would: from the bundle beside it.
            build.onResolve({ filter: /(^|\/)mod\.ts$/ }, (args) => {
              const target = decodeURIComponent(
                new URL(args.path, `file://${args.importer}`).pathname,
              );
              return target === mod ? { path: "./sgn.js", external: true } : undefined;
            });
          },
        },
        npm,
      ],
    });
  } finally {
    await Deno.remove(linkDir, { recursive: true }).catch(() => {});
    // esbuild keeps a child process alive between builds; without stop() Deno would not exit (and
    // a test would leak it). The next bundle() starts a new one.
    await esbuild.stop();
  }
  const files: BundledFile[] = [];
  for (const name of ["sgn.js", "sgn.js.map", "demo.js", "demo.js.map"]) {
    const path = `${outdir}/${name}`;
    files.push({ path, bytes: (await Deno.stat(path)).size });
  }
  return files;
}

if (import.meta.main) {
  const files = await bundle({ minify: Deno.args.includes("--minify") });
  for (const f of files) {
    console.log(`${f.path.replace(repoPath("./"), "")}  ${(f.bytes / 1024).toFixed(1)} KiB`);
  }
}
