/**
 * The structural kernel cache (kernel/cache.ts) must never serve what was built for another
 * kernel: generated kernels and variants of them that differ in exactly one field (a stride, an
 * offset, a load's input, an index leaf's stride or offset, an op, a cast, the dtype, a shape or reduced dimension, the reduction,
 * the input count) or only in their constants. The oracle for "same structure" is written here,
 * independently of kernelStructure: the kernel as canonical JSON with the constants' values
 * blanked out. And end to end, every kernel is run through the native lowering's cache (shared
 * by all cases of the run, so an entry of an earlier case could be served wrongly too) and
 * compared with the reference interpreter.
 */
import assert from "node:assert/strict";
import type { BinaryOp, UnaryOp } from "../kernel/ir.ts";
import type { DType } from "../kernel/shape.ts";
import { BINARY_OPS, UNARY_OPS } from "../kernel/ir.ts";
import { KernelCache } from "../kernel/cache.ts";
import { type Expr, type Kernel, kernelKey, kernelStructure } from "../kernel/ir.ts";
import { interpret } from "../kernel/interpret.ts";
import { compileKernel } from "../cpu/compile.ts";
import { fc, property } from "./property.ts";

/** A small deterministic random source from a seed (mulberry32). */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n: number) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n);
  };
}

/** A mutable kernel in plain objects (built here, not through the IR's builders). */
type K = {
  shape: number[];
  inputs: number;
  body: Expr;
  reduce?: { op: "sum" | "max" | "argmax"; shape: number[] };
  epilogue?: Expr;
};

function genKernel(pick: (n: number) => number): K {
  const shape = Array.from({ length: 1 + pick(2) }, () => 1 + pick(3));
  const inputs = 1 + pick(3);
  const reduce = pick(3) === 0
    ? { op: (["sum", "max", "argmax"] as const)[pick(3)], shape: [1 + pick(4)] }
    : undefined;
  const expr = (rank: number, depth: number, withAcc: boolean): Expr => {
    const r = pick(depth > 2 ? 2 : 7);
    // An index leaf now and then (its strides may be negative, as a flipped view's).
    if (r === 0 && pick(4) === 0) {
      return {
        k: "index",
        strides: Array.from({ length: rank }, () => pick(5) - 2),
        offset: pick(4),
      };
    }
    if (r === 0) {
      return {
        k: "load",
        input: pick(inputs),
        strides: Array.from({ length: rank }, () => pick(4)),
        offset: pick(4),
      };
    }
    if (r === 1) return withAcc && pick(2) ? { k: "acc" } : { k: "const", value: pick(9) - 4 };
    if (r === 2 || r === 3) {
      return {
        k: "unary",
        op: UNARY_OPS[pick(UNARY_OPS.length)],
        x: expr(rank, depth + 1, withAcc),
      };
    }
    if (r === 4) {
      return { k: "cast", to: pick(2) ? "float32" : "float64", x: expr(rank, depth + 1, withAcc) };
    }
    if (r === 5) {
      return {
        k: "where",
        c: expr(rank, depth + 1, withAcc),
        a: expr(rank, depth + 1, withAcc),
        b: expr(rank, depth + 1, withAcc),
      };
    }
    return {
      k: "binary",
      op: BINARY_OPS[pick(BINARY_OPS.length)],
      a: expr(rank, depth + 1, withAcc),
      b: expr(rank, depth + 1, withAcc),
    };
  };
  const k: K = {
    shape,
    inputs,
    body: expr(shape.length + (reduce ? 1 : 0), 0, false),
  };
  if (reduce) {
    k.reduce = reduce;
    if (pick(2)) k.epilogue = expr(shape.length, 1, true);
  }
  return k;
}

/** Every field of a kernel that can change alone, as a setter to another valid value. */
function fields(k: K, dtype: { v: DType }): ((pick: (n: number) => number) => string)[] {
  const out: ((pick: (n: number) => number) => string)[] = [];
  const other = (v: number, n: number, pick: (n: number) => number) => (v + 1 + pick(n - 1)) % n;
  out.push(() => {
    dtype.v = dtype.v === "float32" ? "float64" : "float32";
    return "dtype";
  });
  k.shape.forEach((d, i) =>
    out.push(() => {
      k.shape[i] = d === 1 ? 2 : d - 1;
      return `shape[${i}]`;
    })
  );
  out.push(() => {
    k.inputs++;
    return "inputs";
  });
  if (k.reduce) {
    const red = k.reduce;
    out.push((pick) => {
      red.op = (["sum", "max", "argmax"] as const)[
        other(["sum", "max", "argmax"].indexOf(red.op), 3, pick)
      ];
      return "reduce op";
    });
    out.push(() => {
      red.shape[0] = red.shape[0] === 1 ? 2 : red.shape[0] - 1;
      return "reduced dimension";
    });
  }
  const visit = (e: Expr, where: string): void => {
    const m = e as { -readonly [P in keyof Expr]: unknown } & Record<string, unknown>;
    switch (e.k) {
      case "load":
      case "index":
        // A load's view, or an index leaf's (the loop index through a view, no buffer).
        e.strides.forEach((s, i) =>
          out.push(() => {
            (m.strides as number[])[i] = s + 1;
            return `${where} ${e.k} stride ${i}`;
          })
        );
        out.push(() => {
          m.offset = e.offset + 1;
          return `${where} ${e.k} offset`;
        });
        if (e.k === "load" && k.inputs > 1) {
          out.push((pick) => {
            m.input = other(e.input, k.inputs, pick);
            return `${where} load input`;
          });
        }
        return;
      case "const":
        out.push(() => {
          m.value = (e.value as number) + 0.5;
          return "const";
        });
        return;
      case "acc":
        return;
      case "unary":
        out.push((pick) => {
          m.op = UNARY_OPS[other(UNARY_OPS.indexOf(e.op), UNARY_OPS.length, pick)] as UnaryOp;
          return `${where} unary op`;
        });
        return visit(e.x, where);
      case "cast":
        out.push(() => {
          m.to = e.to === "float32" ? "float64" : "float32";
          return `${where} cast`;
        });
        return visit(e.x, where);
      case "binary":
        out.push((pick) => {
          m.op = BINARY_OPS[other(BINARY_OPS.indexOf(e.op), BINARY_OPS.length, pick)] as BinaryOp;
          return `${where} binary op`;
        });
        visit(e.a, where);
        return visit(e.b, where);
      case "where":
        visit(e.c, where);
        visit(e.a, where);
        return visit(e.b, where);
    }
  };
  visit(k.body, "body");
  if (k.epilogue) visit(k.epilogue, "epilogue");
  return out;
}

/** The oracle's key: canonical JSON (sorted keys), constants' values blanked, and the dtype. */
function refKey(k: Kernel, dtype: DType): string {
  const canon = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canon);
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o).sort().map((
          key,
        ) => [key, o.k === "const" && key === "value" ? null : canon(o[key])]),
      );
    }
    return v;
  };
  return `${dtype}|${JSON.stringify(canon(k))}`;
}

const clone = (k: K): K => structuredClone(k);

/** Input buffers large enough for every load of the kernel, filled from `pick`. */
function inputsFor(k: Kernel, dtype: DType, pick: (n: number) => number) {
  const need = new Array<number>(k.inputs).fill(1);
  const ext = [...k.shape, ...(k.reduce?.shape ?? [])];
  const walk = (e: Expr): void => {
    if (e.k === "load") {
      const last = e.offset + e.strides.reduce((a, s, i) => a + s * (ext[i] - 1), 0);
      need[e.input] = Math.max(need[e.input], last + 1);
    } else if (e.k === "unary" || e.k === "cast") walk(e.x);
    else if (e.k === "binary") (walk(e.a), walk(e.b));
    else if (e.k === "where") (walk(e.c), walk(e.a), walk(e.b));
  };
  walk(k.body);
  if (k.epilogue) walk(k.epilogue);
  return need.map((n) => {
    const a = dtype === "float64" ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (pick(17) - 8) / 4;
    return a;
  });
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The compiled kernel's output against the interpreter's, element by element. */
function checkRun(k: Kernel, dtype: DType, pick: (n: number) => number, what: string): void {
  const ins = inputsFor(k, dtype, pick);
  const n = size(k.shape);
  const make = () => dtype === "float64" ? new Float64Array(n) : new Float32Array(n);
  const want = make();
  interpret(k, ins, want);
  const got = make();
  const { run, consts } = compileKernel(k, dtype);
  run(ins, got, consts);
  for (let i = 0; i < n; i++) {
    const a = got[i], b = want[i];
    const ok = Object.is(a, b) || (a !== a && b !== b) ||
      Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
    if (!ok) assert.fail(`${what}: element ${i} is ${a}, the interpreter gives ${b}`);
  }
}

const caseArb = fc.record({ seed: fc.nat(), which: fc.nat(), alt: fc.nat() });

property(
  "kernels that differ in one field never share a cache entry; in constants only, always",
  caseArb,
  300,
  ({ seed, which, alt }) => {
    const pick = rng(seed);
    const a = genKernel(pick);
    const da = pick(2) ? "float32" : "float64";
    const b = clone(a);
    const db = { v: da as DType };
    const setters = fields(b, db);
    const what = setters[which % setters.length](rng(alt));
    const same = refKey(a, da) === refKey(b, db.v);
    // A fresh cache: a and b are its only structures.
    let builds = 0;
    const cache = new KernelCache(() => ({ id: builds++ }));
    const ea = cache.get(a, da);
    const eb = cache.get(b, db.v);
    assert.equal(ea.value === eb.value, same, `${what}: shared ${ea.value === eb.value}`);
    assert.equal(kernelKey(a, da).key === kernelKey(b, db.v).key, same, `${what}: kernelKey`);
    if (what === "const") {
      assert.ok(same, "a change of a constant keeps the structure");
      assert.notDeepEqual(ea.consts, eb.consts);
    } else assert.ok(!same, `${what} changes the structure`);
    // Asking again finds the same entries, with each kernel's own constants.
    assert.equal(cache.get(a, da).value, ea.value);
    assert.deepEqual(cache.get(b, db.v).consts, eb.consts);
    assert.equal(cache.stats.builds, same ? 1 : 2);
    // End to end: the native lowering's shared cache, a and b interleaved.
    const data = rng(seed ^ 0x5bd1e995);
    checkRun(a, da, data, "a");
    checkRun(b, db.v, data, `b (${what})`);
    checkRun(a, da, data, "a again");
  },
);

Deno.test("kernel cache: a structure's tape lists every field (a 2-input reduction with an epilogue)", () => {
  const k: Kernel = {
    shape: [3],
    inputs: 2,
    body: {
      k: "binary",
      op: "mul",
      a: { k: "load", input: 0, strides: [4, 1], offset: 2 },
      b: { k: "const", value: 7 },
    },
    reduce: { op: "sum", shape: [4] },
    epilogue: { k: "unary", op: "exp", x: { k: "acc" } },
  };
  const tape: number[] = [];
  const consts: number[] = [];
  const n = kernelStructure(k, "float64", tape, consts);
  const unary = UNARY_OPS.indexOf("exp"), binary = BINARY_OPS.indexOf("mul");
  // dtype, shape, inputs, body (binary mul (load 0 [4,1] +2) const), reduce sum [4], epilogue.
  assert.deepEqual(tape.slice(0, n), [
    2,
    1,
    3,
    2,
    5,
    binary,
    1,
    0,
    2,
    4,
    1,
    2,
    2,
    1,
    1,
    4,
    1,
    4,
    unary,
    3,
  ]);
  assert.deepEqual(consts, [7]);
});

Deno.test("kernel cache: kernels whose tapes hash alike (offsets 2^32 apart) get their own entries", () => {
  // The hash mixes each number's int32 part, so these collide: only the comparison tells them apart.
  const at = (offset: number): Kernel => ({
    shape: [2],
    inputs: 1,
    body: { k: "load", input: 0, strides: [1], offset },
  });
  const cache = new KernelCache((k) => k);
  const a = cache.get(at(0), "float32").value;
  const b = cache.get(at(2 ** 32), "float32").value;
  assert.notEqual(a, b);
  assert.equal(cache.get(at(0), "float32").value, a);
  assert.equal(cache.get(at(2 ** 32), "float32").value, b);
  assert.equal(cache.size, 2);
});
