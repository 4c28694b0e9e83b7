/**
 * WGSL sources, built once: a kernel's source is generated the first time its structural key
 * (the builder and its arguments) is seen and kept, so a dispatch costs a map lookup instead of
 * rebuilding kilobytes of text, and the pipeline cache keys on one string object whose hash V8
 * keeps. Each source carries only the helper functions its entry point reaches.
 *
 * @module
 */

const sources = new Map<string, string>();

/**
 * A cached kernel builder: `build(...args)` runs once per distinct `args` (numbers, strings,
 * booleans, or small plain objects), its source pruned to the functions `main` uses.
 *
 * @example
 * ```ts
 * import { memoKernel } from "./source.ts";
 * const fill = memoKernel("fill", (v: number) => `fn unused() {}\n@compute @workgroup_size(1)\nfn main() { let x = ${v}; }`);
 * console.log(fill(1) === fill(1), fill(1).includes("unused")); // true false
 * ```
 */
export function memoKernel<A extends unknown[]>(
  name: string,
  build: (...args: A) => string,
): (...args: A) => string {
  return (...args: A) => {
    let key = name;
    for (const a of args) {
      // Functions inside arguments (e.g. a reduction's combine) count by their source text.
      key += "\u0001" +
        (typeof a === "object"
          ? JSON.stringify(a, (_, v) => (typeof v === "function" ? String(v) : v))
          : String(a));
    }
    let code = sources.get(key);
    if (code === undefined) {
      code = pruneFunctions(build(...args));
      sources.set(key, code);
    }
    return code;
  };
}

/** A top-level `fn` of a WGSL source: its name and where it (and its comments) stand. */
interface FnSpan {
  name: string;
  start: number;
  end: number;
}

/** The top-level functions of a WGSL source, with the comment lines right above each. */
function functionsOf(code: string): FnSpan[] {
  const out: FnSpan[] = [];
  const re = /^fn\s+([A-Za-z_]\w*)\s*\(/gm;
  for (const m of code.matchAll(re)) {
    let start = m.index!;
    // Comment lines directly above belong to the function.
    while (start > 0) {
      const prev = code.lastIndexOf("\n", start - 2) + 1;
      if (!code.slice(prev, start).trimStart().startsWith("//")) break;
      start = prev;
    }
    let depth = 0;
    let i = code.indexOf("{", m.index!);
    for (; i < code.length; i++) {
      if (code[i] === "{") depth++;
      else if (code[i] === "}" && --depth === 0) break;
    }
    out.push({ name: m[1], start, end: i + 1 });
  }
  return out;
}

/** Removes the top-level functions that `main` does not reach (directly or through others). */
export function pruneFunctions(code: string): string {
  const fns = functionsOf(code);
  const body = new Map(fns.map((f) => [f.name, code.slice(f.start, f.end)]));
  if (!body.has("main")) return code;
  const reached = new Set<string>(["main"]);
  const queue = ["main"];
  while (queue.length) {
    const text = body.get(queue.pop()!)!;
    for (const f of fns) {
      if (!reached.has(f.name) && new RegExp(`\\b${f.name}\\s*\\(`).test(text)) {
        reached.add(f.name);
        queue.push(f.name);
      }
    }
  }
  let out = "";
  let at = 0;
  for (const f of fns) {
    if (reached.has(f.name)) continue;
    out += code.slice(at, f.start);
    at = f.end;
  }
  return out + code.slice(at);
}
