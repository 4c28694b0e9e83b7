/**
 * Element-wise kernels: unary and binary maps (with broadcasting), select, fill, and the fused
 * vector kernels of the optimizer (axpy, scale, preconditioner).
 *
 * Contiguous maps process four elements per invocation through `vec4` views. Pool buffers are
 * rounded up to 16 bytes, so the last, partial vec4 reads and writes padding only.
 *
 * NaN must pass through as IEEE says. llvmpipe folds `x != x` to false and its `max`/`min` drop
 * NaN, so kernels test for NaN on the bit pattern (`isNan`) and build relu and max from `select`.
 *
 * @module
 */

import {
  type BinaryOp,
  broadcastShapes,
  broadcastStrides,
  SgnError,
  sizeOf,
  type UnaryOp,
} from "../backend.ts";
import { type GpuBuffer, type GpuRuntime, grid, Params } from "./runtime.ts";
import { memoKernel } from "./source.ts";

/** A scalar operand on the device: `coef * buf[0]` (buf is the constant one for host numbers). */
export interface ScalarArg {
  coef: number;
  buf: GpuBuffer;
}

const WG = 64;

/** WGSL helpers shared by element-wise kernels. */
export const WGSL_MATH = /* wgsl */ `
// Infinity and NaN from their bits through a let: WGSL forbids a constant expression whose value is
// inf or NaN, and Chromium's compiler (Tint) rejects bitcast<f32>(0x7f800000u) where naga lets
// it pass; a let makes the bitcast a run-time expression.
fn infF32() -> f32 { let bits = 0x7f800000u; return bitcast<f32>(bits); }
fn nanF32() -> f32 { let bits = 0x7fc00000u; return bitcast<f32>(bits); }
fn isNan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn isNan4(x: vec4f) -> vec4<bool> { return (bitcast<vec4u>(x) & vec4u(0x7fffffffu)) > vec4u(0x7f800000u); }
fn sigmoid4(x: vec4f) -> vec4f {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= vec4f(0.0));
}
// The builtin tanh loses accuracy near 0 on llvmpipe: a series there, exp elsewhere.
fn tanh4(x: vec4f) -> vec4f {
  let a = abs(x);
  let x2 = x * x;
  let series = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
  let t = exp(-2.0 * a);
  let big = sign(x) * (1.0 - t) / (1.0 + t);
  return select(big, series, a < vec4f(0.125));
}
fn max4(a: vec4f, b: vec4f) -> vec4f { return select(select(b, a, a > b), a + b, isNan4(a) | isNan4(b)); }
fn min4(a: vec4f, b: vec4f) -> vec4f { return select(select(b, a, a < b), a + b, isNan4(a) | isNan4(b)); }
// log(1 + u) for u >= 0 (and NaN), to float32's relative accuracy also for small u: a series
// below 1/32 (its first omitted term is under 2e-10 relative), log(1 + u) above, where the
// rounding of 1 + u costs at most 2e-6 relative. (Goldberg's log(v) u / (v - 1) would need
// v - 1 computed as written, which a compiler may fold into u.)
fn log1pF32(u: f32) -> f32 {
  let series = u * (1.0 + u * (-0.5 + u * (1.0 / 3.0 + u * (-0.25 + u * (0.2 - u / 6.0)))));
  return select(series, log(1.0 + u), u >= 0.03125);
}
fn b2f(c: vec4<bool>) -> vec4f { return select(vec4f(0.0), vec4f(1.0), c); }
`;

const UNARY: Record<UnaryOp, string> = {
  neg: "-x",
  exp: "exp(x)",
  log: "log(x)",
  sigmoid: "sigmoid4(x)",
  tanh: "tanh4(x)",
  relu: "select(x, vec4f(0.0), x <= vec4f(0.0))",
  square: "x * x",
  sqrt: "sqrt(x)",
  reciprocal: "1.0 / x",
  abs: "abs(x)",
  // x itself at NaN and at ±0: sign(-0) is -0 (IEEE, and the CPU's Math.sign), where the
  // builtin gives +0.
  sign: "select(sign(x), x, isNan4(x) | x == vec4f(0.0))",
  step: "b2f(x > vec4f(0.0))",
};

const BINARY: Record<BinaryOp, string> = {
  add: "a + b",
  sub: "a - b",
  mul: "a * b",
  div: "a / b",
  max: "max4(a, b)",
  min: "min4(a, b)",
  pow: "pow4(a, b)",
  eq: "b2f(a == b)",
  ne: "b2f(a != b | isNan4(a) | isNan4(b))",
  lt: "b2f(a < b)",
  le: "b2f(a <= b)",
  gt: "b2f(a > b)",
  ge: "b2f(a >= b)",
};

// WGSL's pow is exp2(b log2(a)): undefined for negative bases, and on llvmpipe pow(0, -1) is 0.
// This follows C's (and JavaScript's) pow: integer exponents of negative bases, zero and
// infinite bases by their rules, the sign of -0 and -inf kept for odd exponents (the sign bit,
// not a < 0, tells -0 from +0): pow(-0, 3) = -0, pow(-0, -1) = -inf, pow(0, -2) = inf.
const POW = /* wgsl */ `
fn pow1(a: f32, b: f32) -> f32 {
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
fn pow4(a: vec4f, b: vec4f) -> vec4f {
  return vec4f(pow1(a.x, b.x), pow1(a.y, b.y), pow1(a.z, b.z), pow1(a.w, b.w));
}
`;

/** A contiguous vec4 map over n elements: `out = expr(inputs...)`, inputs named in `decls`. */
const mapKernel = memoKernel("map", mapSource);

function mapSource(names: string[], expr: string, extraParams = "", extraDecls = ""): string {
  const decls = names.map((n, i) =>
    `@group(0) @binding(${i + 1}) var<storage, read> in_${n}: array<vec4f>;`
  ).join("\n");
  const loads = names.map((n) => `let ${n} = in_${n}[i];`).join(" ");
  return /* wgsl */ `
${WGSL_MATH}
${POW}
struct P { n4: u32, stride: u32, ${extraParams} }
@group(0) @binding(0) var<uniform> p: P;
${decls}
@group(0) @binding(${names.length + 1}) var<storage, read_write> out: array<vec4f>;
${extraDecls}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.n4) { return; }
  ${loads}
  out[i] = ${expr};
}`;
}

/**
 * The broadcasting binary kernel of a coalesced rank: four outputs per invocation with `quad`,
 * each operand read as vec4s along the inner dimension where `aVec` / `bVec` (else one float
 * broadcast to the four).
 */
const broadcastKernel = memoKernel(
  "broadcast",
  (rank: number, quad: boolean, aVec: boolean, bVec: boolean, expr: string) => {
    const load = (name: string, vec: boolean, off: string) =>
      vec ? `${name}4[${off} / 4u]` : `vec4f(${name}[${off}])`;
    const decl = (name: string, vec: boolean, binding: number) =>
      vec
        ? `@group(0) @binding(${binding}) var<storage, read> ${name}4: array<vec4f>;`
        : `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;`;
    return /* wgsl */ `
${WGSL_MATH}
${POW}
struct P { n: u32, stride: u32, pad0: u32, pad1: u32,
  shape: array<vec4u, 2>, ia: array<vec4u, 2>, ib: array<vec4u, 2> }
@group(0) @binding(0) var<uniform> p: P;
${decl("A", aVec, 1)}
${decl("B", bVec, 2)}
@group(0) @binding(3) var<storage, read_write> out${quad ? "4: array<vec4f>" : ": array<f32>"};
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let q = gid.x + gid.y * p.stride;
  let i = q * ${quad ? 4 : 1}u;
  if (i >= p.n) { return; }
  ${decodeIndex(rank, ["ia", "ib"])}
  let a = ${load("A", aVec, "ia")};
  let b = ${load("B", bVec, "ib")};
  let r = ${expr};
  ${quad ? "out4[q] = r;" : "out[i] = r.x;"}
}`;
  },
);

function runMap(
  rt: GpuRuntime,
  code: string,
  n: number,
  inputs: GpuBuffer[],
  extra?: (p: Params) => void,
): GpuBuffer {
  const out = rt.alloc(n);
  const n4 = Math.ceil(n / 4);
  const [gx, gy] = grid(Math.ceil(n4 / WG));
  const params = new Params().u32(n4, gx * WG);
  extra?.(params);
  rt.dispatch(code, params, [...inputs, out], [gx, gy]);
  return out;
}

/** A buffer of n copies of value. */
export function fill(rt: GpuRuntime, n: number, value: number): GpuBuffer {
  return runMap(rt, mapKernel([], "vec4f(p.value)", "value: f32,"), n, [], (p) => p.f32(value));
}

/** Element-wise unary map. */
export function unary(rt: GpuRuntime, op: UnaryOp, x: GpuBuffer): GpuBuffer {
  const expr = UNARY[op];
  if (expr === undefined) throw new SgnError(`unknown unary op '${op}'`);
  return runMap(rt, mapKernel(["x"], expr), x.size, [x]);
}

/** `cond != 0 ? a : b`, all of one size. */
export function where(rt: GpuRuntime, cond: GpuBuffer, a: GpuBuffer, b: GpuBuffer): GpuBuffer {
  if (cond.size !== a.size || a.size !== b.size) {
    throw new SgnError(`where: sizes ${cond.size}, ${a.size} and ${b.size} must be equal`);
  }
  return runMap(rt, mapKernel(["c", "a", "b"], "select(b, a, c != vec4f(0.0))"), a.size, [
    cond,
    a,
    b,
  ]);
}

const SCALAR_DECL = (binding: number) =>
  `@group(0) @binding(${binding}) var<storage, read> sc: array<f32>;`;

/** `alpha * x + y`. */
export function axpy(rt: GpuRuntime, alpha: ScalarArg, x: GpuBuffer, y: GpuBuffer): GpuBuffer {
  if (x.size !== y.size) throw new SgnError(`axpy: sizes ${x.size} and ${y.size} differ`);
  const code = mapKernel(["x", "y"], "(p.coef * sc[0]) * x + y", "coef: f32,", SCALAR_DECL(4));
  return runOrdered(rt, code, x.size, [x, y], alpha);
}

/** `alpha * x`. */
export function scale(rt: GpuRuntime, alpha: ScalarArg, x: GpuBuffer): GpuBuffer {
  const code = mapKernel(["x"], "(p.coef * sc[0]) * x", "coef: f32,", SCALAR_DECL(3));
  return runOrdered(rt, code, x.size, [x], alpha);
}

/** `a / (b * b + c) ^ p`. */
export function precond(
  rt: GpuRuntime,
  a: GpuBuffer,
  b: GpuBuffer,
  c: ScalarArg,
  pw: number,
): GpuBuffer {
  if (a.size !== b.size) throw new SgnError(`precond: sizes ${a.size} and ${b.size} differ`);
  const code = mapKernel(
    ["a", "b"],
    "a / pow(b * b + vec4f(p.coef * sc[0]), vec4f(p.power))",
    "coef: f32, power: f32,",
    SCALAR_DECL(4),
  );
  return runOrdered(rt, code, a.size, [a, b], c, (p) => p.f32(pw));
}

/** A map whose last binding (after the output) is a scalar buffer: bindings are ins, out, sc. */
function runOrdered(
  rt: GpuRuntime,
  code: string,
  n: number,
  inputs: GpuBuffer[],
  s: ScalarArg,
  extra?: (p: Params) => void,
): GpuBuffer {
  // mapKernel puts the output right after the inputs; the scalar follows it.
  const out = rt.alloc(n);
  const n4 = Math.ceil(n / 4);
  const [gx, gy] = grid(Math.ceil(n4 / WG));
  const params = new Params().u32(n4, gx * WG).f32(s.coef);
  extra?.(params);
  rt.dispatch(code, params, [...inputs, out, s.buf], [gx, gy]);
  return out;
}

/** Merges adjacent dimensions that every operand reads contiguously, to shorten index math. */
export function coalesce(
  shape: readonly number[],
  stridesList: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = stridesList.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    const mergeable = last >= 0 &&
      stridesList.every((s, k) => outStrides[k][last] === s[d] * shape[d]);
    if (mergeable) {
      outShape[last] *= shape[d];
      stridesList.forEach((s, k) => (outStrides[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      stridesList.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  return { shape: outShape, strides: outStrides };
}

/** Largest rank a strided kernel handles after coalescing. */
export const MAX_RANK = 6;

/**
 * WGSL that decodes the linear index `i` of an output of rank `rank` (dims in `p.shape`) into
 * offsets named `offsets` (strides in `p.<offset name>`), unrolled for that rank.
 */
export function decodeIndex(rank: number, offsets: string[]): string {
  const lines = [`var rem = i;`, ...offsets.map((o) => `var ${o} = 0u;`)];
  for (let d = rank - 1; d >= 0; d--) {
    const at = `[${Math.floor(d / 4)}][${d % 4}]`;
    const c = `c${d}`;
    lines.push(
      d > 0 ? `let ${c} = rem % p.shape${at}; rem = rem / p.shape${at};` : `let ${c} = rem;`,
    );
    for (const o of offsets) lines.push(`${o} += ${c} * p.${o}${at};`);
  }
  return lines.join("\n  ");
}

/** Element-wise binary op with NumPy broadcasting. */
export function binary(
  rt: GpuRuntime,
  op: BinaryOp,
  a: GpuBuffer,
  aShape: readonly number[],
  b: GpuBuffer,
  bShape: readonly number[],
): GpuBuffer {
  const expr = BINARY[op];
  if (expr === undefined) throw new SgnError(`unknown binary op '${op}'`);
  const outShape = broadcastShapes(aShape, bShape);
  if (!outShape) {
    throw new SgnError(
      `${op}: shapes [${aShape.join(",")}] and [${bShape.join(",")}] do not broadcast`,
    );
  }
  if (a.size !== sizeOf(aShape) || b.size !== sizeOf(bShape)) {
    throw new SgnError(
      `${op}: buffer sizes ${a.size} and ${b.size} do not match shapes ` +
        `[${aShape.join(",")}] and [${bShape.join(",")}]`,
    );
  }
  const n = sizeOf(outShape);
  if (a.size === n && b.size === n) return runMap(rt, mapKernel(["a", "b"], expr), n, [a, b]);
  const { shape, strides } = coalesce(outShape, [
    broadcastStrides(aShape, outShape),
    broadcastStrides(bShape, outShape),
  ]);
  if (shape.length > MAX_RANK) {
    throw new SgnError(`${op}: broadcasting needs at most ${MAX_RANK} distinct dimensions`);
  }
  const dims = shape;
  const [sa, sb] = strides;
  // Four outputs per invocation when the innermost dimension allows aligned vec4 access: one
  // index decode (integer division, slow on CPUs) then serves four elements.
  const last = shape.length - 1;
  const vecOk = (st: number[]) => st[last] === 0 || st.every((v, d) => d === last || v % 4 === 0);
  const quad = last >= 0 && shape[last] % 4 === 0 &&
    strides.every((st) => st[last] <= 1 && vecOk(st));
  const code = broadcastKernel(
    shape.length,
    quad,
    quad && sa[last] === 1,
    quad && sb[last] === 1,
    expr,
  );
  const out = rt.alloc(n);
  const [gx, gy] = grid(Math.ceil(n / (quad ? 4 : 1) / WG));
  const params = new Params().u32(n, gx * WG, 0, 0);
  const u8 = (xs: number[]) => [...xs, 0, 0, 0, 0, 0, 0, 0, 0].slice(0, 8);
  params.u32(...u8(dims), ...u8(sa), ...u8(sb));
  rt.dispatch(code, params, [a, b, out], [gx, gy]);
  return out;
}
