/**
 * The autodiff's rules as the module graph wires them, and the unary primitives that the IR's op
 * table defines:
 * - Tracing works whatever order a program imports the autodiff's modules in: a fresh process
 *   per order (no registration call can have run first) differentiates with jvp, vjp, grad and
 *   hvp and matches closed forms.
 * - The autodiff's modules import each other without a cycle, type-only imports included.
 * - Every unary primitive, one per row of kernel/ir.ts's `UNARY` and reached through its public
 *   op of the same name (`ops[op]` type-checks only if each op has one): values against its
 *   definition in float64, J v and J^T u against central differences of that definition, and
 *   H v of <u, f> (the derivative rules' own derivatives) against second differences, on every
 *   backend (float32 on WebGPU to float32's accuracy).
 * - abs and sign where their rules are a choice: abs'(0) = 0, sign' = 0 (also at 0), -0 and NaN.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import type { Backend } from "../kernel/backend.ts";
import { UNARY_OPS, type UnaryOp } from "../kernel/ir.ts";
import { type Tensor, tensor } from "../autodiff/tensor.ts";
import * as o from "../autodiff/ops.ts";
import { grad, hvp, jvp, vjp } from "../autodiff/transforms.ts";
import { fc, property } from "./property.ts";
import { assertClose, backendLabel, cpu, native, Random, webgpu } from "./harness.ts";
import { erfReference } from "./erf_reference.ts";

const root = normalize(new URL("..", import.meta.url).pathname);
const nat = await native();
const gpu = await webgpu();
const ALL: Backend[] = [cpu, ...(nat ? [nat] : []), ...(gpu ? [gpu] : [])];
const wide = (be: Backend) => (be.dtypes.includes("float64") ? "float64" : "float32");

// --- the module graph ------------------------------------------------------------------------

/** A module of the repository as a quoted file URL, for a program's import. */
const url = (m: string) => JSON.stringify(new URL(m, `file://${root}/`).href);

/** Runs a JavaScript program in a fresh Deno process; its stdout parsed as JSON. */
async function runFresh(lines: string[], what: string): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", lines.join("\n")],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(out.code, 0, `${what}: ${text(out.stderr)}`);
  return JSON.parse(text(out.stdout));
}

const X = [0.3, -0.7, 1.1];
const V = [1, -0.5, 2];

/**
 * A program that imports `first` (in that order), then the transformations, tensors, ops and the
 * CPU oracle backend, and prints f = sum(x tanh x)'s value, J v, J^T 1, gradient and H v at X
 * along V, as JSON.
 */
const program = (first: string[]) => [
  ...first.map((m, i) => `import * as first${i} from ${url(m)};`),
  `const { grad, hvp, jvp, vjp } = await import(${url("autodiff/transforms.ts")});`,
  `const { tensor } = await import(${url("autodiff/tensor.ts")});`,
  `const o = await import(${url("autodiff/ops.ts")});`,
  `const { CpuBackend } = await import(${url("cpu/oracle.ts")});`,
  `const backend = new CpuBackend();`,
  `const at = (a) => tensor(a, undefined, { backend, dtype: "float64" });`,
  `const f = (x) => o.sum(o.mul(o.tanh(x), x));`,
  `const x = at(${JSON.stringify(X)}), v = at(${JSON.stringify(V)});`,
  `const [[y], [jv]] = jvp(f, [x], [v]);`,
  `const [, pullback] = vjp(f, [x]);`,
  `const [jtu] = pullback(at(1));`,
  `const [g] = grad(f)(x);`,
  `const [hv] = hvp(f, [x], [v]);`,
  `const read = async (t) => Array.from(await t.data());`,
  `console.log(JSON.stringify({ y: await read(y), jv: await read(jv), jtu: await read(jtu), ` +
  `g: await read(g), hv: await read(hv) }));`,
];

/** The import orders: only transformations and tensors first, then each module of autodiff/. */
const ORDERS = [
  ["autodiff/transforms.ts", "autodiff/tensor.ts"],
  ["autodiff/tensor.ts", "autodiff/transforms.ts"],
  ...["core", "primitives", "derivatives", "traces", "ops", "replay", "tensor"].map((m) => [
    `autodiff/${m}.ts`,
  ]),
];

Deno.test("autodiff: tracing works whatever order the modules are imported in (a fresh process each)", async () => {
  // sum(x tanh x): gradient t + x (1 - t^2), Hessian diagonal 2 (1 - t^2)(1 - x t).
  const t = X.map(Math.tanh);
  const g = X.map((x, i) => t[i] + x * (1 - t[i] ** 2));
  const h = X.map((x, i) => 2 * (1 - t[i] ** 2) * (1 - x * t[i]));
  for (const first of ORDERS) {
    const what = `imports ${first.join(", ")} first`;
    const r = await runFresh(program(first), what) as Record<string, number[]>;
    assertClose(r.y, [X.reduce((s, x, i) => s + x * t[i], 0)], { rtol: 1e-14, what });
    assertClose(r.jv, [g.reduce((s, gi, i) => s + gi * V[i], 0)], { rtol: 1e-14, what });
    assertClose(r.jtu, g, { rtol: 1e-14, what: `${what}: J^T 1` });
    assertClose(r.g, g, { rtol: 1e-14, what: `${what}: grad` });
    assertClose(r.hv, h.map((hi, i) => hi * V[i]), { rtol: 1e-13, what: `${what}: H v` });
  }
});

Deno.test("autodiff: core.ts alone evaluates a primitive (bind needs no rules registered first)", async () => {
  const out = await runFresh([
    `import { bind } from ${url("autodiff/core.ts")};`,
    `import { tensor } from ${url("autodiff/tensor.ts")};`,
    `import { CpuBackend } from ${url("cpu/oracle.ts")};`,
    `const x = tensor([0.5, -2], undefined, { backend: new CpuBackend(), dtype: "float64" });`,
    `console.log(JSON.stringify(Array.from(await bind("tanh", [x], undefined).data())));`,
  ], "core.ts, tensor.ts and the oracle only");
  assert.deepEqual(out, [Math.tanh(0.5), Math.tanh(-2)]);
});

/** The relative modules a file imports, type-only imports included. */
function imports(file: string, text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  return [...code.matchAll(/\bfrom\s+"(\.{1,2}\/[^"]+)"/g)]
    .map((m) => relative(root, join(root, dirname(file), m[1])));
}

Deno.test("autodiff: its modules import each other without a cycle, type-only imports included", async () => {
  const graph = new Map<string, string[]>();
  for await (const e of Deno.readDir(join(root, "autodiff"))) {
    const file = `autodiff/${e.name}`;
    graph.set(file, imports(file, await Deno.readTextFile(join(root, file))));
  }
  assert.ok(graph.get("autodiff/core.ts")?.includes("autodiff/primitives.ts"), "edges are read");
  // Depth-first, each module once: a module reached again while still open closes a cycle.
  const open = new Set<string>();
  const done = new Set<string>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (open.has(f)) cycles.push([...path.slice(path.indexOf(f)), f].join(" -> "));
    if (open.has(f) || done.has(f) || !graph.has(f)) return;
    open.add(f);
    for (const g of graph.get(f)!) visit(g, [...path, f]);
    open.delete(f);
    done.add(f);
  };
  for (const f of graph.keys()) visit(f, []);
  assert.deepEqual(cycles, []);
});

// --- the unary primitives ----------------------------------------------------------------------

/**
 * Each unary op from its definition, in float64, and whether its argument must be positive (the
 * generated points stay at least 0.25 from 0, where abs, sign, step and relu have their kink and
 * log, sqrt and reciprocal their pole).
 */
const UNARY_REF: { [K in UnaryOp]: { f: (x: number) => number; positive?: true } } = {
  neg: { f: (x) => -x },
  exp: { f: Math.exp },
  log: { f: Math.log, positive: true },
  sigmoid: { f: (x) => 1 / (1 + Math.exp(-x)) },
  tanh: { f: Math.tanh },
  relu: { f: (x) => Math.max(x, 0) },
  square: { f: (x) => x * x },
  sqrt: { f: Math.sqrt, positive: true },
  reciprocal: { f: (x) => 1 / x },
  abs: { f: Math.abs },
  sign: { f: Math.sign },
  step: { f: (x) => (x > 0 ? 1 : 0) },
  softplus: { f: (x) => Math.log(1 + Math.exp(x)) },
  erf: { f: erfReference },
};

/** The public op of each unary primitive: ops.ts exports one under the op's name. */
const publicOp = (op: UnaryOp): (x: Tensor) => Tensor => o[op];

interface UnaryCase {
  op: UnaryOp;
  x: number[];
  v: number[];
  u: number[];
}

/** float32 numbers with 0.25 <= |x| <= 2 (positive where the op asks). */
const unaryCase: fc.Arbitrary<UnaryCase> = fc.record({
  op: fc.constantFrom(...UNARY_OPS),
  n: fc.integer({ min: 1, max: 6 }),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
}).map(({ op, n, seed }) => {
  const rng = new Random(seed);
  const draw = (lo: number, hi: number) =>
    Array.from({ length: n }, () => Math.fround(rng.range(lo, hi)));
  const x = draw(0.25, 2).map((a) => (UNARY_REF[op].positive || rng.range(0, 1) < 0.5 ? a : -a));
  return { op, x, v: draw(-1, 1), u: draw(-1, 1) };
});

property(
  "every unary primitive of the IR's op table: values, J v, J^T u and H v against its definition, every backend",
  unaryCase,
  60,
  async ({ op, x, v, u }) => {
    const { f } = UNARY_REF[op];
    // First derivatives by central differences (truncation h^2 f''', rounding eps / h: ~1e-10),
    // second by the three-point formula (h^2 f'''' and eps / h^2: ~1e-8).
    const d1 = (a: number, h = 1e-5) => (f(a + h) - f(a - h)) / (2 * h);
    const d2 = (a: number, h = 1e-4) => (f(a + h) - 2 * f(a) + f(a - h)) / (h * h);
    const want = {
      y: x.map(f),
      jv: x.map((a, i) => d1(a) * v[i]),
      jtu: x.map((a, i) => d1(a) * u[i]),
      hv: x.map((a, i) => u[i] * d2(a) * v[i]),
    };
    for (const be of ALL) {
      const dtype = wide(be);
      const at = (a: number[]) => tensor(a, [a.length], { backend: be, dtype });
      const fn = publicOp(op);
      const [[y], [jv]] = jvp(fn, [at(x)], [at(v)]);
      const [, pullback] = vjp(fn, [at(x)]);
      const [jtu] = pullback(at(u));
      const uu = at(u);
      const [hv] = hvp((t) => o.sum(o.mul(fn(t), uu)), [at(x)], [at(v)]);
      const what = `${op} on ${backendLabel(be)} at [${x.join(", ")}]`;
      // float32: the op table's float32 forms, a few roundings of order-1 terms.
      const [tol0, tol1, tol2] = dtype === "float64" ? [1e-12, 1e-7, 1e-5] : [1e-4, 1e-3, 1e-3];
      const close = (a: ArrayLike<number>, e: number[], tol: number, part: string) =>
        assertClose(a, e, { rtol: tol, atol: tol, what: `${what}: ${part}` });
      close(await y.data(), want.y, tol0, "values");
      close(await jv.data(), want.jv, tol1, "J v");
      close(await jtu.data(), want.jtu, tol1, "J^T u");
      close(await hv.data(), want.hv, tol2, "H v");
      pullback.dispose();
    }
  },
);

Deno.test("abs and sign: abs' = sign (0 at 0), sign' = 0 everywhere, -0 and NaN kept, every backend", async () => {
  for (const be of ALL) {
    const dtype = wide(be);
    const at = (a: number[]) => tensor(a, [a.length], { backend: be, dtype });
    const x = [-1.5, -0, 0, 2, NaN];
    const what = backendLabel(be);
    // -0 has sign -0 (the op table's choice) and abs 0; NaN passes through both.
    const s = Array.from(await o.sign(at(x)).data());
    assert.deepEqual(s.map((a) => Object.is(a, -0) ? "-0" : a), [-1, "-0", 0, 1, NaN], what);
    assert.deepEqual(Array.from(await o.abs(at(x)).data()), [1.5, 0, 0, 2, NaN], what);
    const finite = at([-1.5, -0, 0, 2]);
    const [ga] = grad((t) => o.sum(o.abs(t)))(finite);
    assert.deepEqual(Array.from(await ga.data()).map((a) => a + 0), [-1, 0, 0, 1], `${what}: abs'`);
    const [gs] = grad((t) => o.sum(o.mul(o.sign(t), t)))(finite);
    // d/dx (sign(x) x) with sign' = 0 is sign(x): the product rule's other term vanishes.
    assert.deepEqual(
      Array.from(await gs.data()).map((a) => a + 0),
      [-1, 0, 0, 1],
      `${what}: sign'`,
    );
    const [hv] = hvp((t) => o.sum(o.abs(t)), [finite], [at([1, 1, 1, 1])]);
    assert.deepEqual(Array.from(await hv.data()).map((a) => a + 0), [0, 0, 0, 0], `${what}: abs''`);
  }
});
