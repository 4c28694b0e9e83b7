/**
 * The module imported by URL, as a user would from a web host: the repository is served over
 * HTTP on 127.0.0.1, and a separate Deno process with an empty module cache imports
 * `http://127.0.0.1:PORT/mod.ts` and trains a small network with SGN. This fails if any module
 * reachable from mod.ts uses an import that only resolves locally (an import map, a bare name, a
 * file path) or needs a permission beyond reading SGN_BACKEND.
 */

import assert from "node:assert/strict";
import { serveStatic } from "../examples/browser/serve.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

/** The files of mod.ts's module graph, as paths from the repository root ("/mod.ts", ...). */
async function localGraph(): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "mod.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  const rootUrl = new URL("../", import.meta.url).href;
  return info.modules.map((m) => m.specifier)
    .filter((s) => s.startsWith(rootUrl))
    .map((s) => "/" + s.slice(rootUrl.length))
    .sort();
}

function program(url: string): string {
  return `
import { init, meanSquaredError, mlp, SGN, tensor } from "${url}mod.ts";

const backend = await init();
const n = 64;
const xs = Array.from({ length: n }, (_, i) => -1 + (2 * i) / (n - 1));
const x = tensor(xs.map((v) => [v]));
const y = tensor(xs.map((v) => [Math.sin(3 * v)]));
const net = mlp({ inputs: 1, hidden: [10], outputs: 1 });
const opt = new SGN(net.init({ seed: 1 }), {
  dampRho: 1e-3, trustRegion: true, lineSearch: true, cgMaxIters: 10,
});
const losses = [];
for (let i = 0; i < 10; i++) {
  const r = await opt.step((...p) => net.forward(p, x), meanSquaredError(y));
  losses.push(r.loss);
  if (i === 9) losses.push(r.lossAfter);
}
opt.dispose();
console.log(JSON.stringify({ backend: backend.name, losses }));
`;
}

Deno.test("mod.ts imported by URL over HTTP trains with SGN", async () => {
  const server = serveStatic({ root: ROOT });
  const dir = await Deno.makeTempDir({ prefix: "sgn-url-import-" });
  try {
    const main = `${dir}/main.ts`;
    await Deno.writeTextFile(main, program(server.url));
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        // Importing from a host outside Deno's default list needs --allow-import; the library
        // itself needs no network permission, only to read SGN_BACKEND.
        `--allow-import=127.0.0.1:${server.port}`,
        "--allow-env=SGN_BACKEND",
        "--reload",
        // Type-check the fetched modules too (about 4 s): a user's `deno check` sees them.
        "--check=all",
        "--no-config",
        main,
      ],
      cwd: dir,
      // An empty cache: every module really comes over HTTP.
      env: { DENO_DIR: `${dir}/deno_dir`, SGN_BACKEND: "cpu", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `the program failed (${out.code}):\n${stderr}\n${stdout}`);
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
      backend: string;
      losses: number[];
    };
    console.log(`losses over 10 SGN steps: ${result.losses.map((l) => l.toFixed(4)).join(", ")}`);
    assert.equal(result.backend, "cpu");
    assert.equal(result.losses.length, 11);
    assert.ok(result.losses.every(Number.isFinite), "non-finite loss");
    const first = result.losses[0];
    const last = result.losses.at(-1)!;
    assert.ok(last < 0.2 * first, `loss went from ${first} to ${last}, not below a fifth`);

    // Deno fetched mod.ts and every module it imports from this server, and nothing else.
    const expected = await localGraph();
    assert.ok(expected.includes("/sgn/sgn.ts") && expected.includes("/autodiff/device.ts"));
    const seen = [...new Set(server.requests)].sort();
    assert.deepEqual(seen, expected);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
