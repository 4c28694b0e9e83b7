/**
 * The bundlers' resolution of `npm:` specifiers through Deno's cache (report/deno_npm.ts): a
 * package Deno has links into the folder esbuild searches; one Deno cannot fetch (no network, or
 * a proxy whose certificate it does not trust) is refused with the reason and what to set, as
 * esbuild shows a plugin's error, not a stack trace.
 *
 * The plugin runs under a stand-in for esbuild's build object that keeps its resolve callback.
 */
import assert from "node:assert/strict";
import { denoNpmPlugin } from "../report/deno_npm.ts";

/** The plugin's answer for `npm:` specifier `path`, through its resolve callback. */
async function resolveWith(linkDir: string, path: string): Promise<unknown> {
  const plugin = denoNpmPlugin({ linkDir });
  let resolve: ((args: unknown) => Promise<unknown>) | undefined;
  const build = {
    initialOptions: {},
    onResolve: (o: { filter: RegExp }, f: (args: unknown) => Promise<unknown>) => {
      if (o.filter.source === "^npm:") resolve = f;
    },
    resolve: (p: string) => Promise.resolve({ path: `resolved ${p}` }),
  };
  plugin.setup(build as unknown as Parameters<typeof plugin.setup>[0]);
  assert.ok(resolve, "the plugin resolves npm: specifiers");
  return await resolve({ path, importer: "page.ts", kind: "import-statement" });
}

Deno.test("deno_npm: a package in Deno's cache is linked where esbuild looks", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The report's chart package, which the lockfile pins (and CI fetches first).
    const got = await resolveWith(dir, "npm:chart.js@4.6.1/auto");
    assert.deepEqual(got, { path: "resolved chart.js/auto" });
    const target = await Deno.realPath(`${dir}/chart.js`);
    assert.match(target, /chart\.js[\\/]4\.6\.1$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno_npm: a package Deno cannot fetch is refused with the reason and what to set", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A child process with an empty Deno cache and a registry nobody listens at.
    const script = `
      import { denoNpmPlugin } from ${JSON.stringify(import.meta.resolve("../report/deno_npm.ts"))};
      let cb;
      denoNpmPlugin({ linkDir: ${JSON.stringify(`${dir}/links`)} }).setup({
        initialOptions: {},
        onResolve: (o, f) => { if (o.filter.source === "^npm:") cb = f; },
        resolve: () => Promise.resolve({}),
      });
      console.log(JSON.stringify(await cb({ path: "npm:left-pad@1.3.0", importer: "page.ts" })));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", script],
      env: { DENO_DIR: `${dir}/cache`, NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const got = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(got, {
      errors: [{
        text: "page.ts: deno info npm:left-pad@1.3.0 found no package: Deno could not fetch it " +
          "from the npm registry (offline, or behind a proxy whose certificate Deno does not " +
          "trust: set NODE_EXTRA_CA_CERTS or DENO_CERT to the proxy's certificate file)",
      }],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
