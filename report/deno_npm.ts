/**
 * An esbuild plugin that resolves Deno's `npm:name@version[/subpath]` specifiers, for the two
 * bundlers of the project: the report's page script (report/bundle.ts) and the browser files
 * (tools/bundle.ts). It lives in report/ because tools/ may import from report/, not the reverse.
 *
 * esbuild does not know `npm:` specifiers, and Deno's npm cache is not a node_modules tree
 * (packages sit at `<cache>/<name>/<version>`). So `deno info --json` tells where Deno keeps each
 * package and its dependencies, a folder of symbolic links (`<folder>/<name>` to the cached
 * package) serves as a node_modules, and esbuild resolves package exports and the packages'
 * imports of each other through it as usual.
 *
 * @example
 * ```ts ignore
 * import * as esbuild from "npm:esbuild@0.28.2";
 * import { denoNpmPlugin } from "./deno_npm.ts";
 *
 * const links = await Deno.makeTempDir();
 * try {
 *   await esbuild.build({
 *     entryPoints: ["page.ts"],
 *     bundle: true,
 *     outfile: "page.js",
 *     plugins: [denoNpmPlugin({ linkDir: links, rejectNode: true })],
 *   });
 * } finally {
 *   await esbuild.stop();
 *   await Deno.remove(links, { recursive: true });
 * }
 * ```
 *
 * @module
 */

// A type import only: the callers load esbuild itself. A full npm: specifier, as everywhere in
// the project (there is no import map).
// deno-lint-ignore no-import-prefix
import type * as esbuild from "npm:esbuild@0.28.2";
import { dirname, join } from "node:path";

/**
 * The parts of an `npm:` specifier.
 *
 * @example
 * ```ts
 * import { type NpmSpecifier, parseNpmSpecifier } from "./deno_npm.ts";
 * const s: NpmSpecifier = parseNpmSpecifier("npm:chart.js@4.6.1/auto");
 * console.log(s.name, s.version, s.sub); // chart.js 4.6.1 /auto
 * ```
 */
export interface NpmSpecifier {
  /** The package's name, with its scope: `chart.js`, `@kurkle/color`. */
  name: string;
  /** The exact version: `4.6.1`. */
  version: string;
  /** The subpath with its leading slash, or "" for the package's main export. */
  sub: string;
}

// An exact version (with an optional prerelease or build tag): a range or a dist-tag would let
// the bundle change with the registry while Deno's type check keeps seeing the old version.
const SPECIFIER = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?)(\/.*)?$/;

/**
 * Splits `npm:name@version[/subpath]` (Deno's form; also `npm:/name@…`, as Deno redirects it).
 * Throws unless the specifier names an exact version.
 *
 * @example
 * ```ts
 * import { parseNpmSpecifier } from "./deno_npm.ts";
 * console.log(parseNpmSpecifier("npm:@kurkle/color@0.3.4")); // { name: "@kurkle/color", … }
 * try {
 *   parseNpmSpecifier("npm:chart.js@^4");
 * } catch (e) {
 *   console.log((e as Error).message); // …must name an exact version…
 * }
 * ```
 */
export function parseNpmSpecifier(specifier: string): NpmSpecifier {
  const m = SPECIFIER.exec(specifier);
  if (!m) {
    throw new Error(
      `${specifier}: npm specifiers must name an exact version (npm:name@1.2.3[/subpath])`,
    );
  }
  return { name: m[1], version: m[2], sub: m[3] ?? "" };
}

interface NpmPackageInfo {
  name: string;
  version: string;
  localPath?: string;
}

/** Asks Deno to fetch (if needed) an npm package, and where it and its dependencies live. */
async function denoNpmPackages(specifier: string): Promise<NpmPackageInfo[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    // No config: the lookup must not depend on the folder the bundler runs in (a deno.json there
    // would also make deno info list every package of its lockfile, not the graph asked for).
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

/**
 * Options of {@link denoNpmPlugin}.
 *
 * @example
 * ```ts ignore
 * const options: DenoNpmOptions = { linkDir: await Deno.makeTempDir(), rejectNode: true };
 * ```
 */
export interface DenoNpmOptions {
  /**
   * An empty folder the plugin fills with a link per package; the caller creates it and removes
   * it after the build. The plugin adds it to esbuild's `nodePaths`.
   */
  linkDir: string;
  /**
   * Fail the build on `node:` imports, naming the importer: a browser has no Node built-ins, and
   * esbuild would otherwise leave them as imports that fail only when the page loads.
   */
  rejectNode?: boolean;
}

interface Link {
  version: string;
  /** Who brought this version in, for the error about two versions. */
  via: string;
  /** Settles once the link is on disk; a concurrent resolve of the same name waits for it. */
  ready: Promise<void>;
}

/**
 * The esbuild plugin: `npm:name@version/sub` resolves as `name/sub` would in a node_modules that
 * holds the package and its dependencies. One plugin object may serve several builds over the same
 * `linkDir`; each package is looked up with `deno info` and linked once.
 *
 * A flat folder of links holds one version of a name, so a second version of a package already
 * linked (asked for directly, or as a dependency) is an error rather than a silent mix-up.
 *
 * @example
 * ```ts ignore
 * import * as esbuild from "npm:esbuild@0.28.2";
 * import { denoNpmPlugin } from "./deno_npm.ts";
 *
 * const npm = denoNpmPlugin({ linkDir: await Deno.makeTempDir(), rejectNode: true });
 * await esbuild.build({ entryPoints: ["a.ts"], bundle: true, outfile: "a.js", plugins: [npm] });
 * await esbuild.build({ entryPoints: ["b.ts"], bundle: true, outfile: "b.js", plugins: [npm] });
 * await esbuild.stop();
 * ```
 */
export function denoNpmPlugin(options: DenoNpmOptions): esbuild.Plugin {
  const { linkDir, rejectNode = false } = options;
  // Per `name@version` asked for: the deno info call and the linking of what it lists.
  const fetched = new Map<string, Promise<void>>();
  // Per package name: the one version linked.
  const links = new Map<string, Link>();

  const link = (p: NpmPackageInfo, via: string): Promise<void> => {
    const before = links.get(p.name);
    if (before) {
      if (before.version !== p.version) {
        throw new Error(
          `${p.name} is needed in two versions, ${before.version} (by ${before.via}) and ` +
            `${p.version} (by ${via}); a bundle can hold only one: make them agree`,
        );
      }
      return before.ready;
    }
    if (!p.localPath) throw new Error(`deno info gave no local path for ${p.name}@${p.version}`);
    const target = p.localPath;
    const path = join(linkDir, p.name);
    const ready = (async () => {
      await Deno.mkdir(dirname(path), { recursive: true });
      try {
        await Deno.symlink(target, path);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        // Linked by another plugin object over the same folder: fine if it is the same package.
        const real = await Deno.realPath(path);
        if (real !== await Deno.realPath(target)) {
          throw new Error(`${path} already links to ${real}, not ${p.name}@${p.version}`);
        }
      }
    })();
    // Set before the first await, so that concurrent resolves see it.
    links.set(p.name, { version: p.version, via, ready });
    return ready;
  };

  const fetch = (name: string, version: string): Promise<void> => {
    const key = `${name}@${version}`;
    let done = fetched.get(key);
    if (!done) {
      done = (async () => {
        const packages = await denoNpmPackages(`npm:${key}`);
        if (!packages.length) {
          // What deno info gives when it could not fetch the package's registry data.
          throw new Error(
            `deno info npm:${key} found no package: Deno could not fetch it from the npm ` +
              `registry (offline, or behind a proxy whose certificate Deno does not trust: set ` +
              `NODE_EXTRA_CA_CERTS or DENO_CERT to the proxy's certificate file)`,
          );
        }
        if (!packages.some((p) => p.name === name && p.version === version)) {
          throw new Error(`deno info npm:${key} did not list ${key} itself`);
        }
        await Promise.all(packages.map((p) => link(p, `npm:${key}`)));
      })();
      fetched.set(key, done);
    }
    return done;
  };

  return {
    name: "deno-npm",
    setup(build) {
      // esbuild resolves symbolic links to their targets, so the packages' imports of each other
      // start from Deno's cache, where no node_modules is: the link folder must be a search path.
      const paths = build.initialOptions.nodePaths ?? [];
      if (!paths.includes(linkDir)) build.initialOptions.nodePaths = [...paths, linkDir];

      if (rejectNode) {
        build.onResolve({ filter: /^node:/ }, (args) => ({
          errors: [{
            text: `${args.path} is imported by ${args.importer}: a browser bundle must not use ` +
              `Node or Deno built-ins`,
          }],
        }));
      }
      build.onResolve({ filter: /^npm:/ }, async (args) => {
        let spec: NpmSpecifier;
        try {
          spec = parseNpmSpecifier(args.path);
          await fetch(spec.name, spec.version);
        } catch (e) {
          return { errors: [{ text: `${args.importer}: ${(e as Error).message}` }] };
        }
        // fetch() linked exactly spec.version under spec.name, or failed on a second version.
        return await build.resolve(spec.name + spec.sub, {
          kind: args.kind,
          resolveDir: linkDir,
        });
      });
    },
  };
}
