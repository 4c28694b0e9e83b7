/**
 * Reference counting of the lazy graph (kernel/lazy.ts, kernel/graph.ts): generated graphs built
 * straight from the graph's builders (products as routine nodes, reductions, views, element-wise
 * ops), where a value and a reduction over it are both used (x - sum(x) of a product x, whose
 * element-wise op fuses into the product and reads the sum over it), and dense-layer gradient pairs
 * (a^T y and y's column sums, which fold into one product), realized through one root,
 * through several roots one after the other, through kernel/multi.ts `realizeTogether`,
 * through a concatenation of the roots, made together (`computeTogether`: the first read computes
 * all) or each read first through a kernel that consumes it; every array the test made is released, before the
 * realization (as a scope does) or after it. Then the backend holds as many buffers as before,
 * on every backend and dtype, and the roots' values are those of the float64 index-arithmetic
 * reference (tests/kernel_reference.ts).
 *
 * (tests/property_lazy_programs_test.ts builds its programs through tensors and counts no
 * buffers; here each array is released by hand, so a holder the graph forgets shows.)
 */

import assert from "node:assert/strict";
import { Lazy } from "../kernel/lazy.ts";
import * as k from "../kernel/graph.ts";
import { computeTogether, realizeTogether } from "../kernel/multi.ts";
import type { WebGpuBackend } from "../wgsl/webgpu.ts";
import { productsTogether } from "./harness.ts";
import { fc, property } from "./property.ts";
import * as ref from "./kernel_reference.ts";
import { ND, type Target } from "./kernel_reference.ts";

/** One built array: how it is made from earlier ones (by index). */
type Op =
  | { op: "leaf"; shape: number[]; data: Float64Array }
  | { op: "unary"; x: number; name: ref.UnaryName }
  | { op: "binary"; x: number; y: number; name: ref.BinaryName }
  | { op: "reshape"; x: number; shape: number[] }
  | { op: "permute"; x: number; perm: number[] }
  | { op: "expand"; x: number; shape: number[] }
  | { op: "slice"; x: number; starts: number[]; sizes: number[] }
  | { op: "reduce"; x: number; name: "sum" | "max"; axes: number[] }
  | { op: "product"; a: number; b: number; transB: boolean; transA?: boolean };

/** One generated step: its kind, and small numbers that choose operands and parameters. */
type Step = typeof stepArb extends fc.Arbitrary<infer T> ? T : never;

const MAX_SIZE = 240;

/** The float64 reference of one op over the references of the arrays before it. */
function refOf(o: Op, refs: ND[]): ND {
  switch (o.op) {
    case "leaf":
      return new ND(o.shape, o.data);
    case "unary":
      return ref.refUnary(refs[o.x], o.name);
    case "binary":
      return ref.refBinary(refs[o.x], refs[o.y], o.name);
    case "reshape":
      return ref.refReshape(refs[o.x], o.shape);
    case "permute":
      return ref.refTranspose(refs[o.x], o.perm);
    case "expand":
      return ref.refBroadcast(refs[o.x], o.shape);
    case "slice":
      return ref.refSlice(refs[o.x], o.starts, o.sizes);
    case "reduce":
      return ref.refReduce(refs[o.x], o.axes, o.name, false);
    case "product":
      return ref.refMatmul(
        o.transA ? ref.refTranspose(refs[o.a], [1, 0]) : refs[o.a],
        o.transB ? ref.refTranspose(refs[o.b], [1, 0]) : refs[o.b],
      );
  }
}

/** The references of a list of ops. */
function references(ops: Op[]): ND[] {
  const refs: ND[] = [];
  for (const o of ops) refs.push(refOf(o, refs));
  return refs;
}

/** Builds the ops of a graph from generated steps (and the reference of each array). */
function resolve(leaves: { dims: number[]; seed: number }[], steps: Step[]) {
  const ops: Op[] = [];
  const refs: ND[] = [];
  const push = (o: Op) => {
    ops.push(o);
    refs.push(refOf(o, refs));
    return refs.length - 1;
  };
  const leaf = (shape: number[], seed: number) =>
    push({ op: "leaf", shape, data: ref.leafData(ref.sizeOf(shape), seed) });
  /** x and its reduction over some axes, broadcast back and combined with x (either order). */
  const withReduction = (x: number, pick: (n: number) => number) => {
    const xs = refs[x].shape;
    const axes = xs.map((_, i) => i).filter(() => pick(2) === 1);
    if (!axes.length) axes.push(pick(xs.length));
    const s = push({ op: "reduce", x, name: pick(2) ? "max" : "sum", axes });
    // The reduced axes back as 1 (a reshape), then broadcast to x's shape (an expand).
    const kept = push({ op: "reshape", x: s, shape: xs.map((d, i) => (axes.includes(i) ? 1 : d)) });
    const t = push({ op: "expand", x: kept, shape: [...xs] });
    const [p, q] = pick(2) ? [x, t] : [t, x];
    push({ op: "binary", x: p, y: q, name: pick(2) ? "sub" : "mul" });
  };
  for (const l of leaves) leaf(l.dims, l.seed);
  for (const s of steps) {
    const x = refs.length - 1 - (s.a % Math.min(refs.length, 4));
    const xr = refs[x];
    const rank = xr.shape.length;
    const pick = ref.digits(s.b * 1009 + s.c);
    switch (s.kind) {
      case 0:
        push({ op: "unary", x, name: ref.UNARY_NAMES[s.b % ref.UNARY_NAMES.length] });
        break;
      case 1: {
        let y = refs.length - 1 - (s.c % Math.min(refs.length, 5));
        if (!ref.broadcastShape(xr.shape, refs[y].shape)) {
          // An operand that broadcasts: x's shape with some axes 1, some leading ones dropped.
          y = leaf(xr.shape.slice(pick(rank + 1)).map((d) => (pick(2) ? 1 : d)), s.c);
        }
        push({ op: "binary", x, y, name: ref.BINARY_NAMES[s.b % ref.BINARY_NAMES.length] });
        break;
      }
      case 2: {
        // A new shape of the same size: the factors spread over up to three axes.
        const shape = [1, 1, 1].slice(0, 1 + pick(3));
        let rest = xr.size;
        for (let p = 2; p <= rest; p++) {
          while (rest % p === 0) {
            shape[pick(shape.length)] *= p;
            rest /= p;
          }
        }
        push({ op: "reshape", x, shape });
        break;
      }
      case 3: {
        const free = xr.shape.map((_, i) => i);
        const perm: number[] = [];
        while (free.length) perm.push(free.splice(pick(free.length), 1)[0]);
        push({ op: "permute", x, perm });
        break;
      }
      case 4: {
        const lead = pick(2) ? [1 + pick(3)] : [];
        const shape = [...lead, ...xr.shape.map((d) => d === 1 ? 1 + pick(4) : d)];
        if (ref.sizeOf(shape) <= MAX_SIZE) push({ op: "expand", x, shape });
        break;
      }
      case 5: {
        const sizes = xr.shape.map((d) => d - pick(d));
        const starts = xr.shape.map((d, i) => pick(d - sizes[i] + 1));
        push({ op: "slice", x, starts, sizes });
        break;
      }
      case 6: {
        const axes = xr.shape.map((_, i) => i).filter(() => pick(2) === 1);
        if (!axes.length || (axes.length === rank && pick(2))) break;
        push({ op: "reduce", x, name: pick(2) ? "max" : "sum", axes });
        break;
      }
      case 7:
      case 8: {
        // x as [m, k] times [k, n]: a new leaf (maybe stored transposed) or an earlier array of
        // k rows; with kind 8, the product and its reduction both used (maybe twice over).
        if (rank === 0) break;
        const kk = xr.shape[rank - 1];
        const a = rank === 2 ? x : push({ op: "reshape", x, shape: [xr.size / kk, kk] });
        const earlier = refs.findIndex((r, i) =>
          i !== a && r.shape.length === 2 && r.shape[0] === kk
        );
        const m = refs[a].shape[0];
        const reuse = earlier >= 0 && pick(2) === 1 && m * refs[earlier].shape[1] <= MAX_SIZE;
        const n = 1 + pick(5);
        if (!reuse && m * n > MAX_SIZE) break;
        const transB = !reuse && pick(2) === 1;
        const b = reuse ? earlier : leaf(transB ? [n, kk] : [kk, n], s.c + 3);
        const p = push({ op: "product", a, b, transB });
        if (s.kind === 8) {
          withReduction(p, pick);
          // Sometimes the result with its own reduction too (a fused value over a fused value).
          if (pick(2)) withReduction(refs.length - 1, pick);
        }
        break;
      }
      case 9: {
        // (Over the latest array, half the time: over an array that fused its own reduction.)
        const y = s.a % 2 ? x : refs.length - 1;
        if (refs[y].shape.length > 0) withReduction(y, pick);
        break;
      }
      case 10: {
        // A dense layer's weight and bias gradients: a^T y and y's sums over its first axis, y
        // the array as [m, n] (kernel/matmul.ts sumsPairs folds them into one product).
        if (rank === 0) break;
        const n = xr.shape[rank - 1];
        const y = rank === 2 ? x : push({ op: "reshape", x, shape: [xr.size / n, n] });
        const m = refs[y].shape[0];
        const kk = 1 + pick(4);
        if (kk * n > MAX_SIZE) break;
        const a = leaf([m, kk], s.c + 5);
        push({ op: "product", a, b: y, transB: false, transA: true });
        push({ op: "reduce", x: y, name: "sum", axes: [0] });
        break;
      }
    }
  }
  return { ops, refs };
}

/** How each op builds its array from the arrays it reads (`v(i)`: array i). */
type Builder<K extends Op["op"]> = (
  o: Extract<Op, { op: K }>,
  v: (i: number) => Lazy,
  t: Target,
) => Lazy;
const BUILD: { [K in Op["op"]]: Builder<K> } = {
  leaf: ({ data, shape }, _, t) =>
    Lazy.of(
      t.be,
      t.be.upload(t.dtype === "float64" ? Float64Array.from(data) : Float32Array.from(data)),
      shape,
    ),
  unary: (o, v) => k.unary(o.name, v(o.x)),
  binary: (o, v) => k.binary(o.name === "maximum" ? "max" : o.name, v(o.x), v(o.y)),
  reshape: (o, v) => k.reshape(v(o.x), o.shape),
  permute: (o, v) => k.permute(v(o.x), o.perm),
  expand: (o, v) => k.expand(v(o.x), o.shape),
  slice: (o, v) => k.slice(v(o.x), o.starts, o.sizes),
  reduce: (o, v) => k.reduce(o.name, v(o.x), o.axes),
  product: (o, v) => {
    const [a, b] = [v(o.a), v(o.b)];
    const [m, kk] = o.transA ? [a.shape[1], a.shape[0]] : a.shape;
    const n = o.transB ? b.shape[0] : b.shape[1];
    const spec = { m, k: kk, n, transB: o.transB, ...(o.transA ? { transA: true } : {}) };
    return k.routine({ op: "matmul", spec }, [a, b], [m, n]);
  },
};

/** Builds one op's array over the arrays so far (a new array: the caller owns it). */
function build(o: Op, vals: Lazy[], t: Target): Lazy {
  return (BUILD[o.op] as Builder<Op["op"]>)(o, (i) => vals[i], t);
}

/** How the roots are computed, and when the other arrays are released. */
interface Plan {
  roots: number[];
  how: typeof HOWS[number];
  /** Release every other array before computing (as a scope does), or only at the end. */
  early: boolean;
  /** With `early` false: arrays read after the roots (bit i of the mask: array i). */
  readAfter: number;
}

/**
 * One by one; together (kernel/multi.ts realizeTogether); as one concatenation; made together
 * (computeTogether) and read last first, the first read computing all; or each read first
 * through a kernel that consumes it (which computes it as part of its own realization), then
 * on its own.
 */
const HOWS = ["one by one", "together", "concat", "first read", "consumed"] as const;

/** Builds the graph on a target, computes it by `plan`, checks values and buffers. */
async function run(t: Target, ops: Op[], refs: ND[], plan: Plan): Promise<void> {
  const be = t.be;
  const live = be.liveBuffers();
  const vals: Lazy[] = [];
  const held = new Set<Lazy>();
  const release = (x: Lazy) => {
    if (held.delete(x)) x.release();
  };
  try {
    for (const o of ops) {
      const x = build(o, vals, t);
      vals.push(x);
      held.add(x);
    }
    const roots = plan.roots.map((i) => vals[i]);
    if (plan.early) { for (const x of vals) if (!roots.includes(x)) release(x); }
    const what = (i: number) =>
      `${t.label}, array ${i} (${plan.how}, ${plan.early ? "early" : "late"})`;
    if (plan.how === "concat") {
      const widths = roots.map((x) => x.size);
      const cat = k.routine({ op: "concat", outer: 1, widths }, roots, [ref.sizeOf(widths)]);
      held.add(cat);
      for (const x of roots) release(x);
      const flat = plan.roots.map((i) => ref.refReshape(refs[i], [refs[i].size]));
      ref.check(await be.read(cat.realize()), ref.refConcat(flat, 0), t, what(-1));
    } else if (plan.how === "consumed") {
      for (const i of plan.roots) {
        const neg = k.unary("neg", vals[i]);
        held.add(neg);
        ref.check(await be.read(neg.realize()), ref.refUnary(refs[i], "neg"), t, what(i));
        release(neg);
        ref.check(await be.read(vals[i].realize()), refs[i], t, what(i));
      }
    } else {
      if (plan.how === "together") realizeTogether(roots);
      if (plan.how === "first read") computeTogether(roots);
      const order = plan.how === "first read" ? [...plan.roots].reverse() : plan.roots;
      for (const i of order) ref.check(await be.read(vals[i].realize()), refs[i], t, what(i));
    }
    if (!plan.early) {
      for (let i = 0; i < vals.length; i++) {
        if ((plan.readAfter >> (i % 16)) & 1 && held.has(vals[i])) {
          ref.check(await be.read(vals[i].realize()), refs[i], t, `${what(i)} read after`);
        }
      }
    }
  } finally {
    for (const x of [...held]) release(x);
  }
  assert.equal(
    be.liveBuffers(),
    live,
    `${t.label}: buffers left behind (${plan.how}, ${
      plan.early ? "released before" : "released after"
    })`,
  );
}

const stepArb = fc.record({
  // Kinds past 9 repeat products with their reductions and reductions broadcast back.
  kind: fc.nat(15).map((x) => (x <= 10 ? x : [8, 8, 9, 7, 10][x - 11])),
  a: fc.nat(40),
  b: fc.nat(400),
  c: fc.nat(400),
});
const graphArb = fc.record({
  leaves: fc.array(
    fc.record({
      dims: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }),
      seed: fc.nat(1000),
    }),
    { minLength: 1, maxLength: 2 },
  ),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 7 }),
  roots: fc.array(fc.nat(30), { minLength: 0, maxLength: 3 }),
  readAfter: fc.nat(0xffff),
});

property(
  "random lazy graphs give every buffer back and agree with the float64 reference",
  graphArb,
  25,
  async (g) => {
    const { ops, refs } = resolve(g.leaves, g.steps);
    // The last array, and maybe earlier ones (each once).
    const last = refs.length - 1;
    const roots = [...new Set([last, ...g.roots.map((r) => last - (r % refs.length))])];
    for (const how of HOWS) {
      for (const early of [true, false]) {
        for (const t of TARGETS) {
          await t.around(() => run(t, ops, refs, { roots, how, early, readAfter: g.readAfter }));
        }
      }
    }
  },
);

const leaf = (shape: number[], seed: number): Op => ({
  op: "leaf",
  shape,
  data: ref.leafData(ref.sizeOf(shape), seed),
});

/**
 * The targets, WebGPU also with products run together (a hardware GPU's default: the lazy graph
 * then launches ready products beside the one it computes).
 */
const TARGETS: (ref.Target & { around: (fn: () => Promise<void>) => Promise<void> })[] = [
  ...ref.TARGETS.map((t) => ({ ...t, around: (fn: () => Promise<void>) => fn() })),
  ...ref.TARGETS.filter((t) => t.be.name === "webgpu").map((t) => ({
    ...t,
    label: `${t.label}, products together`,
    around: (fn: () => Promise<void>) => productsTogether(t.be as WebGpuBackend, true, fn),
  })),
];

/** Every way to compute `root` of `ops`, on every target. */
async function everyWay(ops: Op[], root: number): Promise<void> {
  const refs = references(ops);
  for (const t of ref.TARGETS) {
    for (const how of HOWS) {
      for (const early of [true, false]) {
        await run(t, ops, refs, { roots: [root], how, early, readAfter: 0xffff });
      }
    }
  }
}

Deno.test("leaks: a product plus its own sum (the add fused into the product reads the sum)", async () => {
  // p = a b; p + broadcast(sum(p)), as x - mean(x) of a matmul x.
  await everyWay([
    leaf([3, 4], 1),
    leaf([4, 5], 2),
    { op: "product", a: 0, b: 1, transB: false },
    { op: "reduce", x: 2, name: "sum", axes: [0, 1] },
    { op: "reshape", x: 3, shape: [1, 1] },
    { op: "expand", x: 4, shape: [3, 5] },
    { op: "binary", x: 2, y: 5, name: "add" },
  ], 6);
});

Deno.test("leaks: realizeTogether over a value whose sources change as it computes them", async () => {
  // y = sum(p) * p, fused into the product p; root = sum(y) * y, fused into y, reads sum(y) and
  // sum(p). Computing sum(y) computes y (after p), which rebuilds root over y's buffer and lets
  // go of sum(p): realizeTogether must not then compute sum(p) from a stale list of sources.
  const sumBack = (x: number, shape: number[]): Op[] => [
    { op: "reduce", x, name: "sum", axes: [0] },
    { op: "reshape", x: x + 1, shape: [1, shape[1]] },
    { op: "expand", x: x + 2, shape },
    { op: "binary", x: x + 3, y: x, name: "mul" },
  ];
  await everyWay([
    leaf([2, 3], 1),
    leaf([3, 2], 2),
    { op: "product", a: 0, b: 1, transB: false },
    ...sumBack(2, [2, 2]),
    ...sumBack(6, [2, 2]),
  ], 10);
});

Deno.test("leaks: a dense gradient pair computed together beside an array that reads the product", async () => {
  // a^T y, y's column sums and -(a^T y), computed together: the pair folds into one product
  // while the third, which reads the first, runs beside it (products together on WebGPU).
  const ops: Op[] = [
    leaf([3, 2], 1),
    leaf([3, 4], 2),
    { op: "product", a: 0, b: 1, transB: false, transA: true },
    { op: "reduce", x: 1, name: "sum", axes: [0] },
    { op: "unary", x: 2, name: "neg" },
  ];
  const refs = references(ops);
  for (const t of TARGETS) {
    for (const how of HOWS) {
      for (const early of [true, false]) {
        const plan = { roots: [4, 2, 3], how, early, readAfter: 0xffff };
        await t.around(() => run(t, ops, refs, plan));
      }
    }
  }
});
