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
  constSlots,
  contiguous,
  type Expr,
  type Kernel,
  kernelKey,
  outputsOf,
  UNARY,
} from "../kernel/ir.ts";
import { KernelCache } from "../kernel/cache.ts";
import { ERF_TABLE, TWO_OVER_SQRT_PI } from "../kernel/erf.ts";
import { pruneFunctions } from "./source.ts";
import { type GpuBuffer, type GpuRuntime, grid, Params } from "./runtime.ts";

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
  /** Elements of one output (the kernel's shape). */
  count: number;
  /** Outputs, one after the other in the output buffer. */
  outputs: number;
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
  const out = rt.alloc(plan.count * plan.outputs);
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
 * An expression emitter: `emit(e, out, loadAt, acc)` appends straight-line WGSL for `e` to `out`
 * and returns the name of its value (`acc` names the reduced value an epilogue reads). Constants take uniform slots in visiting order, which is
 * kernelKey's order, across every expression one emitter emits.
 */
function makeEmitter() {
  let slot = 0;
  let tmp = 0;
  /** Numbers the next constant `s` (see kernel/ir.ts, constSlots). */
  const at = (s: number) => {
    slot = s;
  };
  const emit = (
    e: Expr,
    out: string[],
    loadAt: (l: Expr & { k: "load" }) => string,
    acc = "acc",
  ): string => {
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
        return acc;
      case "cast":
        return emit(e.x, out, loadAt, acc);
      case "unary":
        return bind(UNARY[e.op].wgsl.replace(/\bx\b/g, emit(e.x, out, loadAt, acc)));
      case "binary": {
        const a = emit(e.a, out, loadAt, acc);
        const b = emit(e.b, out, loadAt, acc);
        return bind(BINARY[e.op].wgsl.replace(/\b[ab]\b/g, (v) => (v === "a" ? a : b)));
      }
      case "where": {
        const c = emit(e.c, out, loadAt, acc);
        const a = emit(e.a, out, loadAt, acc);
        const b = emit(e.b, out, loadAt, acc);
        return bind(`select(${b}, ${a}, ${c} != 0.0)`);
      }
    }
  };
  return Object.assign(emit, { at });
}

function generate(kernel: Kernel): KernelPlan {
  const count = kernel.shape.reduce((a, b) => a * b, 1);
  const red = kernel.reduce;
  const outputs = outputsOf(kernel);
  // Constants are numbered in kernelStructure's order, whatever order the code emits them in.
  const slots = constSlots(kernel);
  const redSize = red ? red.shape.reduce((a, b) => a * b, 1) : 0;
  const outIdx = kernel.shape.map((_, i) => `o${i}`);
  const redIdx = (red?.shape ?? []).map((_, i) => `r${i}`);
  const address = (l: Expr & { k: "load" }, idx: string[]) => `in${l.input}[${indexText(l, idx)}]`;
  const emitter = makeEmitter();
  const emit = (e: Expr, out: string[], idx: string[]) => emitter(e, out, (l) => address(l, idx));
  // Output j is stored `count` elements after output j - 1.
  const store = (j: number, v: string) => `out[i${j ? ` + ${j * count}u` : ""}] = ${v};`;
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
    const vs = outputs.map((o, j) => (emitter.at(slots[j].body), emit(o.body, body, outIdx)));
    lines.push(...body, ...vs.map((v, j) => store(j, v)), "}");
  } else {
    const group = redSize > SERIAL_MAX;
    layout = group ? "group" : "map";
    // One accumulator (and argument) per output; a single output keeps the plain names.
    const one = outputs.length === 1;
    const acc = (j: number) => (one ? "acc" : `acc${j}`);
    const arg = (j: number) => (one ? "arg" : `arg${j}`);
    const sv = (j: number) => (one ? "sv" : `sv${j}`);
    const si = (j: number) => (one ? "si" : `si${j}`);
    const body: string[] = [];
    const vs = outputs.map((o, j) => (
      emitter.at(slots[j].body), emit(o.body, body, [...outIdx, ...redIdx])
    ));
    const loop = [
      decompose("r", redIdx, red.shape),
      ...body,
      ...outputs.map((o, j) =>
        o.op === "sum"
          ? `${acc(j)} += ${vs[j]};`
          : `if (takesMax(${acc(j)}, ${arg(j)}, ${vs[j]}, r)) { ${acc(j)} = ${vs[j]}; ${
            arg(j)
          } = r; }`
      ),
    ];
    const init = outputs.map((o, j) =>
      `var ${acc(j)} = 0.0; var ${arg(j)} = ${o.op === "sum" ? "0u" : "0xffffffffu"};`
    );
    if (group) {
      for (const j of outputs.keys()) {
        head.push(
          `var<workgroup> ${sv(j)}: array<f32, ${REDUCE_WG}>;`,
          `var<workgroup> ${si(j)}: array<u32, ${REDUCE_WG}>;`,
        );
      }
      lines.push(
        `@compute @workgroup_size(${REDUCE_WG})`,
        "fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {",
        "let i = wid.x + wid.y * p.stride;",
        `let valid = i < ${count}u;`,
        keepBindings,
        decompose("i", outIdx, kernel.shape),
        ...init,
        `if (valid) { for (var r = lid; r < ${redSize}u; r += ${REDUCE_WG}u) {`,
        ...loop,
        "} }",
        ...outputs.map((_, j) => `${sv(j)}[lid] = ${acc(j)}; ${si(j)}[lid] = ${arg(j)};`),
        "workgroupBarrier();",
        `for (var s = ${REDUCE_WG / 2}u; s > 0u; s >>= 1u) {`,
        "  if (lid < s) {",
        ...outputs.map((o, j) => {
          const [v, x] = [sv(j), si(j)];
          return o.op === "sum"
            ? `    ${v}[lid] += ${v}[lid + s];`
            : `    if (takesMax(${v}[lid], ${x}[lid], ${v}[lid + s], ${x}[lid + s])) { ${v}[lid] = ${v}[lid + s]; ${x}[lid] = ${x}[lid + s]; }`;
        }),
        "  }",
        "  workgroupBarrier();",
        "}",
        "if (lid != 0u || !valid) { return; }",
        ...outputs.map((_, j) => `${acc(j)} = ${sv(j)}[0]; ${arg(j)} = ${si(j)}[0];`),
      );
    } else {
      lines.push(
        ...mapHead,
        ...init,
        `for (var r = 0u; r < ${redSize}u; r++) {`,
        ...loop,
        "}",
      );
    }
    for (const [j, o] of outputs.entries()) {
      const [a, g] = [acc(j), arg(j)];
      if (o.op === "argmax") lines.push(`${a} = f32(select(${g}, 0u, ${g} == 0xffffffffu));`);
      else if (o.op === "max") lines.push(`if (${g} == 0xffffffffu) { ${a} = -infF32(); }`);
    }
    for (const [j, o] of outputs.entries()) {
      if (!o.epilogue) {
        lines.push(store(j, acc(j)));
        continue;
      }
      const epi: string[] = [];
      emitter.at(slots[j].epilogue);
      const e = emitter(o.epilogue, epi, (l) => address(l, outIdx), acc(j));
      lines.push(...epi, store(j, e));
    }
    lines.push("}");
  }
  const code = pruneFunctions(`${WGSL_PRELUDE}\n${head.join("\n")}\n${lines.join("\n")}`);
  return { code, layout, count, outputs: outputs.length };
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
