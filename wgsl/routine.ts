/**
 * The head of every WGSL kernel, the routines' (matmul, softmax, convolutions, pooling) and the
 * IR generator's (codegen.ts): one builder of the parameter struct, the bindings and the entry
 * point's index math, so that no kernel of wgsl/ writes its own. The bindings follow runtime.ts's convention: 0 the parameter block, then the
 * storage buffers in the order of the dispatch.
 *
 * @module
 */

import { WGSL_PRELUDE } from "./prelude.ts";
import { PARAM_BYTES } from "./runtime.ts";
import { pruneFunctions } from "./source.ts";

/** A field of a routine's parameter block: a name (a u32) or a name and its type. */
export type ParamField = string | readonly [string, "u32" | "i32"];

/** A storage buffer of a routine kernel; they are bound in order from binding 1. */
export interface Storage {
  readonly name: string;
  /** Element type (default f32). */
  readonly type?: "f32" | "vec4f";
  /** Whether the kernel writes the buffer (default: it only reads it). */
  readonly write?: boolean;
}

/**
 * How a routine kernel numbers its invocations:
 * - `flat`: one invocation per item, `i` over a 2-D grid of `wg`-wide workgroups whose rows are
 *   `p.stride` invocations apart (runtime.ts's `grid`); invocations from `count` on return.
 * - `blocked`: register-blocked kernels in workgroups of `lanes` over `p.count` invocations in
 *   rows of `p.nx` workgroups: `g` is the invocation, clamped to the last, and `live` says
 *   whether it is a real one. Past-the-end invocations compute a copy of the last and store
 *   nothing, which keeps control flow uniform.
 * - `workgroup`: the builtins `wid` and `lid` only; the kernel does its own index math.
 */
export type Entry =
  | { readonly kind: "flat"; readonly wg: number; readonly count: string }
  | { readonly kind: "blocked"; readonly lanes: number }
  | { readonly kind: "workgroup"; readonly wg: number };

/** A routine kernel: its parameters, buffers, module-scope declarations, entry and body. */
export interface RoutineKernel {
  /** The fields of the parameter block, in order. */
  readonly params: readonly ParamField[];
  /**
   * Whether the block ends with constants `c: array<vec4f, n>` (epilogues' constants), from
   * the first 16-byte boundary after the fields to the end of the block; {@link Params.consts}
   * writes them there.
   */
  readonly consts?: boolean;
  /** The storage buffers, bound from 1 in this order. */
  readonly storage: readonly Storage[];
  /** Module-scope WGSL after the bindings (helper functions, an epilogue's bindings). */
  readonly decls?: string;
  /** How invocations are numbered. */
  readonly entry: Entry;
  /** The entry point's body after its index math. */
  readonly body: string;
}

/**
 * The WGSL module of a routine kernel: the op table's helpers ({@link WGSL_PRELUDE}, pruned to
 * those the kernel reaches), the parameter struct, the bindings (0 the parameters, then the
 * storage buffers in order: runtime.ts's convention) and the entry point with its index math.
 * Every kernel of wgsl/, routine or generated from the IR, is built by it.
 *
 * @example
 * ```ts
 * import { routineSource } from "./routine.ts";
 * const code = routineSource({
 *   params: ["total", "stride"],
 *   storage: [{ name: "x" }, { name: "y", write: true }],
 *   entry: { kind: "flat", wg: 64, count: "p.total" },
 *   body: "y[i] = 2.0 * x[i];",
 * });
 * console.log(code.includes("var<storage, read_write> y: array<f32>;")); // true
 * ```
 */
export function routineSource(k: RoutineKernel): string {
  const bindings = bindingsOf(k.storage);
  const e = k.entry;
  const main = e.kind === "flat"
    ? `@compute @workgroup_size(${e.wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= ${e.count}) { return; }`
    : `@compute @workgroup_size(${e.kind === "blocked" ? e.lanes : e.wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {${
      e.kind === "blocked"
        ? `
  let gi = (wid.x + wid.y * p.nx) * ${e.lanes}u + lid;
  let live = gi < p.count;
  let g = min(gi, p.count - 1u);`
        : ""
    }`;
  return pruneFunctions(`${WGSL_PRELUDE}
struct P { ${fieldsOf(k.params, k.consts).join(", ")} }
@group(0) @binding(0) var<uniform> p: P;
${bindings.join("\n")}
${k.decls ?? ""}
${main}
  ${k.body}
}`);
}

/** The fields of a parameter block of {@link PARAM_BYTES} bytes (see {@link RoutineKernel}). */
function fieldsOf(params: readonly ParamField[], consts = false): string[] {
  const fields = params.map((f) => (typeof f === "string" ? `${f}: u32` : `${f[0]}: ${f[1]}`));
  if (consts) {
    while (fields.length % 4) fields.push(`pad${fields.length}: u32`);
    fields.push(`c: array<vec4f, ${(PARAM_BYTES - fields.length * 4) / 16}>`);
  }
  return fields;
}

/** The storage bindings, from 1 in order. */
function bindingsOf(storage: readonly Storage[]): string[] {
  return storage.map((s, i) =>
    `@group(0) @binding(${i + 1}) var<storage, ${s.write ? "read_write" : "read"}> ${s.name}: ` +
    `array<${s.type ?? "f32"}>;`
  );
}

/**
 * One part of a {@link groupedSource} kernel: its parameter block's fields (the block is
 * `g.s<i>` for part i, after two fields the grouping writes first: `gx`, the part's workgroups
 * along x per row of its grid, and `end`, one past its last workgroup in the dispatch), its
 * module-scope declarations and its body, which reads its workgroup as `wid` (z = 0) and its
 * invocation as `lid`, as a `workgroup` entry's body does.
 */
export interface RoutinePart {
  readonly params: readonly ParamField[];
  readonly consts?: boolean;
  readonly decls?: string;
  readonly body: string;
}

/**
 * The WGSL module of several routine kernels run by one dispatch (independent products of a
 * backward pass, wgsl/matmul.ts): the workgroups along x are dealt out to the parts in order,
 * part i taking those below `g.s<i>.end`; each part sees its own 2-D grid of `gx` columns. The
 * parameter blocks are consecutive (runtime.ts's `dispatch` with one block per part) and
 * the storage buffers are shared: the parts name the ones they use.
 *
 * @example
 * ```ts
 * import { groupedSource } from "./routine.ts";
 * const code = groupedSource([
 *   { params: ["n"], body: "if (lid == 0u) { y[wid.x] = x[wid.x]; }" },
 *   { params: ["n"], body: "if (lid == 0u) { z[wid.x] = 2.0 * x[wid.x]; }" },
 * ], [{ name: "x" }, { name: "y", write: true }, { name: "z", write: true }], 8);
 * console.log(code.includes("struct G { s0: P0, s1: P1 }")); // true
 * ```
 */
export function groupedSource(
  parts: readonly RoutinePart[],
  storage: readonly Storage[],
  wg: number,
): string {
  const structs = parts.map((q, i) =>
    `struct P${i} { ${fieldsOf(["gx", "end", ...q.params], q.consts).join(", ")} }`
  );
  const members = parts.map((_, i) => `s${i}: P${i}`).join(", ");
  const branches = parts.map((q, i) => {
    const at = i ? `at.x - g.s${i - 1}.end` : "at.x";
    return `if (at.x < g.s${i}.end) {
    let w = ${at};
    let wid = vec3u(w % g.s${i}.gx, w / g.s${i}.gx, 0u);
    ${q.body}
  }`;
  });
  return pruneFunctions(`${WGSL_PRELUDE}
${structs.join("\n")}
struct G { ${members} }
@group(0) @binding(0) var<uniform> g: G;
${bindingsOf(storage).join("\n")}
${parts.map((q) => q.decls ?? "").join("\n")}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) at: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${branches.join(" else ")}
}`);
}
