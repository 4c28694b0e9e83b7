/**
 * Bundles the report's page script (report/page.ts and chart.js) into one minified script with
 * esbuild, so the report is a single HTML file that opens offline.
 *
 * esbuild does not know Deno's `npm:` specifiers, and Deno's npm cache is not a node_modules
 * tree (packages sit at `<cache>/<name>/<version>`). So `deno info --json` tells where Deno keeps
 * each package and its dependencies, a temporary node_modules of symbolic links points there,
 * and esbuild resolves package exports and internal imports through it as usual.
 *
 * @module
 */

// A full npm: specifier: the project has no import map.
// deno-lint-ignore no-import-prefix
import * as esbuild from "npm:esbuild@0.28.2";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

interface NpmPackageInfo {
  name: string;
  version: string;
  localPath: string;
}

/** Asks Deno to fetch (if needed) an npm package and where it and its dependencies live. */
async function denoNpmPackages(specifier: string): Promise<NpmPackageInfo[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    // No config: the lookup must not depend on the folder the report is written from.
    args: ["info", "--json", "--no-config", specifier],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `deno info ${specifier} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  return Object.values(info.npmPackages ?? {}) as NpmPackageInfo[];
}

/** esbuild plugin: `npm:name@version/sub` becomes `name/sub`, found in the linked node_modules. */
function denoNpmPlugin(nodeModules: string): esbuild.Plugin {
  const linked = new Set<string>();
  return {
    name: "deno-npm",
    setup(build) {
      build.onResolve({ filter: /^npm:/ }, async (args) => {
        const m = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@([^/]+)(\/.*)?$/.exec(args.path);
        if (!m) {
          return { errors: [{ text: `${args.path}: give npm specifiers as npm:name@version` }] };
        }
        const [, name, version, sub = ""] = m;
        for (const p of await denoNpmPackages(`npm:${name}@${version}`)) {
          if (linked.has(p.name)) continue;
          linked.add(p.name);
          const link = join(nodeModules, p.name);
          await Deno.mkdir(join(link, ".."), { recursive: true });
          await Deno.symlink(p.localPath, link);
        }
        const r = await build.resolve(name + sub, { kind: args.kind, resolveDir: nodeModules });
        return r.errors.length ? { errors: r.errors } : { path: r.path };
      });
    },
  };
}

let cached: string | undefined;

/**
 * The page script with chart.js, bundled and minified, as the text of one classic script (IIFE).
 * The result is kept for the rest of the process: the sources do not change while it runs.
 *
 * @example
 * ```ts ignore
 * const js = await bundlePageScript();
 * const html = `<script>${js}</script>`;
 * ```
 */
export async function bundlePageScript(): Promise<string> {
  if (cached !== undefined) return cached;
  const entry = new URL("./page.ts", import.meta.url);
  if (entry.protocol !== "file:") {
    throw new Error(`the report's page script must be a local file to bundle, not ${entry}`);
  }
  const tmp = await Deno.makeTempDir({ prefix: "sgn-report-bundle-" });
  const nodeModules = join(tmp, "node_modules");
  try {
    await Deno.mkdir(nodeModules);
    const result = await esbuild.build({
      entryPoints: [fileURLToPath(entry)],
      bundle: true,
      format: "iife",
      minify: true,
      write: false,
      logLevel: "silent",
      nodePaths: [nodeModules],
      plugins: [denoNpmPlugin(nodeModules)],
    });
    cached = result.outputFiles[0].text;
    return cached;
  } finally {
    // esbuild keeps a service process alive; stop it so the command (and tests) can end.
    await esbuild.stop();
    await Deno.remove(tmp, { recursive: true });
  }
}
