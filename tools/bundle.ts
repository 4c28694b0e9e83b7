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

/** `npm:name@version/sub` split into the package's name and version and the subpath. */
function parseNpm(specifier: string): { name: string; version: string; sub: string } {
  const m = /^npm:\/?((?:@[^/]+\/)?[^@/]+)@([^/]+)(\/.*)?$/.exec(specifier);
  if (!m) {
    throw new Error(
      `${specifier}: npm specifiers must name an exact version (npm:name@1.2.3[/subpath])`,
    );
  }
  return { name: m[1], version: m[2], sub: m[3] ?? "" };
}

interface NpmInfo {
  npmPackages?: Record<string, { name: string; version: string; localPath?: string }>;
}

/**
 * Makes the npm packages of `specifier` (and their dependencies) resolvable by esbuild: Deno
 * downloads them into its own cache, whose layout is not node_modules, so each package gets a
 * symlink in `linkDir/<name>` and esbuild searches `linkDir` as a NODE_PATH. This keeps Deno's
 * lockfile the one place that pins versions, with no node_modules folder in the repository.
 */
async function linkNpmPackage(specifier: string, linkDir: string): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", specifier],
    cwd: repoPath("./"),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno info ${specifier} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as NpmInfo;
  const seen = new Map<string, string>();
  for (const pkg of Object.values(info.npmPackages ?? {})) {
    if (!pkg.localPath) throw new Error(`deno info gave no local path for ${pkg.name}`);
    const before = seen.get(pkg.name);
    // A flat NODE_PATH holds one version of a name; two would silently bundle the wrong one.
    if (before && before !== pkg.version) {
      throw new Error(`${pkg.name} is needed in versions ${before} and ${pkg.version}`);
    }
    seen.set(pkg.name, pkg.version);
    const link = `${linkDir}/${pkg.name}`;
    await Deno.mkdir(link.slice(0, link.lastIndexOf("/")), { recursive: true });
    await Deno.remove(link).catch(() => {});
    await Deno.symlink(pkg.localPath, link);
  }
}

/**
 * Resolves the module graph as Deno does, where esbuild would not: `npm:` specifiers through
 * Deno's npm cache, and `node:` modules rejected, since the browser has none.
 */
function denoResolver(linkDir: string): esbuild.Plugin {
  const linked = new Map<string, Promise<void>>();
  return {
    name: "deno-specifiers",
    setup(build) {
      build.onResolve({ filter: /^node:/ }, (args) => ({
        errors: [{
          text: `${args.path} is imported by ${args.importer}: the browser bundle must not ` +
            `use Node or Deno built-ins`,
        }],
      }));
      build.onResolve({ filter: /^npm:/ }, async (args) => {
        const { name, version, sub } = parseNpm(args.path);
        const key = `${name}@${version}`;
        if (!linked.has(key)) linked.set(key, linkNpmPackage(`npm:${key}`, linkDir));
        await linked.get(key);
        const real = await Deno.realPath(`${linkDir}/${name}`);
        if (!real.endsWith(`/${version}`)) {
          throw new Error(`${args.path}: Deno resolved ${name} to ${real}`);
        }
        return await build.resolve(name + sub, {
          kind: args.kind,
          resolveDir: linkDir,
        });
      });
    },
  };
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
    nodePaths: [linkDir],
    absWorkingDir: repoPath("./"),
  };
  const mod = repoPath("mod.ts");
  try {
    const lib = await esbuild.build({
      ...common,
      entryPoints: [mod],
      outfile: `${outdir}/sgn.js`,
      plugins: [denoResolver(linkDir)],
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
        denoResolver(linkDir),
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
