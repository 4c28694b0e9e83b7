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
  const fields = k.params.map((f) => (typeof f === "string" ? `${f}: u32` : `${f[0]}: ${f[1]}`));
  if (k.consts) {
    while (fields.length % 4) fields.push(`pad${fields.length}: u32`);
    fields.push(`c: array<vec4f, ${(PARAM_BYTES - fields.length * 4) / 16}>`);
  }
  const bindings = k.storage.map((s, i) =>
    `@group(0) @binding(${i + 1}) var<storage, ${s.write ? "read_write" : "read"}> ${s.name}: ` +
    `array<${s.type ?? "f32"}>;`
  );
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
struct P { ${fields.join(", ")} }
@group(0) @binding(0) var<uniform> p: P;
${bindings.join("\n")}
${k.decls ?? ""}
${main}
  ${k.body}
}`);
}
