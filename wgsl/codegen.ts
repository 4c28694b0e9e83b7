/**
 * The WGSL lowering of the kernel IR: one code generator, one kernel head, and the helper
 * functions a kernel's expressions use (pruned from {@link WGSL_PRELUDE}). An element-wise kernel
 * runs one invocation per output element; a reduction runs one invocation per output when the
 * reduced extent is small, else a workgroup of {@link REDUCE_WG} per output with a tree in
 * workgroup memory. Shapes and strides are compiled in (the index arithmetic folds to constants);
 * constants travel in the uniform block, so one pipeline serves every value.
 *
 * NaN must pass through as IEEE says. llvmpipe folds `x != x` to false and its `max`/`min` drop
 * NaN, so the helpers test for NaN on the bit pattern (`isNan`) and build max from `select`.
 *
 * @module
 */

import { SgnError } from "../errors.ts";
import {
  BINARY,
  collapse,
  contiguous,
  type Expr,
  type Kernel,
  kernelKey,
  load,
  UNARY,
} from "../kernel/ir.ts";
import { KernelCache } from "../kernel/cache.ts";
import { ERF_TABLE, TWO_OVER_SQRT_PI } from "../kernel/erf.ts";
import { pruneFunctions } from "./source.ts";
import { type GpuBuffer, type GpuRuntime, grid, PARAM_BYTES, Params } from "./runtime.ts";

/** Invocations per workgroup of element-wise kernels and of thread-per-output reductions. */
export const MAP_WG = 64;
/** Invocations per workgroup of a workgroup-per-output reduction. */
export const REDUCE_WG = 256;
/** Reductions over more elements than this use a workgroup per output. */
const SERIAL_MAX = 64;
/** Constants a kernel may carry in its uniform block (15 vec4s after the 16-byte head). */
export const MAX_CONSTS = 60;

/** erf(x) / x below 1/2 as a polynomial in z = x^2, Horner's form: its Taylor series to z^8. */
const taylor = (() => {
  let text = "";
  for (let m = 8, f = 40320; m >= 0; f /= m || 1, m--) {
    const coef = ((m % 2 ? -1 : 1) * TWO_OVER_SQRT_PI) / (f * (2 * m + 1));
    text = m === 8 ? `${coef}` : `(${coef} + z * ${text})`;
  }
  return text;
})();

/** Scalar helpers the op table names; only those a kernel reaches are kept. */
export const WGSL_PRELUDE = /* wgsl */ `
// Infinity and NaN from their bits through a let: WGSL forbids a constant expression whose value
// is inf or NaN, and Chromium's compiler (Tint) rejects bitcast<f32>(0x7f800000u) where naga lets
// it pass; a let makes the bitcast a run-time expression.
fn infF32() -> f32 { let bits = 0x7f800000u; return bitcast<f32>(bits); }
fn nanF32() -> f32 { let bits = 0x7fc00000u; return bitcast<f32>(bits); }
fn isNan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn sigmoidF(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}
// The builtin tanh loses accuracy near 0 on llvmpipe: a series there, exp elsewhere.
fn tanhF(x: f32) -> f32 {
  let a = abs(x);
  let x2 = x * x;
  let series = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
  let t = exp(-2.0 * a);
  let big = sign(x) * (1.0 - t) / (1.0 + t);
  return select(big, series, a < 0.125);
}
fn maxF(a: f32, b: f32) -> f32 { return select(select(b, a, a > b), a + b, isNan(a) || isNan(b)); }
fn minF(a: f32, b: f32) -> f32 { return select(select(b, a, a < b), a + b, isNan(a) || isNan(b)); }
// WGSL's pow is exp2(b log2(a)): undefined for negative bases, and on llvmpipe pow(0, -1) is 0.
// This follows C's (and JavaScript's) pow: integer exponents of negative bases, zero and
// infinite bases by their rules, the sign of -0 and -inf kept for odd exponents.
fn powF(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (isNan(a) || isNan(b)) { return nanF32(); }
  let negative = (bitcast<u32>(a) & 0x80000000u) != 0u;
  let odd = (abs(b) % 2.0) == 1.0;
  let big = abs(a) == infF32();
  if (a == 0.0 || big) {
    let m = select(0.0, infF32(), (b < 0.0) != big);
    return select(m, -m, negative && odd);
  }
  if (!negative) { return pow(a, b); }
  if (b != floor(b)) { return nanF32(); }
  let m = pow(-a, b);
  return select(m, -m, odd);
}
// log(1 + u) for u >= 0 (and NaN), to float32's relative accuracy also for small u: a series
// below 1/32 (its first omitted term is under 2e-10 relative), log(1 + u) above, where the
// rounding of 1 + u costs at most 2e-6 relative.
fn log1pF32(u: f32) -> f32 {
  let series = u * (1.0 + u * (-0.5 + u * (1.0 / 3.0 + u * (-0.25 + u * (0.2 - u / 6.0)))));
  return select(series, log(1.0 + u), u >= 0.03125);
}
// log(1 + e^x) as max(x, 0) + log1p(e), e = e^-|x| in (0, 1]: log1p(e) = 2 atanh(s), s = e / (2 + e)
// <= 1/3, by its series 2 s (1 + s^2/3 + s^4/5 + ...) to s^16 (the rest under 1e-9 relative). No
// sum cancels, so no compiler's rewriting of (1 + e) - 1 (llvmpipe's) can cost accuracy.
fn softplusF(x: f32) -> f32 {
  let e = exp(-abs(x));
  let s = e / (2.0 + e);
  let z = s * s;
  let p = 1.0 + z * (1.0 / 3.0 + z * (0.2 + z * (1.0 / 7.0 + z * (1.0 / 9.0 + z * (1.0 / 11.0 + z * (1.0 / 13.0 + z * (1.0 / 15.0 + z / 17.0)))))));
  return select(0.0, x, x > 0.0) + 2.0 * s * p;
}
// erf in float32 by kernel/erf.ts's scheme, cut to float32's needs: below 1/2 the Taylor series
// of erf to x^17; above, erf(k/4) (every other entry of kernel/erf.ts's table: llvmpipe took 0.3 s
// instead of 0.02 s to compile a kernel with all 49) plus the Taylor series of erf' around
// x0 = k/4 to h^8 (|h| <= 1/8: the rest is under 1e-9 of the result). Within 2.2 float32 ulps of
// erf on llvmpipe (tests/layers_test.ts). erf(+-0) = +-0, NaN stays.
fn erfF(x: f32) -> f32 {
  const ERF_TABLE_4 = array<f32, 25>(${ERF_TABLE.filter((_, i) => i % 2 === 0).join(", ")});
  let a = abs(x);
  if (isNan(x) || x == 0.0) { return x; }
  if (a >= 6.0) { return select(-1.0, 1.0, x > 0.0); }
  if (a < 0.5) {
    let z = x * x;
    return x * ${taylor};
  }
  let k = u32(round(a * 4.0));
  let x0 = f32(k) * 0.25;
  let h = a - x0;
  // q_j = (-1)^j H_j(x0) by the Hermite recurrence; s = sum_(j >= 1) q_j h^j / (j+1)!.
  var qPrev = 1.0;
  var q = -2.0 * x0;
  var p = h / 2.0;
  var s = 0.0;
  for (var j = 1u; j < 8u; j++) {
    s += q * p;
    let next = -2.0 * x0 * q - 2.0 * f32(j) * qPrev;
    qPrev = q;
    q = next;
    p *= h / f32(j + 2u);
  }
  let c = ${TWO_OVER_SQRT_PI} * exp(-x0 * x0);
  let r = ERF_TABLE_4[k] + (c * h + c * h * s);
  return select(r, -r, x < 0.0);
}
// Whether (v, i) replaces (acc, arg) in a max: the first NaN wins, then the first maximum.
fn takesMax(acc: f32, arg: u32, v: f32, i: u32) -> bool {
  if (i == 0xffffffffu) { return false; }
  if (arg == 0xffffffffu) { return true; }
  let na = isNan(acc);
  let nv = isNan(v);
  if (na || nv) { return nv && (!na || i < arg); }
  return v > acc || (v == acc && i < arg);
}
`;

/** How a compiled kernel is dispatched. */
export interface KernelPlan {
  code: string;
  /** "map": one invocation per output; "group": one workgroup per output. */
  layout: "map" | "group";
  /** Number of outputs. */
  count: number;
}

/** Plans by kernel structure; a miss collapses the kernel and generates its code. */
const plans = new KernelCache((kernel: Kernel): KernelPlan => {
  // The number of constants is structural: a kernel with too many never gets a plan.
  const { consts } = kernelKey(kernel, "float32");
  if (consts.length > MAX_CONSTS) {
    throw new SgnError(`a kernel carries ${consts.length} constants, more than ${MAX_CONSTS}`);
  }
  return generate(collapse(kernel));
});

/** The WGSL source and dispatch layout of a kernel (collapsed first), cached by structure. */
export function wgslKernel(kernel: Kernel): { plan: KernelPlan; consts: number[] } {
  const { value, consts } = plans.get(kernel, "float32");
  return { plan: value, consts };
}

/**
 * Records one kernel of the IR on `inputs` (bound after the output, in order) and returns its
 * new output buffer; `compiled` is the kernel's {@link wgslKernel} when the caller has it.
 */
export function dispatchKernel(
  rt: GpuRuntime,
  kernel: Kernel,
  inputs: readonly GpuBuffer[],
  compiled: { plan: KernelPlan; consts: number[] } = wgslKernel(kernel),
): GpuBuffer {
  const { plan, consts } = compiled;
  const out = rt.alloc(plan.count);
  const map = plan.layout === "map";
  const [gx, gy] = grid(map ? Math.ceil(plan.count / MAP_WG) : plan.count);
  const params = new Params().u32(map ? gx * MAP_WG : gx, 0, 0, 0).f32(...consts);
  rt.dispatch(plan.code, params, [out, ...inputs], [gx, gy]);
  return out;
}

/** WGSL statements decomposing `flat` into `names` over `shape` (row-major). */
function decompose(flat: string, names: string[], shape: readonly number[]): string {
  const strides = contiguous(shape);
  return shape.map((d, i) => {
    const q = strides[i] === 1 ? flat : `(${flat} / ${strides[i]}u)`;
    return `let ${names[i]} = ${i === 0 ? q : `${q} % ${d}u`};`;
  }).join(" ");
}

/** The flat index a load reads at the loop index named `idx`. */
function indexText(l: Expr & { k: "load" }, idx: readonly string[]): string {
  const terms = l.strides.map((s, i) => (s === 0 ? "" : s === 1 ? idx[i] : `${idx[i]} * ${s}u`))
    .filter(Boolean);
  if (l.offset) terms.push(`${l.offset}u`);
  return terms.length ? terms.join(" + ") : "0u";
}

/**
 * An expression emitter: `emit(e, out, loadAt)` appends straight-line WGSL for `e` to `out` and
 * returns the name of its value. Constants take uniform slots in visiting order, which is
 * kernelKey's order, across every expression one emitter emits.
 */
function makeEmitter() {
  let slot = 0;
  let tmp = 0;
  const emit = (e: Expr, out: string[], loadAt: (l: Expr & { k: "load" }) => string): string => {
    const bind = (text: string) => {
      const t = `t${tmp++}`;
      out.push(`let ${t} = ${text};`);
      return t;
    };
    switch (e.k) {
      case "load":
        return bind(loadAt(e));
      case "const": {
        const j = slot++;
        return `p.c[${j >> 2}][${j & 3}]`;
      }
      case "acc":
        return "acc";
      case "cast":
        return emit(e.x, out, loadAt);
      case "unary":
        return bind(UNARY[e.op].wgsl.replace(/\bx\b/g, emit(e.x, out, loadAt)));
      case "binary": {
        const a = emit(e.a, out, loadAt);
        const b = emit(e.b, out, loadAt);
        return bind(BINARY[e.op].wgsl.replace(/\b[ab]\b/g, (v) => (v === "a" ? a : b)));
      }
      case "where": {
        const c = emit(e.c, out, loadAt);
        const a = emit(e.a, out, loadAt);
        const b = emit(e.b, out, loadAt);
        return bind(`select(${b}, ${a}, ${c} != 0.0)`);
      }
    }
  };
  return emit;
}

function generate(kernel: Kernel): KernelPlan {
  const count = kernel.shape.reduce((a, b) => a * b, 1);
  const red = kernel.reduce;
  const redSize = red ? red.shape.reduce((a, b) => a * b, 1) : 0;
  const outIdx = kernel.shape.map((_, i) => `o${i}`);
  const redIdx = (red?.shape ?? []).map((_, i) => `r${i}`);
  const address = (l: Expr & { k: "load" }, idx: string[]) => `in${l.input}[${indexText(l, idx)}]`;
  const emitter = makeEmitter();
  const emit = (e: Expr, out: string[], idx: string[]) => emitter(e, out, (l) => address(l, idx));
  const head = [
    "struct P { stride: u32, pad0: u32, pad1: u32, pad2: u32, c: array<vec4f, 15> }",
    "@group(0) @binding(0) var<uniform> p: P;",
    "@group(0) @binding(1) var<storage, read_write> out: array<f32>;",
    ...Array.from(
      { length: kernel.inputs },
      (_, i) => `@group(0) @binding(${i + 2}) var<storage, read> in${i}: array<f32>;`,
    ),
  ];
  const lines: string[] = [];
  // Every input stays bound even where the expression does not read it (automatic layouts drop
  // unused bindings, and the bind group would then not match).
  const keepBindings = Array.from({ length: kernel.inputs }, (_, i) => `_ = arrayLength(&in${i});`)
    .join(" ");
  // One invocation per output: the head of map kernels and of serial reductions.
  const mapHead = [
    `@compute @workgroup_size(${MAP_WG})`,
    "fn main(@builtin(global_invocation_id) gid: vec3u) {",
    "let i = gid.x + gid.y * p.stride;",
    `if (i >= ${count}u) { return; }`,
    keepBindings,
    decompose("i", outIdx, kernel.shape),
  ];
  let layout: KernelPlan["layout"] = "map";
  if (!red) {
    lines.push(...mapHead);
    const body: string[] = [];
    const v = emit(kernel.body, body, outIdx);
    lines.push(...body, `out[i] = ${v};`, "}");
  } else {
    const isSum = red.op === "sum";
    const group = redSize > SERIAL_MAX;
    layout = group ? "group" : "map";
    const body: string[] = [];
    const v = emit(kernel.body, body, [...outIdx, ...redIdx]);
    const loop = [
      decompose("r", redIdx, red.shape),
      ...body,
      isSum ? `acc += ${v};` : `if (takesMax(acc, arg, ${v}, r)) { acc = ${v}; arg = r; }`,
    ];
    const init = isSum ? "var acc = 0.0; var arg = 0u;" : "var acc = 0.0; var arg = 0xffffffffu;";
    if (group) {
      head.push(
        `var<workgroup> sv: array<f32, ${REDUCE_WG}>;`,
        `var<workgroup> si: array<u32, ${REDUCE_WG}>;`,
      );
      lines.push(
        `@compute @workgroup_size(${REDUCE_WG})`,
        "fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {",
        "let i = wid.x + wid.y * p.stride;",
        `let valid = i < ${count}u;`,
        keepBindings,
        decompose("i", outIdx, kernel.shape),
        init,
        `if (valid) { for (var r = lid; r < ${redSize}u; r += ${REDUCE_WG}u) {`,
        ...loop,
        "} }",
        "sv[lid] = acc; si[lid] = arg;",
        "workgroupBarrier();",
        `for (var s = ${REDUCE_WG / 2}u; s > 0u; s >>= 1u) {`,
        "  if (lid < s) {",
        isSum
          ? "    sv[lid] += sv[lid + s];"
          : "    if (takesMax(sv[lid], si[lid], sv[lid + s], si[lid + s])) { sv[lid] = sv[lid + s]; si[lid] = si[lid + s]; }",
        "  }",
        "  workgroupBarrier();",
        "}",
        "if (lid != 0u || !valid) { return; }",
        "acc = sv[0]; arg = si[0];",
      );
    } else {
      lines.push(
        ...mapHead,
        init,
        `for (var r = 0u; r < ${redSize}u; r++) {`,
        ...loop,
        "}",
      );
    }
    if (red.op === "argmax") lines.push("acc = f32(select(arg, 0u, arg == 0xffffffffu));");
    else if (red.op === "max") lines.push("if (arg == 0xffffffffu) { acc = -infF32(); }");
    if (kernel.epilogue) {
      const epi: string[] = [];
      const e = emit(kernel.epilogue, epi, outIdx);
      lines.push(...epi, `out[i] = ${e};`);
    } else {
      lines.push("out[i] = acc;");
    }
    lines.push("}");
  }
  const code = pruneFunctions(`${WGSL_PRELUDE}\n${head.join("\n")}\n${lines.join("\n")}`);
  return { code, layout, count };
}

/**
 * An epilogue as a WGSL function `epi(i, acc) -> f32` of the flat output index, for routines
 * that apply one in their store (matmul): its inputs bound from `binding0` on as `e0, e1, ...`,
 * its constants read from `p.c` starting at slot 0. Returns the declarations and the function.
 */
export function epilogueSource(
  shape: readonly number[],
  body: Expr,
  inputs: number,
  binding0: number,
): { decls: string; fn: string; consts: number[] } {
  const kernel = collapse({ shape, inputs, body });
  const { consts } = kernelKey(kernel, "float32");
  const idx = kernel.shape.map((_, i) => `o${i}`);
  const decls = Array.from(
    { length: inputs },
    (_, i) => `@group(0) @binding(${binding0 + i}) var<storage, read> e${i}: array<f32>;`,
  ).join("\n");
  const out: string[] = [];
  const emitter = makeEmitter();
  const emit = (e: Expr) => emitter(e, out, (l) => `e${l.input}[${indexText(l, idx)}]`);
  const v = emit(kernel.body);
  const fn = `fn epi(i: u32, acc: f32) -> f32 {\n${decompose("i", idx, kernel.shape)}\n${
    out.join("\n")
  }\nreturn ${v};\n}`;
  return { decls, fn, consts };
}

// --- the head of every routine kernel --------------------------------------------------------

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
 * Every routine kernel (matmul, softmax, convolutions, pooling) is built by it.
 *
 * @example
 * ```ts
 * import { routineSource } from "./codegen.ts";
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

// --- map kernels that store through a view -----------------------------------------------------

/** Where a kernel's output index lands in a larger buffer: an offset and a stride per dimension. */
export interface StoreView {
  readonly strides: readonly number[];
  readonly offset: number;
}

/**
 * Plans of map kernels that store through a view. The view travels as the epilogue of the kernel
 * (a load of the output by output index), so that the structural key covers it and collapse()
 * merges only the dimensions that the store steps through as one, as it does for every load.
 */
const viewPlans = new KernelCache((carrier: Kernel): KernelPlan => {
  const { consts } = kernelKey(carrier, "float32");
  if (consts.length > MAX_CONSTS) {
    throw new SgnError(`a kernel carries ${consts.length} constants, more than ${MAX_CONSTS}`);
  }
  const kernel = collapse(carrier);
  const count = kernel.shape.reduce((a, b) => a * b, 1);
  const idx = kernel.shape.map((_, i) => `o${i}`);
  const view = kernel.epilogue as Expr & { k: "load" };
  const lines: string[] = [];
  const v = makeEmitter()(kernel.body, lines, (l) => `in${l.input}[${indexText(l, idx)}]`);
  const inputs = Array.from({ length: kernel.inputs }, (_, i) => ({ name: `in${i}` }));
  const code = routineSource({
    params: ["stride"],
    consts: true,
    storage: [{ name: "out", write: true }, ...inputs],
    entry: { kind: "flat", wg: MAP_WG, count: `${count}u` },
    body: [
      ...inputs.map((b) => `_ = arrayLength(&${b.name});`),
      decompose("i", idx, kernel.shape),
      ...lines,
      `out[${indexText(view, idx)}] = ${v};`,
    ].join("\n  "),
  });
  return { code, layout: "map", count };
});

/**
 * Records a map kernel of the IR (no reduction) whose value at output index `o` is stored at
 * `out[view.offset + sum of o[d] view.strides[d]]` instead of into a new buffer: a part of a
 * concatenation, or a transposition into a padded layout. Elements of `out` outside the view
 * keep their contents.
 */
export function dispatchKernelInto(
  rt: GpuRuntime,
  kernel: Kernel,
  inputs: readonly GpuBuffer[],
  out: GpuBuffer,
  view: StoreView,
): void {
  if (kernel.reduce || kernel.epilogue || view.strides.length !== kernel.shape.length) {
    throw new SgnError(
      "dispatchKernelInto: give a map kernel (no reduction) and one view stride per dimension",
    );
  }
  const carrier = { ...kernel, epilogue: load(kernel.inputs, view.strides, view.offset) };
  const { value: plan, consts } = viewPlans.get(carrier, "float32");
  const [gx, gy] = grid(Math.ceil(plan.count / MAP_WG));
  rt.dispatch(plan.code, new Params().u32(gx * MAP_WG).consts(consts), [out, ...inputs], [gx, gy]);
}
