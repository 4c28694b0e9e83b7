/**
 * Property tests of the lazy graph on every backend against the float64 reference
 * (tests/kernel_reference.ts): random lazy programs built from the public ops (element-wise
 * chains, broadcasts, reshapes, transposes, slices, flattens of views of views, reductions over
 * any axes, matmuls of views and windows, concat, pad), intermediates read in the middle,
 * realized, or read again at the end; and the same program built in a scope that keeps only its
 * result (as training code does), which must compute nothing twice (`lazyStats.recomputed`).
 * (With intermediates held and read after their consumers, recomputing a fused reduction is by
 * design, and counted.)
 */

import assert from "node:assert/strict";
import { lazyStats } from "../kernel/lazy.ts";
import { fc, property } from "./property.ts";
import { ops, scope, type Tensor, tensor } from "../mod.ts";
import {
  BINARY_NAMES,
  type BinaryName,
  broadcastShape,
  check,
  digits,
  leafData,
  ND,
  type ReduceName,
  refArgmax,
  refBinary,
  refBroadcast,
  refConcat,
  refMatmul,
  refPad,
  refReduce,
  refReshape,
  refSlice,
  refTranspose,
  refUnary,
  sizeOf,
  type Target,
  TARGETS,
  UNARY_NAMES,
  type UnaryName,
} from "./kernel_reference.ts";

/** One generated step: what to do, and small numbers that choose its operands and parameters. */
interface Step {
  kind: number;
  a: number;
  b: number;
  c: number;
}

/** A resolved step: the same on the reference and on every backend. */
type Op =
  | { op: "leaf"; shape: number[]; data: Float64Array }
  | { op: "unary"; x: number; name: UnaryName }
  | { op: "binary"; x: number; y: number; name: BinaryName }
  | { op: "scalar"; x: number; name: BinaryName; value: number; left: boolean }
  | { op: "reshape"; x: number; shape: number[] }
  | { op: "flatten"; x: number; start: number }
  | { op: "transpose"; x: number; perm: number[] }
  | { op: "broadcast"; x: number; shape: number[] }
  | { op: "slice"; x: number; starts: number[]; sizes: number[] }
  | { op: "reduce"; x: number; name: ReduceName; axes: number[]; keepdims: boolean }
  | { op: "argmax"; x: number; axis: number }
  | { op: "matmul"; a: number; b: number; transA: boolean; transB: boolean }
  | { op: "concat"; xs: number[]; axis: number }
  | { op: "pad"; x: number; before: number[]; after: number[] }
  | { op: "read"; x: number; realizeOnly: boolean };

/** A random shape of `size` elements and rank up to 4 (its factors spread over the axes). */
function factorShape(size: number, pick: (n: number) => number): number[] {
  const rank = 1 + pick(4);
  const shape = new Array<number>(rank).fill(1);
  let rest = size;
  for (let p = 2; p <= rest; p++) {
    while (rest % p === 0) {
      shape[pick(rank)] *= p;
      rest /= p;
    }
  }
  return shape;
}

const MAX_SIZE = 360;

/** A sorted set of 1 to `most` distinct axes of a rank-`rank` array. */
function someAxes(rank: number, most: number, pick: (n: number) => number): number[] {
  const free = Array.from({ length: rank }, (_, i) => i);
  const out: number[] = [];
  for (let k = 1 + pick(most); k > 0; k--) out.push(free.splice(pick(free.length), 1)[0]);
  return out.sort((a, b) => a - b);
}

/**
 * Turns generated steps into ops over the growing list of values, with the reference computed
 * alongside (parameters depend on shapes, known only as the program grows).
 */
function resolve(leaves: { dims: number[]; seed: number }[], steps: Step[]) {
  const ops: Op[] = [];
  const refs: ND[] = [];
  const push = (o: Op, r: ND | undefined) => {
    ops.push(o);
    if (r) refs.push(r);
  };
  const leaf = (shape: number[], seed: number) => {
    const data = leafData(sizeOf(shape), seed);
    push({ op: "leaf", shape, data }, new ND(shape, data));
    return refs.length - 1;
  };
  /**
   * x combined with its reduction over some axes, broadcast back (a reduction read not whole):
   * the reduced axes kept as size 1, or leading axes dropped.
   */
  const broadcastBack = (xi: number, b: number, c: number) => {
    const x = refs[xi];
    const rank = x.shape.length;
    const pick = digits(b * 31 + c);
    const name: ReduceName = c % 2 ? "max" : "sum";
    const keepdims = c % 4 < 2;
    const axes = keepdims ? [b % rank] : x.shape.map((_, i) => i).slice(0, 1 + (b % rank));
    push({ op: "reduce", x: xi, name, axes, keepdims }, refReduce(x, axes, name, keepdims));
    const r = refs.length - 1;
    const first = pick(2) === 0;
    const bin: BinaryName = pick(2) ? "sub" : "mul";
    push(
      { op: "binary", x: first ? xi : r, y: first ? r : xi, name: bin },
      first ? refBinary(x, refs[r], bin) : refBinary(refs[r], x, bin),
    );
  };
  for (const l of leaves) leaf(l.dims, l.seed);
  for (const s of steps) {
    const xi = refs.length - 1 - (s.a % Math.min(refs.length, 4));
    const x = refs[xi];
    const pick = digits(s.b * 1009 + s.c);
    const rank = x.shape.length;
    switch (s.kind) {
      case 0: {
        const name = UNARY_NAMES[s.b % UNARY_NAMES.length];
        push({ op: "unary", x: xi, name }, refUnary(x, name));
        break;
      }
      case 1: {
        const name = BINARY_NAMES[s.b % BINARY_NAMES.length];
        if (s.c % 4 === 0) {
          const value = (s.c % 13 - 6) / 4;
          const left = s.b % 2 === 1;
          const k = new ND([], Float64Array.of(value));
          push(
            { op: "scalar", x: xi, name, value, left },
            left ? refBinary(k, x, name) : refBinary(x, k, name),
          );
          break;
        }
        let yi = refs.length - 1 - (s.c % Math.min(refs.length, 5));
        if (!broadcastShape(x.shape, refs[yi].shape)) {
          // An operand that broadcasts: x's shape with some axes 1, some leading axes dropped.
          const drop = pick(rank);
          yi = leaf(x.shape.slice(drop).map((d) => (pick(2) ? 1 : d)), s.c);
        }
        const bs = broadcastShape(x.shape, refs[yi].shape)!;
        if (sizeOf(bs) > MAX_SIZE) break;
        push({ op: "binary", x: xi, y: yi, name }, refBinary(x, refs[yi], name));
        break;
      }
      case 2: {
        if (s.c % 3 === 0 && rank > 1) {
          const start = s.b % rank;
          const shape = [...x.shape.slice(0, start), sizeOf(x.shape.slice(start))];
          push({ op: "flatten", x: xi, start }, refReshape(x, shape));
        } else {
          const shape = factorShape(x.size, pick);
          push({ op: "reshape", x: xi, shape }, refReshape(x, shape));
        }
        break;
      }
      case 3: {
        const free = x.shape.map((_, i) => i);
        const perm: number[] = [];
        while (free.length) perm.push(free.splice(pick(free.length), 1)[0]);
        push({ op: "transpose", x: xi, perm }, refTranspose(x, perm));
        break;
      }
      case 4: {
        const lead = s.c % 3 === 0 ? [] : [1 + pick(3)];
        const shape = [...lead, ...x.shape.map((d) => (d === 1 ? 1 + pick(4) : d))];
        if (sizeOf(shape) > MAX_SIZE) break;
        push({ op: "broadcast", x: xi, shape }, refBroadcast(x, shape));
        break;
      }
      case 5: {
        const sizes = x.shape.map((d) => d - pick(d));
        const starts = x.shape.map((d, i) => pick(d - sizes[i] + 1));
        push({ op: "slice", x: xi, starts, sizes }, refSlice(x, starts, sizes));
        break;
      }
      case 6:
      case 7: {
        // 7: a reduction of a reduction (merged into one kernel when nothing sits between).
        if (rank === 0) break;
        // (A mean is a sum with an epilogue: a reduction of it does not merge.)
        const names: ReduceName[] = s.kind === 7 ? ["sum", "max"] : ["sum", "max", "mean"];
        const name = names[s.b % names.length];
        // Kind 7 keeps two axes or more where it can, and its outer reduction takes a strict
        // subset of them: merging then has to order kept and reduced axes right.
        const axes = s.kind === 7
          ? someAxes(rank, Math.max(1, rank - 2), pick)
          : someAxes(rank, rank, pick);
        const keepdims = s.kind === 7 ? pick(4) === 0 : pick(2) === 1;
        push({ op: "reduce", x: xi, name, axes, keepdims }, refReduce(x, axes, name, keepdims));
        const y = refs[refs.length - 1];
        if (s.kind === 7 && y.shape.length > 0) {
          let yi = refs.length - 1;
          if (pick(3) === 0) {
            // An epilogue between the two (the inner reduction's result scaled).
            push(
              { op: "scalar", x: yi, name: "mul", value: 0.5, left: false },
              refBinary(y, new ND([], Float64Array.of(0.5)), "mul"),
            );
            yi++;
          }
          const z = refs[yi];
          const zr = z.shape.length;
          const axes2 = someAxes(zr, Math.max(1, zr - 1), pick);
          const kd = pick(2) === 1;
          const name2 = name === "max" ? "max" : "sum";
          push(
            { op: "reduce", x: yi, name: name2, axes: axes2, keepdims: kd },
            refReduce(z, axes2, name2, kd),
          );
        }
        break;
      }
      case 8: {
        // argmax of the latest value whose float32 evaluation is exact (a leaf at worst), so
        // that ties are ties on every backend and the first index must win.
        let ei = xi;
        while (ei > 0 && (!refs[ei].exact || refs[ei].shape.length === 0)) ei--;
        const e = refs[ei];
        if (!e.exact || e.shape.length === 0) break;
        const axis = s.b % e.shape.length;
        push({ op: "argmax", x: ei, axis }, refArgmax(e, axis));
        break;
      }
      case 9: {
        // x as [batch?, m, k] times a new operand [k, n], either read transposed, maybe as a
        // window of a larger leaf (an offset into its buffer).
        if (rank === 0) break;
        const k = x.shape[rank - 1];
        const batched = rank >= 3 && s.c % 2 === 0;
        const aShape = batched
          ? [x.shape[0], sizeOf(x.shape.slice(1, -1)), k]
          : [sizeOf(x.shape.slice(0, -1)), k];
        let ai = xi;
        if (rank !== aShape.length || x.shape.some((d, i) => d !== aShape[i])) {
          push({ op: "reshape", x: xi, shape: aShape }, refReshape(x, aShape));
          ai = refs.length - 1;
        }
        const transA = pick(2) === 1;
        if (transA) {
          const perm = batched ? [0, 2, 1] : [1, 0];
          push({ op: "transpose", x: ai, perm }, refTranspose(refs[ai], perm));
          ai = refs.length - 1;
        }
        const n = 1 + pick(5);
        const transB = pick(2) === 1;
        const bBatch = batched && pick(2) === 1 ? [aShape[0]] : [];
        const bShape = [...bBatch, ...(transB ? [n, k] : [k, n])];
        const extra = pick(3);
        let bi: number;
        if (extra && !bBatch.length) {
          const big = leaf([bShape[0] + extra, bShape[1]], s.c + 7);
          const starts = [pick(extra + 1), 0];
          push({ op: "slice", x: big, starts, sizes: bShape }, refSlice(refs[big], starts, bShape));
          bi = refs.length - 1;
        } else bi = leaf(bShape, s.c + 3);
        const aRef = transA ? refTranspose(refs[ai], batched ? [0, 2, 1] : [1, 0]) : refs[ai];
        const bRef = transB ? refTranspose(refs[bi], bBatch.length ? [0, 2, 1] : [1, 0]) : refs[bi];
        push({ op: "matmul", a: ai, b: bi, transA, transB }, refMatmul(aRef, bRef));
        // Sometimes the product less its own reduction (x - max(x) of logits): an epilogue of
        // the matmul that reads a reduction of the matmul.
        if (pick(3) === 0) broadcastBack(refs.length - 1, s.b, s.c);
        break;
      }
      case 10: {
        if (rank === 0) break;
        const axis = s.b % rank;
        const y = refs[refs.length - 1 - (s.c % Math.min(refs.length, 5))];
        const yi = refs.indexOf(y);
        const fits = y.shape.length === rank &&
          y.shape.every((d, i) => i === axis || d === x.shape[i]);
        const xs = fits ? [xi, yi] : [xi, xi];
        const r = refConcat(xs.map((i) => refs[i]), axis);
        if (r.size > MAX_SIZE) break;
        push({ op: "concat", xs, axis }, r);
        break;
      }
      case 11: {
        const before = x.shape.map(() => pick(2));
        const after = x.shape.map(() => pick(2));
        const r = refPad(x, before, after);
        if (r.size > MAX_SIZE) break;
        push({ op: "pad", x: xi, before, after }, r);
        break;
      }
      case 12: {
        push({ op: "read", x: xi, realizeOnly: s.b % 3 === 0 }, undefined);
        break;
      }
      case 13:
        // x combined with its reduction over some axes, broadcast back.
        if (rank > 0) broadcastBack(xi, s.b, s.c);
        break;
      case 14: {
        // A chain of views of views: transposed, flattened or reshaped, sliced, broadcast.
        let vi = xi;
        for (let k = 0; k < 2 + pick(3); k++) {
          const v = refs[vi];
          const vr = v.shape.length;
          const what = pick(4);
          if (what === 0 && vr > 1) {
            const free = v.shape.map((_, i) => i);
            const perm: number[] = [];
            while (free.length) perm.push(free.splice(pick(free.length), 1)[0]);
            push({ op: "transpose", x: vi, perm }, refTranspose(v, perm));
          } else if (what === 1 && vr > 1) {
            const start = pick(vr - 1);
            const shape = [...v.shape.slice(0, start), sizeOf(v.shape.slice(start))];
            push({ op: "flatten", x: vi, start }, refReshape(v, shape));
          } else if (what === 2) {
            const sizes = v.shape.map((d) => d - pick(d));
            const starts = v.shape.map((d, i) => pick(d - sizes[i] + 1));
            push({ op: "slice", x: vi, starts, sizes }, refSlice(v, starts, sizes));
          } else {
            const shape = factorShape(v.size, pick);
            push({ op: "reshape", x: vi, shape }, refReshape(v, shape));
          }
          vi = refs.length - 1;
        }
        break;
      }
      case 15: {
        // A diamond: a reduction h, a consumer fused into it (h / 2), a reduction of that, and
        // h itself read again by a routine (concat of both, flattened). Computed as one scope,
        // h must run once: its fused consumer is settled onto h's buffer first.
        if (rank === 0) break;
        const name: ReduceName = s.c % 2 ? "max" : "sum";
        const axes = someAxes(rank, Math.max(1, rank - 1), pick);
        push({ op: "reduce", x: xi, name, axes, keepdims: false }, refReduce(x, axes, name, false));
        const hi = refs.length - 1;
        const h = refs[hi];
        push(
          { op: "scalar", x: hi, name: "mul", value: 0.5, left: false },
          refBinary(h, new ND([], Float64Array.of(0.5)), "mul"),
        );
        const ci = refs.length - 1;
        const axes2 = h.shape.length ? someAxes(h.shape.length, h.shape.length, pick) : [];
        let ri = ci;
        if (axes2.length) {
          push(
            { op: "reduce", x: ci, name, axes: axes2, keepdims: false },
            refReduce(refs[ci], axes2, name, false),
          );
          ri = refs.length - 1;
        }
        const flat = (i: number) => {
          push({ op: "reshape", x: i, shape: [refs[i].size] }, refReshape(refs[i], [refs[i].size]));
          return refs.length - 1;
        };
        const xs = [flat(ri), flat(hi)];
        push({ op: "concat", xs, axis: 0 }, refConcat(xs.map((i) => refs[i]), 0));
        if (pick(2) === 0) {
          // Another consumer fused into h that nothing reads (a scope releases it), then more
          // work on the concat: h is still held by the concat, which settle() must see.
          const cat = refs.length - 1;
          push({ op: "unary", x: hi, name: "neg" }, refUnary(h, "neg"));
          push({ op: "unary", x: cat, name: "tanh" }, refUnary(refs[cat], "tanh"));
        }
        break;
      }
    }
  }
  return { ops, refs };
}

/** Builds the tensor of one resolved op over the values so far (undefined for reads). */
function apply(o: Op, vals: Tensor[], t: Target): Tensor | undefined {
  const v = (i: number) => vals[i];
  switch (o.op) {
    case "leaf":
      return tensor(o.data, o.shape, { backend: t.be, dtype: t.dtype });
    case "unary":
      return ops[o.name](v(o.x));
    case "binary":
      return ops[o.name](v(o.x), v(o.y));
    case "scalar":
      return o.left ? ops[o.name](o.value, v(o.x)) : ops[o.name](v(o.x), o.value);
    case "reshape":
      return ops.reshape(v(o.x), o.shape);
    case "flatten":
      return ops.flatten(v(o.x), o.start);
    case "transpose":
      return ops.transpose(v(o.x), o.perm);
    case "broadcast":
      return ops.broadcastTo(v(o.x), o.shape);
    case "slice":
      return ops.slice(v(o.x), o.starts, o.sizes);
    case "reduce":
      return ops[o.name](v(o.x), o.axes, o.keepdims);
    case "argmax":
      return ops.argmax(v(o.x), o.axis);
    case "matmul":
      return ops.matmul(v(o.a), v(o.b), { transA: o.transA, transB: o.transB });
    case "concat":
      return ops.concat(o.xs.map(v), o.axis);
    case "pad":
      return ops.pad(v(o.x), o.before, o.after);
    case "read":
      return undefined;
  }
}

/**
 * Runs resolved ops on a backend, the values held by their tensors: intermediates are read
 * (or realized) where the program says, then `readAtEnd` in creation order, then the final.
 */
async function runProgram(
  t: Target,
  program: Op[],
  refs: ND[],
  readAtEnd: number[],
): Promise<void> {
  const vals: Tensor[] = [];
  const read = async (i: number, what: string) => {
    check(await vals[i].data(), refs[i], t, what);
  };
  try {
    for (const o of program) {
      if (o.op === "read") {
        if (o.realizeOnly) vals[o.x].realize();
        else await read(o.x, `value ${o.x} read mid-program`);
      } else vals.push(apply(o, vals, t)!);
    }
    for (const i of readAtEnd) await read(i, `value ${i} read at the end`);
    await read(vals.length - 1, "the final value");
  } finally {
    // Tensors that are views of one another may be the same object: dispose each once.
    for (const x of new Set(vals)) x.dispose();
  }
}

/**
 * Runs the program as training code does: built in a scope that keeps only the final value
 * (every intermediate let go before anything runs), then read. Nothing may be computed twice.
 */
async function runScoped(t: Target, program: Op[], refs: ND[]): Promise<void> {
  const re0 = lazyStats.recomputed;
  const y = scope(() => {
    const vals: Tensor[] = [];
    for (const o of program) if (o.op !== "read") vals.push(apply(o, vals, t)!);
    return vals[vals.length - 1];
  });
  try {
    check(await y.data(), refs[refs.length - 1], t, "the final value (scoped)");
  } finally {
    y.dispose();
  }
  assert.equal(lazyStats.recomputed, re0, `${t.label}: something was computed twice`);
}

const stepArb = fc.record({
  // Kinds past 15 repeat the ones whose bugs need particular shapes (views of views, reductions
  // of reductions, reductions broadcast back, diamonds).
  kind: fc.nat(22).map((k) => (k <= 15 ? k : [14, 14, 7, 7, 13, 3, 15][k - 16])),
  a: fc.nat(40),
  b: fc.nat(200),
  c: fc.nat(200),
});
const leafArb = fc.record({
  dims: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }),
  seed: fc.nat(1000),
});
const programArb = fc.record({
  leaves: fc.array(leafArb, { minLength: 1, maxLength: 2 }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 8 }),
  reads: fc.nat(255),
});

property(
  "random lazy programs agree with an index-arithmetic reference",
  programArb,
  80,
  async (p) => {
    const { ops: program, refs } = resolve(p.leaves, p.steps);
    // Some values read again at the end, in creation order.
    const readAtEnd = refs.map((_, i) => i).filter((i) => (p.reads >> (i % 8)) & 1);
    for (const t of TARGETS) {
      await runProgram(t, program, refs, readAtEnd);
      await runScoped(t, program, refs);
    }
  },
);
