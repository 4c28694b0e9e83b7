/**
 * The module graph: no import cycle anywhere in the library, counting type-only imports too; no
 * cycle between its rooms (a top-level folder, or a file at the top) either, so that the rooms
 * stand on floors with every arrow pointing down; nothing below autodiff imports autodiff; and
 * nothing below the command line prints.
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
  return imports(file, text, false);
}

/** The relative modules a file imports, with its type-only imports when `types`. */
function imports(file: string, text: string, types = true): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?[^;]*?from\s+"(\.{1,2}\/[^"]+)";/gms;
  for (const m of code.matchAll(re)) {
    if (m[2] && !types) continue; // type-only
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
  assert.deepEqual(cyclesOf(graph), [], "import cycles");
});

/** The cycles of a directed graph, each as "a -> b -> a" (one per back edge found). */
function cyclesOf(graph: Map<string, string[]>): string[] {
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
  return cycles;
}

/** A module's room: its top-level folder, or its own name for a file at the top. */
const roomOf = (f: string) => (f.includes("/") ? f.split("/")[0] : f.replace(/\.ts$/, ""));

/** The library's imports (type-only ones included), file by file. */
async function allImports(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const f of await libraryFiles()) {
    graph.set(f, imports(f, await Deno.readTextFile(join(root, f))));
  }
  return graph;
}

Deno.test("layout: no import cycle counting type-only imports, and none between rooms (no arrow runs up)", async () => {
  const graph = await allImports();
  assert.deepEqual(cyclesOf(graph), [], "import cycles (type-only imports included)");
  const rooms = new Map<string, string[]>();
  for (const [f, targets] of graph) {
    const from = roomOf(f);
    const list = rooms.get(from) ?? [];
    for (const t of targets) {
      if (roomOf(t) !== from && !list.includes(roomOf(t))) list.push(roomOf(t));
    }
    rooms.set(from, list);
  }
  assert.ok(rooms.size >= 12, `read ${rooms.size} rooms`);
  assert.deepEqual(cyclesOf(rooms), [], "cycles between rooms: an arrow runs up");
  // The layers the design names, bottom up: nothing below autodiff imports it.
  for (const below of ["errors", "kernel", "cpu", "wgsl"]) {
    assert.ok(!(rooms.get(below) ?? []).includes("autodiff"), `${below} imports autodiff`);
  }
  assert.deepEqual(rooms.get("errors") ?? [], [], "errors.ts is the bottom: it imports nothing");
});

Deno.test("layout: the cycle finder finds a cycle (the check can fail)", () => {
  const g = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]]]);
  assert.deepEqual(cyclesOf(g), ["a -> b -> c -> a"]);
  assert.deepEqual(cyclesOf(new Map([["a", ["b"]], ["b", []]])), []);
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
