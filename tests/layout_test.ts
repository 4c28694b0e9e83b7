/**
 * The module graph: no import cycle anywhere in the library (type-only imports excepted, since
 * they vanish at run time), and nothing below the command line prints.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const root = normalize(new URL("..", import.meta.url).pathname);
const LIBRARY =
  /^(?!tests\/|bench\/|tools\/|examples\/|results\/|dist\/|node_modules\/)[^.].*\.ts$/;

async function libraryFiles(): Promise<string[]> {
  const out = await new Deno.Command("git", { args: ["ls-files", "*.ts"], cwd: root }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((f) => LIBRARY.test(f));
}

/** The relative modules a file imports at run time (not `import type` / `export type`). */
function runtimeImports(file: string, text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?[^;]*?from\s+"(\.{1,2}\/[^"]+)";/gms;
  for (const m of code.matchAll(re)) {
    if (m[2]) continue; // type-only
    out.push(relative(root, join(root, dirname(file), m[3])));
  }
  for (const m of code.matchAll(/^\s*import\s+"(\.{1,2}\/[^"]+)";/gm)) {
    out.push(relative(root, join(root, dirname(file), m[1])));
  }
  return out;
}

Deno.test("layout: the library's modules import each other without a cycle", async () => {
  const files = await libraryFiles();
  const graph = new Map<string, string[]>();
  for (const f of files) graph.set(f, runtimeImports(f, await Deno.readTextFile(join(root, f))));
  assert.ok(graph.size > 40, `read ${graph.size} modules`);
  assert.ok((graph.get("autodiff/ops.ts") ?? []).includes("autodiff/core.ts"), "edges are read");
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      cycles.push([...path.slice(path.indexOf(f)), f].join(" -> "));
      return;
    }
    state.set(f, "open");
    for (const g of graph.get(f) ?? []) visit(g, [...path, f]);
    state.set(f, "done");
  };
  for (const f of graph.keys()) visit(f, []);
  assert.deepEqual(cycles, [], "import cycles");
});

Deno.test("layout: nothing below the command line prints", async () => {
  const printing: string[] = [];
  for (const f of await libraryFiles()) {
    // The command line prints; the report page logs its own errors in the browser console.
    if (f === "cli.ts" || f.startsWith("cli/") || f === "report/page.ts") continue;
    const code = (await Deno.readTextFile(join(root, f)))
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "");
    if (/\bconsole\.(log|warn|error|info)\(/.test(code)) printing.push(f);
  }
  assert.deepEqual(printing, []);
});
