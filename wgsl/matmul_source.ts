/**
 * The WGSL of the product kernel (see matmul.ts for its design): the register-blocked body over
 * an R x C block per invocation, its aligned and unaligned loads, the epilogue in the stores or
 * in a loop after them, and the variant that runs several products in one dispatch, each under
 * its own names.
 *
 * @module
 */

import { groupedSource, type RoutinePart, routineSource, type Storage } from "./routine.ts";
import { LANES, PARAM_BYTES } from "./runtime.ts";
import { memoKernel } from "./source.ts";

/**
 * The work split of one product: each invocation computes an `r` x `c` block of the output, and a
 * workgroup of {@link LANES} invocations covers `wx` blocks along N times `wy` blocks along M.
 */
export interface MatmulTile {
  r: number;
  c: number;
  wx: number;
  wy: number;
}

/** Largest block side. */
export const MAX_BLOCK = 32;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const XYZW = ["x", "y", "z", "w"];

/**
 * What a product kernel's WGSL depends on besides its uniform fields: the operands' layouts,
 * the block, the epilogue's WGSL (its function, named as the kernel's {@link ProductNames} say)
 * and the variants below.
 */
export interface ProductVariant {
  transA: boolean;
  transB: boolean;
  vecOut: boolean;
  t: MatmulTile;
  epilogue: string;
  /** Operands as floats at any offset (vec4s gathered from four floats). */
  unaligned: boolean;
  /** The epilogue applied in a loop after the raw stores (see loopedEpilogue). */
  epilogueLoop: boolean;
  /** One more output row: B's sums over k. */
  sums: boolean;
  /**
   * WGSL of a function `pro<A|B><tag>(i, acc) -> f32` that computes the operand's element i
   * (kernel/backend.ts `Prologue`), or "" for an operand read from its buffer. An operand with
   * one is not bound, and is loaded as floats (the unaligned variant).
   */
  prologueA: string;
  prologueB: string;
}

/**
 * The module-scope names a product kernel uses: its parameter block, its operands and output,
 * and a tag on its helper functions. A kernel of several products (grouped into one dispatch)
 * gives each its own.
 */
export interface ProductNames {
  p: string;
  A: string;
  B: string;
  O: string;
  tag: string;
}

const SINGLE: ProductNames = { p: "p", A: "A", B: "B", O: "O", tag: "" };

/** The uniform fields of a product kernel, in order (see {@link ProductRun}). */
const PRODUCT_FIELDS = [
  ...["m", "n", "steps", "lda", "ldb", "strideA", "strideB", "batch0", "wx", "wy", "k"],
  ...["offA", "offB"],
];

/**
 * The constants a product's epilogue and prologues may read together: the room its parameter
 * block leaves after its fields and a group's two (routine.ts's `fieldsOf`), in floats.
 */
export const PRODUCT_CONSTS = (PARAM_BYTES - Math.ceil((PRODUCT_FIELDS.length + 2) / 4) * 16) / 4;

/**
 * WGSL of the product kernel. Operands are read as vec4 arrays, in vec4 units: A is
 * [batch?, m, lda] (or [batch?, k4, lda] with `transA`), B is [batch?, k4, ldb] (or
 * [batch?, n, ldb] with `transB`), K padded with zeros to k4 = 4 steps. Batch entries are
 * strideA / strideB apart (0 for a shared operand); z = workgroup z + batch0. The output is
 * [batch, m, n] floats, written as vec4s when n is a multiple of 4.
 */
export const productKernel = memoKernel("product", (v: ProductVariant) =>
  routineSource({
    ...productPart(v, SINGLE),
    storage: productStorage(v, SINGLE),
    entry: { kind: "workgroup", wg: LANES },
  }));

/** The storage buffers a product reads and writes, under its names. */
function productStorage(v: ProductVariant, N: ProductNames): Storage[] {
  const operand = v.unaligned ? "f32" : "vec4f";
  return [
    ...(v.prologueA ? [] : [{ name: N.A, type: operand } as const]),
    ...(v.prologueB ? [] : [{ name: N.B, type: operand } as const]),
    { name: N.O, type: v.vecOut ? "vec4f" : "f32", write: true },
  ];
}

/**
 * Several products of batch 1 in one kernel (one dispatch): part i is product i with its
 * names; `storage` binds the buffers the parts name (routine.ts's `groupedSource`).
 */
export const groupedKernel = memoKernel(
  "products",
  (parts: { v: ProductVariant; N: ProductNames }[], storage: Storage[]) =>
    groupedSource(parts.map(({ v, N }) => productPart(v, N)), storage, LANES),
);

/** The parameters, declarations and body of a product kernel under the names `N`. */
function productPart(v: ProductVariant, N: ProductNames): RoutinePart {
  const { transA, transB, vecOut, t, epilogue, unaligned, epilogueLoop, sums } = v;
  const { r: R, c: C } = t;
  const setup: string[] = [];
  const body: string[] = [];
  // With `sums`, A has one more row of ones (row m): the output's row m is B's sums over k.
  const rows = sums ? `(${N.p}.m + 1u)` : `${N.p}.m`;
  if (unaligned) {
    // Operands as floats at any offset and leading dimension: each vec4 is gathered from four
    // floats, zero past K and clamped into the matrix along M and N.
    body.push("let k0 = kq * 4u;");
    if (transA) {
      for (const q of range(R / 4)) {
        for (const d of range(4)) {
          body.push(
            `let a${d}_${q} = ${ones4(`rowA${N.tag}(k0 + ${d}u, r0 + ${4 * q}u, aOff)`, q)};`,
          );
        }
      }
    } else {
      for (const i of range(R)) {
        setup.push(`let ra${i} = aOff + min(r0 + ${i}u, ${N.p}.m - 1u) * ${N.p}.lda;`);
      }
      for (const i of range(R)) body.push(`let a${i} = ${ones(`alongA${N.tag}(ra${i}, k0)`, i)};`);
    }
    if (transB) {
      for (const j of range(C)) {
        setup.push(`let cb${j} = bOff + min(c0 + ${j}u, ${N.p}.n - 1u) * ${N.p}.ldb;`);
      }
      for (const j of range(C)) body.push(`let b${j} = alongB${N.tag}(cb${j}, k0);`);
    } else {
      for (const q of range(C / 4)) {
        for (const d of range(4)) {
          body.push(`let b${d}_${q} = rowB${N.tag}(k0 + ${d}u, c0 + ${4 * q}u, bOff);`);
        }
      }
    }
  } else if (transA) {
    // A^T stored [k4, m]: per K row, R/4 vec4s along M.
    for (const q of range(R / 4)) {
      setup.push(`let ra${q} = aOff + min(r0 / 4u + ${q}u, ${N.p}.lda - 1u);`);
    }
    body.push(`let ka = kq * 4u * ${N.p}.lda;`);
    for (const d of range(4)) {
      for (const q of range(R / 4)) {
        body.push(`let a${d}_${q} = ${ones4(`${N.A}[ra${q} + ka + ${d}u * ${N.p}.lda]`, q)};`);
      }
    }
  } else {
    // A stored [m, k4]: per row, one vec4 along K.
    for (const i of range(R)) {
      setup.push(`let ra${i} = aOff + min(r0 + ${i}u, ${N.p}.m - 1u) * ${N.p}.lda;`);
    }
    for (const i of range(R)) body.push(`let a${i} = ${ones(`${N.A}[ra${i} + kq]`, i)};`);
  }
  if (unaligned) {
    // loaded above
  } else if (transB) {
    // B^T stored [n, k4]: per column, one vec4 along K.
    for (const j of range(C)) {
      setup.push(`let cb${j} = bOff + min(c0 + ${j}u, ${N.p}.n - 1u) * ${N.p}.ldb;`);
    }
    for (const j of range(C)) body.push(`let b${j} = ${N.B}[cb${j} + kq];`);
  } else {
    // B stored [k4, n]: per K row, C/4 vec4s along N.
    for (const q of range(C / 4)) {
      setup.push(`let cb${q} = bOff + min(c0 / 4u + ${q}u, ${N.p}.ldb - 1u);`);
    }
    body.push(`let kb = kq * 4u * ${N.p}.ldb;`);
    for (const d of range(4)) {
      for (const q of range(C / 4)) {
        body.push(`let b${d}_${q} = ${N.B}[cb${q} + kb + ${d}u * ${N.p}.ldb];`);
      }
    }
  }
  // A[i, k + d] as a scalar; B[k + d, 4q..4q+3] as a vec4.
  const a = (i: number, d: number) =>
    transA ? `a${d}_${i >> 2}.${XYZW[i & 3]}` : `a${i}.${XYZW[d]}`;
  const b = (d: number, q: number) =>
    transB ? `vec4f(${range(4).map((j) => `b${4 * q + j}.${XYZW[d]}`).join(", ")})` : `b${d}_${q}`;
  for (const i of range(R)) {
    for (const q of range(C / 4)) {
      setup.push(`var acc${i}_${q} = vec4f();`);
      const sum = range(4).reduce(
        (s, d) => `fma(vec4f(${a(i, d)}), ${b(d, q)}, ${s})`,
        `acc${i}_${q}`,
      );
      body.push(`acc${i}_${q} = ${sum};`);
    }
  }
  const stores: string[] = [];
  for (const i of range(R)) {
    const row: string[] = [];
    for (const q of range(C / 4)) {
      const v = `acc${i}_${q}`;
      const at = `o + ${4 * q}u`;
      const value = epilogue && !epilogueLoop
        ? `vec4f(${range(4).map((j) => `epi${N.tag}(${at} + ${j}u, ${v}.${XYZW[j]})`).join(", ")})`
        : v;
      row.push(
        vecOut
          ? `if (c0 + ${4 * q}u < ${N.p}.n) { ${N.O}[o / 4u + ${q}u] = ${value}; }`
          : `put${N.tag}(${at}, c0 + ${4 * q}u, ${v});`,
      );
    }
    stores.push(
      `if (r0 + ${i}u < ${rows}) {\n    let o = base + (r0 + ${i}u) * ${N.p}.n + c0;\n    ${
        row.join("\n    ")
      }\n  }`,
    );
  }
  const put = /* wgsl */ `
fn put${N.tag}(o: u32, c: u32, v: vec4f) {
  for (var j = 0u; j < 4u; j++) {
    if (c + j < ${N.p}.n) { ${N.O}[o + j] = ${
    epilogue && !epilogueLoop ? `epi${N.tag}(o + j, v[j])` : "v[j]"
  }; }
  }
}`;
  return {
    params: PRODUCT_FIELDS,
    consts: true,
    decls: `${
      unaligned ? unalignedLoads(v, N) : ""
    }\n${v.prologueA}\n${v.prologueB}\n${epilogue}\n${vecOut ? "" : put}`,
    body: /* wgsl */ `let r0 = (wid.y * ${N.p}.wy + lid / ${N.p}.wx) * ${R}u;
  let c0 = (wid.x * ${N.p}.wx + lid % ${N.p}.wx) * ${C}u;
  let z = wid.z + ${N.p}.batch0;
  let aOff = z * ${N.p}.strideA + ${N.p}.offA;
  let bOff = z * ${N.p}.strideB + ${N.p}.offB;
  ${setup.join("\n  ")}
  for (var kq = 0u; kq < ${N.p}.steps; kq++) {
    ${body.join("\n    ")}
  }
  let base = z * ${rows} * ${N.p}.n;
  ${stores.join("\n  ")}
  ${epilogue && epilogueLoop ? loopedEpilogue(R, C, vecOut, rows, N) : ""}`,
  };

  /** A's row r0 + i loaded along K (four values of one row), all ones in the sums row. */
  function ones(load: string, i: number): string {
    return sums ? `select(${load}, vec4f(1.0), r0 + ${i}u == ${N.p}.m)` : load;
  }
  /** A's rows r0 + 4q ... r0 + 4q + 3 at one k, with a one in the sums row's lane. */
  function ones4(load: string, q: number): string {
    const lanes = `vec4u(r0 + ${4 * q}u) + vec4u(0u, 1u, 2u, 3u) == vec4u(${N.p}.m)`;
    return sums ? `select(${load}, vec4f(1.0), ${lanes})` : load;
  }
}

/**
 * The epilogue over an invocation's block, after its raw stores: the block is read back and
 * rewritten in a loop, so that \`epi\` has one call site (four with vec4 output) instead of one
 * per element of the unrolled stores, which made shader compilation explode for large blocks and
 * large epilogues (W2's H v: minutes). Used when block size times epilogue size is large
 * ({@link EPILOGUE_INLINE}); small ones stay in the stores (no read-back).
 * Reading back what the same invocation stored is ordered (program order, same invocation).
 */
function loopedEpilogue(
  R: number,
  C: number,
  vecOut: boolean,
  rows: string,
  N: ProductNames,
): string {
  const inner = vecOut
    ? `for (var q = 0u; q < ${C / 4}u; q++) {
      if (c0 + 4u * q >= ${N.p}.n) { break; }
      let at = o + 4u * q;
      let v = ${N.O}[at / 4u];
      ${N.O}[at / 4u] = vec4f(epi${N.tag}(at, v.x), epi${N.tag}(at + 1u, v.y), epi${N.tag}(at + 2u, v.z), epi${N.tag}(at + 3u, v.w));
    }`
    : `for (var j = 0u; j < ${C}u; j++) {
      if (c0 + j >= ${N.p}.n) { break; }
      ${N.O}[o + j] = epi${N.tag}(o + j, ${N.O}[o + j]);
    }`;
  return `for (var i = 0u; i < ${R}u; i++) {
    if (r0 + i >= ${rows}) { break; }
    let o = base + (r0 + i) * ${N.p}.n + c0;
    ${inner}
  }`;
}

/**
 * Operand \`x\`'s element at \`at\` (a WGSL index expression): a load from its buffer, or a call
 * of its prologue.
 */
function loadOf(x: "A" | "B", v: ProductVariant, N: ProductNames, at: string): string {
  return v[`prologue${x}`] ? `pro${x}${N.tag}(${at}, 0.0)` : `${N[x]}[${at}]`;
}

/** Four floats of operand \`x\` along K from \`at\` (a row of A, or a column of B^T), zero past K. */
function alongK(x: "A" | "B", v: ProductVariant, N: ProductNames): string {
  const terms = range(4).map((d) => {
    const k = d ? `k0 + ${d}u` : "k0";
    // Past K the load (or a prologue's loads) may fall past a buffer: WGSL's robust access
    // keeps it in bounds, and the select drops its value.
    return `select(0.0, ${loadOf(x, v, N, `at + ${k}`)}, ${k} < ${N.p}.k)`;
  });
  return `fn along${x}${N.tag}(at: u32, k0: u32) -> vec4f {\n  return vec4f(${
    terms.join(", ")
  });\n}`;
}

/**
 * Four neighbours of row kk of operand \`x\` stored [k, dim] (A^T, or B), zero past K and
 * clamped to the matrix along \`dim\`.
 */
function rowOf(x: "A" | "B", dim: string, v: ProductVariant, N: ProductNames): string {
  const terms = range(4).map((j) => loadOf(x, v, N, `row + min(c${j ? ` + ${j}u` : ""}, last)`));
  return `fn row${x}${N.tag}(kk: u32, c: u32, off: u32) -> vec4f {
  if (kk >= ${N.p}.k) { return vec4f(); }
  let row = off + kk * ${N.p}.ld${x.toLowerCase()};
  let last = ${N.p}.${dim} - 1u;
  return vec4f(${terms.join(", ")});
}`;
}

/** The loads of the unaligned variant (see productPart). */
function unalignedLoads(v: ProductVariant, N: ProductNames): string {
  const xs = ["A", "B"] as const;
  return [...xs.map((x) => alongK(x, v, N)), rowOf("A", "m", v, N), rowOf("B", "n", v, N)]
    .join("\n");
}
