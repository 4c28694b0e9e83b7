/**
 * Matrix products with epilogues and operand windows, on every backend against the CPU oracle:
 * random epilogue expressions (constants, broadcast loads, unary and binary ops) over aligned
 * and unaligned shapes, every transpose, and operands read at offsets inside larger buffers.
 */
import assert from "node:assert/strict";
import type { Backend, DType, MatmulSpec } from "../backend.ts";
import * as ir from "../kernel/ir.ts";
import { cpu, native, Random, webgpu } from "./harness.ts";

const gpu = await webgpu();
const nat = await native();
const targets: [string, Backend, DType][] = [
  ...(nat ? [["native", nat, "float32"] as [string, Backend, DType]] : []),
  ...(gpu ? [["webgpu", gpu as Backend, "float32"] as [string, Backend, DType]] : []),
];

/** A random epilogue over an [m, n] output reading `inputs` buffers ([n] rows or [m, n]). */
function epilogue(rng: Random, m: number, n: number): { body: ir.Expr; shapes: number[][] } {
  const shapes: number[][] = [];
  const leaf = (): ir.Expr => {
    const r = rng.uniform();
    if (r < 0.35) return ir.ACC;
    if (r < 0.6) return ir.constant(rng.range(-2, 2));
    const row = rng.uniform() < 0.5;
    shapes.push(row ? [n] : [m, n]);
    return ir.load(shapes.length - 1, row ? [0, 1] : [n, 1]);
  };
  const expr = (depth: number): ir.Expr => {
    if (depth === 0) return leaf();
    const r = rng.uniform();
    if (r < 0.3) {
      return ir.unary(
        (["sigmoid", "tanh", "relu", "neg", "square"] as const)[rng.int(5)],
        expr(depth - 1),
      );
    }
    return ir.binary(
      (["add", "sub", "mul", "max"] as const)[rng.int(4)],
      expr(depth - 1),
      expr(depth - 1),
    );
  };
  return { body: ir.binary("add", ir.ACC, expr(3)), shapes };
}

Deno.test("matmul epilogues and windows: random cases agree with the oracle on every backend", async () => {
  const rng = new Random(11);
  let checked = 0;
  for (let trial = 0; trial < 40; trial++) {
    const [m, k, n] = [1 + rng.int(40), 1 + rng.int(40), 1 + rng.int(40)];
    const transA = rng.uniform() < 0.5;
    const transB = rng.uniform() < 0.5;
    const offsetA = rng.uniform() < 0.5 ? rng.int(9) : 0;
    const offsetB = rng.uniform() < 0.5 ? rng.int(9) : 0;
    const spec: MatmulSpec = { m, k, n, transA, transB, offsetA, offsetB };
    const a = rng.array(offsetA + m * k + rng.int(5));
    const b = rng.array(offsetB + k * n + rng.int(5));
    const { body, shapes } = epilogue(rng, m, n);
    const extra = shapes.map((s) => rng.array(s.reduce((x, y) => x * y, 1)));
    const run = async (be: Backend) => {
      const bufs = [a, b, ...extra].map((d) => be.upload(Float32Array.from(d)));
      const out = be.matmul(bufs[0], bufs[1], spec, { body, inputs: bufs.slice(2) });
      const got = await be.read(out);
      be.release(out);
      bufs.forEach((x) => be.release(x));
      return got;
    };
    const want = await run(cpu);
    for (const [label, be] of targets) {
      const got = await run(be);
      for (let i = 0; i < want.length; i++) {
        const tol = 1e-4 * (Math.abs(want[i]) + k);
        if (!(Math.abs(got[i] - want[i]) <= tol)) {
          throw new Error(
            `${label} trial ${trial} ${JSON.stringify(spec)}: element ${i} is ${got[i]}, ` +
              `the oracle gives ${want[i]}`,
          );
        }
      }
      checked++;
    }
  }
  assert.equal(checked, 40 * targets.length);
});
