/**
 * Bundles the report's page script (report/page.ts and chart.js) into one minified script with
 * esbuild, so the report is a single HTML file that opens offline. chart.js's `npm:` specifier is
 * resolved through Deno's npm cache by {@link denoNpmPlugin} (report/deno_npm.ts).
 *
 * @module
 */

// A full npm: specifier: the project has no import map.
// deno-lint-ignore no-import-prefix
import * as esbuild from "npm:esbuild@0.28.2";
import { fileURLToPath } from "node:url";
import { denoNpmPlugin } from "./deno_npm.ts";

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
  const linkDir = await Deno.makeTempDir({ prefix: "sgn-report-bundle-" });
  try {
    const result = await esbuild.build({
      entryPoints: [fileURLToPath(entry)],
      bundle: true,
      format: "iife",
      minify: true,
      write: false,
      logLevel: "silent",
      // The page runs in a browser: a node: import would only fail there, when the report opens.
      plugins: [denoNpmPlugin({ linkDir, rejectNode: true })],
    });
    cached = result.outputFiles[0].text;
    return cached;
  } finally {
    // esbuild keeps a service process alive; stop it so the command (and tests) can end.
    await esbuild.stop();
    await Deno.remove(linkDir, { recursive: true });
  }
}
