/**
 * The convolution kernels, every one from one template ({@link convSource}): a register-blocked
 * implicit GEMM. Each invocation owns a block of accumulators (vec4 over 4 output channels, or
 * f32), and each accumulator is a sum of products of a scalar operand and a vector operand,
 * walked by a loop over the reduction. A kernel says only its index math: where an invocation's
 * block lies, which loads feed which accumulator, and where each lane is stored. The template
 * emits the head (routine.ts), the accumulators, each load once, just before the first product
 * that needs it (a patch value shared by several taps and outputs is loaded once), the FMA
 * chains in term order, and the stores. No im2col buffer is ever materialized: on llvmpipe its
 * stores alone would cost more than the products (conv_plan.ts has the figures).
 *
 * - {@link directSource}: the forward pass (M = output pixels, N = filters, K = c kh kw): a
 *   TH x TW tile of output pixels of one image times CF x V filters; per input channel, the
 *   input patch (clamped and masked for the zero padding) and the weights as vectors from a
 *   transposed copy [c, kh, kw, f] padded to whole blocks. With stride 1 it is also the input
 *   gradient: a convolution of dy with the flipped kernel (`flip`) and padding kh - 1 - ph.
 *   With `unrollKy` false the kernel rows are a runtime loop (smaller shaders for large kernels).
 * - {@link gatherSource}: the input gradient for any stride: TW input pixels of a row times 4 CF
 *   channels; per filter, each tap tests which output reads the pixel (none: 0).
 * - {@link weightGradSource}: dy^T im2col(x) with K = n ho wo: CC channels x 4 FQ filters x all
 *   kh kw taps per invocation, walking a chunk of K in steps of an RH x RW output tile of one
 *   image; dy as vec4s over filters when transposed to [n, ho, wo, f] first (`dyVec`).
 *
 * @module
 */

import type { ConvTile, GatherTile, WeightGradPlan } from "./conv_plan.ts";
import { type ParamField, routineSource, type Storage } from "./routine.ts";
import { LANES } from "./runtime.ts";
import { memoKernel } from "./source.ts";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** A reduction loop of a template kernel: its head, and the statements that end each round. */
interface Loop {
  readonly head: string;
  readonly advance?: readonly string[];
}

/** One kernel of the template; see the module documentation. */
interface ConvKernel {
  /** The parameter fields; `count` (invocations) and `nx` (grid row) follow them. */
  readonly params: readonly ParamField[];
  /** Whether an epilogue's constants follow (see routine.ts). */
  readonly consts?: boolean;
  readonly storage: readonly Storage[];
  readonly decls?: string;
  /** Statements before the loops: the block's place (from the invocation `g`), index math. */
  readonly setup: readonly string[];
  /** The loops, outermost first. */
  readonly loops: readonly Loop[];
  /** Statements that open each round of the innermost loop (its index math). */
  readonly step?: readonly string[];
  /** The width of the accumulators and of the vector operands. */
  readonly v: 1 | 4;
  /** The accumulators, each with its terms [scalar operand, vector operand] in summing order. */
  readonly accs: readonly { readonly name: string; readonly terms: readonly string[][] }[];
  /** Every operand's load by name: a WGSL expression. */
  readonly loads: ReadonlyMap<string, string>;
  /** Statements after the loops: the stores (`live` is false past the last invocation). */
  readonly stores: readonly string[];
}

/** The WGSL of a kernel of the template. */
function convSource(k: ConvKernel): string {
  const vec = (s: string) => (k.v === 4 ? `vec4f(${s})` : s);
  const loaded = new Set<string>();
  const body: string[] = [...(k.step ?? [])];
  for (const { name, terms } of k.accs) {
    for (const operand of terms.flat()) {
      if (loaded.has(operand)) continue;
      loaded.add(operand);
      body.push(`let ${operand} = ${k.loads.get(operand)};`);
    }
    const sum = terms.reduce((acc, [s, v]) => `fma(${vec(s)}, ${v}, ${acc})`, name);
    body.push(`${name} = ${sum};`);
  }
  let loops = body.join("\n");
  for (const loop of [...k.loops].reverse()) {
    loops = `${loop.head}\n${loops}\n${(loop.advance ?? []).join("\n")}\n}`;
  }
  const type = k.v === 4 ? "vec4f" : "f32";
  return routineSource({
    params: [...k.params, "count", "nx"],
    consts: k.consts,
    storage: k.storage,
    decls: k.decls,
    entry: { kind: "blocked", lanes: LANES },
    body: [...k.setup, ...k.accs.map((a) => `var ${a.name} = ${type}();`), loops, ...k.stores]
      .join("\n"),
  });
}

/**
 * Rows (`y`) or columns (`x`) of an input patch: `let iy{i} = {base(i)}`, its clamped offset
 * `ry{i}` (times the row length `p.w` for rows) and whether it lies inside (`vy{i}`).
 */
function patchAxis(axis: "y" | "x", count: number, base: (i: number) => string): string[] {
  const [size, clampTo, scale] = axis === "y" ? ["p.h", "ih", " * p.w"] : ["p.w", "iw", ""];
  return range(count).map((i) =>
    `let i${axis}${i} = ${base(i)}; ` +
    `let r${axis}${i} = u32(clamp(i${axis}${i}, 0, ${clampTo} - 1))${scale}; ` +
    `let v${axis}${i} = u32(i${axis}${i}) < ${size};`
  );
}

/** Statements naming the digits of the mixed-radix number `g` (fastest first; the last has none). */
function digits(g: string, names: readonly (readonly [string, string?])[]): string {
  let div = "";
  return names.map(([name, radix]) => {
    const q = div ? `(${g} / (${div}))` : g;
    div = div && radix ? `${div} * ${radix}` : radix ?? "";
    return `let ${name} = ${radix ? `${q} % ${radix}` : q};`;
  }).join(" ");
}

/** A signed offset in WGSL: ` + 2` or ` - 2` (nothing for 0). */
const plus = (k: number) => (k > 0 ? ` + ${k}` : k < 0 ? ` - ${-k}` : "");

/**
 * The direct convolution with kernel kh x kw, strides sh, sw and tile `t`; with `flip`, the
 * kernel read flipped (the input gradient at stride 1); `epilogue` the declarations and `epi`
 * function of an epilogue (codegen.ts's epilogueSource), applied after the raw stores in a loop
 * over the tile: one call site of `epi`, so that compile time does not grow with the tile.
 */
export const directSource = memoKernel(
  "direct",
  (
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    t: ConvTile,
    flip: boolean,
    epilogue: string,
  ) => {
    const { th: TH, tw: TW, cf: CF, v: V, unrollKy } = t;
    const loads = new Map<string, string>();
    const rows = unrollKy ? (TH - 1) * sh + kh : TH;
    const rowOf = (py: number, ky: number) => (unrollKy ? py * sh + ky : py);
    const rowLines = patchAxis("y", rows, (i) => `iyB + ${unrollKy ? i : `${i * sh} + i32(ky)`}`);
    for (const i of range(rows)) {
      for (const j of range((TW - 1) * sw + kw)) {
        loads.set(`x${i}_${j}`, `select(0.0, X[xb + ry${i} + rx${j}], vy${i} && vx${j})`);
      }
    }
    // Weights by tap (unrolled rows) or by column of row `wk` (runtime rows); flipped: read
    // from the far corner.
    const tap = (ky: number, kx: number) =>
      unrollKy ? (flip ? (kh - ky) * kw - 1 - kx : ky * kw + kx) : flip ? kw - 1 - kx : kx;
    const accs = [];
    for (const py of range(TH)) {
      for (const px of range(TW)) {
        for (const q of range(CF)) {
          const terms = [];
          for (const ky of range(unrollKy ? kh : 1)) {
            for (const kx of range(kw)) {
              const w = `w${tap(ky, kx)}_${q}`;
              loads.set(w, `W[${unrollKy ? "wb" : "wk"} + ${tap(ky, kx)}u * p.ld + ${q}u]`);
              terms.push([`x${rowOf(py, ky)}_${px * sw + kx}`, w]);
            }
          }
          accs.push({ name: `a${py}_${px}_${q}`, terms });
        }
      }
    }
    const stores = [];
    for (const py of range(TH)) {
      for (const px of range(TW)) {
        const lanes = range(CF * V).map((k) => {
          const acc = `a${py}_${px}_${Math.floor(k / V)}${V === 4 ? `[${k % V}]` : ""}`;
          return `if (f0 + ${k}u < p.cout) { Y[o + ${k}u * pl] = ${acc}; }`;
        });
        stores.push(
          `if (live && oy0 + ${py}u < p.ho && ox0 + ${px}u < p.wo) {`,
          `let o = ob + (oy0 + ${py}u) * p.wo + ox0 + ${px}u;`,
          ...lanes,
          "}",
        );
      }
    }
    if (epilogue) {
      stores.push(`for (var py = 0u; py < ${TH}u; py++) {
  for (var px = 0u; px < ${TW}u; px++) {
    if (!live || oy0 + py >= p.ho || ox0 + px >= p.wo) { continue; }
    let o = ob + (oy0 + py) * p.wo + ox0 + px;
    for (var k = 0u; k < ${CF * V}u; k++) {
      if (f0 + k >= p.cout) { break; }
      let at = o + k * pl;
      Y[at] = epi(at, Y[at]);
    }
  }
}`);
    }
    const kyRow = flip ? `(${kh - 1}u - ky)` : "ky";
    return convSource({
      params: [
        ...["cin", "h", "w", "cout", "ho", "wo", ["padY", "i32"], ["padX", "i32"]] as const,
        ...["tilesX", "tilesY", "fBlocks", "ld"],
      ],
      consts: epilogue !== "",
      storage: [
        { name: "X" },
        { name: "W", type: V === 4 ? "vec4f" : "f32" },
        { name: "Y", write: true },
      ],
      decls: epilogue,
      setup: [
        digits("g", [["fb", "p.fBlocks"], ["tx", "p.tilesX"], ["ty", "p.tilesY"], ["n"]]),
        "let ih = i32(p.h);",
        "let iw = i32(p.w);",
        `let oy0 = ty * ${TH}u;`,
        `let ox0 = tx * ${TW}u;`,
        `let iyB = i32(oy0 * ${sh}u) - p.padY;`,
        `let ixB = i32(ox0 * ${sw}u) - p.padX;`,
        ...(unrollKy ? rowLines : []),
        ...patchAxis("x", (TW - 1) * sw + kw, (j) => `ixB${plus(j)}`),
        "let plane = p.h * p.w;",
        "var xb = n * p.cin * plane;",
        `var wb = fb * ${CF}u;`,
      ],
      loops: [
        {
          head: "for (var c = 0u; c < p.cin; c++) {",
          advance: ["xb += plane;", `wb += ${kh * kw}u * p.ld;`],
        },
        ...(unrollKy ? [] : [{ head: `for (var ky = 0u; ky < ${kh}u; ky++) {` }]),
      ],
      step: unrollKy ? [] : [...rowLines, `let wk = wb + ${kyRow} * ${kw}u * p.ld;`],
      v: V,
      accs,
      loads,
      stores: [
        `let f0 = fb * ${CF * V}u;`,
        "let pl = p.ho * p.wo;",
        "let ob = (n * p.cout + f0) * pl;",
        ...stores,
      ],
    });
  },
);

/**
 * The input gradient for any stride, gathered: dx[n, c, iy, ix] = sum over f, ky, kx of
 * dy[n, f, oy, ox] w[f, c, ky, kx] where oy sh = iy + ph - ky and ox sw = ix + pw - kx. Weights
 * are [f, kh, kw, cPad]. Pixel px's tap kx reads the column that pixel px + 1's tap kx + 1 reads,
 * so the dy loads go by px - kx.
 */
export const gatherSource = memoKernel("gather", (kh: number, kw: number, t: GatherTile) => {
  const { tw: TW, cf: CF } = t;
  const loads = new Map<string, string>();
  const setup = [
    digits("g", [["cb", "p.cBlocks"], ["tx", "p.tilesX"], ["iy", "p.h"], ["n"]]),
    `let ix0 = tx * ${TW}u;`,
  ];
  for (const ky of range(kh)) {
    setup.push(
      `let ty${ky} = i32(iy) + p.ph${plus(-ky)}; ` +
        `let vy${ky} = ty${ky} >= 0 && u32(ty${ky}) % p.sh == 0u && u32(ty${ky}) / p.sh < p.ho; ` +
        `let ry${ky} = min(u32(max(ty${ky}, 0)) / p.sh, p.ho - 1u) * p.wo;`,
    );
  }
  // Column d reads for pixel px and tap kx with px - kx = d - (kw - 1).
  for (const d of range(TW + kw - 1)) {
    setup.push(
      `let tx${d} = i32(ix0) + p.pw${plus(d - kw + 1)}; ` +
        `let vx${d} = tx${d} >= 0 && u32(tx${d}) % p.sw == 0u && u32(tx${d}) / p.sw < p.wo; ` +
        `let rx${d} = min(u32(max(tx${d}, 0)) / p.sw, p.wo - 1u);`,
    );
    for (const ky of range(kh)) {
      loads.set(`d${ky}_${d}`, `select(0.0, DY[db + ry${ky} + rx${d}], vy${ky} && vx${d})`);
    }
  }
  const accs = [];
  const stores = [];
  for (const px of range(TW)) {
    for (const q of range(CF)) {
      const terms = [];
      for (const ky of range(kh)) {
        for (const kx of range(kw)) {
          loads.set(`w${ky}_${kx}_${q}`, `W[wb + ${ky * kw + kx}u * p.ld + ${q}u]`);
          terms.push([`d${ky}_${px - kx + kw - 1}`, `w${ky}_${kx}_${q}`]);
        }
      }
      accs.push({ name: `a${px}_${q}`, terms });
    }
    stores.push(
      `if (live && ix0 + ${px}u < p.w) {`,
      `let o = ob + iy * p.w + ix0 + ${px}u;`,
      ...range(CF * 4).map((k) =>
        `if (c0 + ${k}u < p.c) { DX[o + ${k}u * plane] = a${px}_${k >> 2}[${k & 3}]; }`
      ),
      "}",
    );
  }
  return convSource({
    params: [
      ...["c", "h", "w", "f", "ho", "wo", "sh", "sw", ["ph", "i32"], ["pw", "i32"]] as const,
      ...["tilesX", "cBlocks", "ld"],
    ],
    storage: [{ name: "DY" }, { name: "W", type: "vec4f" }, { name: "DX", write: true }],
    setup: [...setup, "let pl = p.ho * p.wo;", "var db = n * p.f * pl;", `var wb = cb * ${CF}u;`],
    loops: [
      {
        head: "for (var f = 0u; f < p.f; f++) {",
        advance: ["db += pl;", `wb += ${kh * kw}u * p.ld;`],
      },
    ],
    v: 4,
    accs,
    loads,
    stores: [
      `let c0 = cb * ${CF * 4}u;`,
      "let plane = p.h * p.w;",
      "let ob = (n * p.c + c0) * plane;",
      ...stores,
    ],
  });
});

/** The partial weight gradients of one chunk of the reduction per invocation. */
export const weightGradSource = memoKernel(
  "weightGrad",
  (kh: number, kw: number, sh: number, sw: number, t: WeightGradPlan, sums = false) => {
    const { rh: RH, rw: RW, cc: CC, fq: FQ, dyVec } = t;
    const loads = new Map<string, string>();
    // Channel and filter offsets, clamped into range (the extra ones are dropped at the store).
    const setup = range(CC).map((cc) => `let co${cc} = min(c0 + ${cc}u, p.c - 1u) * plane;`);
    if (!dyVec) {
      setup.push(...range(FQ * 4).map((k) => `let fo${k} = min(f0 + ${k}u, p.f - 1u) * pl;`));
    } else {
      setup.push(...range(FQ).map((q) => `let fv${q} = min(fb * ${FQ}u + ${q}u, p.f4 - 1u);`));
    }
    const step = [
      ...range(RH).map((py) =>
        `let yy${py} = oy0 + ${py}u; let my${py} = valid && yy${py} < p.ho; ` +
        `let dr${py} = min(yy${py}, p.ho - 1u);`
      ),
      ...range(RW).map((px) =>
        `let xx${px} = ox0 + ${px}u; let mx${px} = xx${px} < p.wo; ` +
        `let dc${px} = min(xx${px}, p.wo - 1u);`
      ),
      ...patchAxis("y", (RH - 1) * sh + kh, (i) => `i32(oy0 * ${sh}u) - p.padY${plus(i)}`),
      ...patchAxis("x", (RW - 1) * sw + kw, (j) => `i32(ox0 * ${sw}u) - p.padX${plus(j)}`),
    ];
    for (const q of range(FQ)) {
      for (const py of range(RH)) {
        for (const px of range(RW)) {
          const at = `dr${py} * p.wo + dc${px}`;
          const v = dyVec
            ? `DY[((n * p.ho + dr${py}) * p.wo + dc${px}) * p.f4 + fv${q}]`
            : `vec4f(${range(4).map((j) => `DY[db + fo${q * 4 + j} + ${at}]`).join(", ")})`;
          loads.set(`d${q}_${py}_${px}`, `select(vec4f(), ${v}, my${py} && mx${px})`);
        }
      }
    }
    const accs = [];
    const stores = [];
    for (const cc of range(CC)) {
      for (const ky of range(kh)) {
        for (const kx of range(kw)) {
          for (const q of range(FQ)) {
            const terms = [];
            for (const py of range(RH)) {
              for (const px of range(RW)) {
                const [i, j] = [py * sh + ky, px * sw + kx];
                loads.set(
                  `x${cc}_${i}_${j}`,
                  `select(0.0, X[xb + co${cc} + ry${i} + rx${j}], vy${i} && vx${j})`,
                );
                terms.push([`x${cc}_${i}_${j}`, `d${q}_${py}_${px}`]);
              }
            }
            accs.push({ name: `a${cc}_${ky}_${kx}_${q}`, terms });
          }
        }
      }
      for (const k of range(FQ * 4)) {
        stores.push(
          `if (live && c0 + ${cc}u < p.c && f0 + ${k}u < p.f) {`,
          `let o = ob + ((f0 + ${k}u) * p.c + c0 + ${cc}u) * ${kh * kw}u;`,
          ...range(kh * kw).map((tap) =>
            `O[o + ${tap}u] = a${cc}_${Math.floor(tap / kw)}_${tap % kw}_${k >> 2}[${k & 3}];`
          ),
          "}",
        );
      }
    }
    // With `sums`, the first channel block also sums dy per filter: the f values after the
    // weights (of its chunk) are the bias gradient.
    const weights = `p.f * p.c * ${kh * kw}u`;
    if (sums) {
      loads.set("one", "1.0");
      for (const q of range(FQ)) {
        const terms = range(RH).flatMap((py) =>
          range(RW).map((px) => ["one", `d${q}_${py}_${px}`])
        );
        accs.push({ name: `b${q}`, terms });
      }
      for (const k of range(FQ * 4)) {
        stores.push(
          `if (live && cb == 0u && f0 + ${k}u < p.f) {`,
          `O[ob + ${weights} + f0 + ${k}u] = b${k >> 2}[${k & 3}];`,
          "}",
        );
      }
    }
    const chunkSize = sums ? `(${weights} + p.f)` : weights;
    return convSource({
      params: [
        ...["c", "h", "w", "f", "ho", "wo", ["padY", "i32"], ["padX", "i32"]] as const,
        ...["tilesX", "tilesY", "fBlocks", "cBlocks", "steps", "perChunk", "f4"],
      ],
      storage: [
        { name: "X" },
        { name: "DY", type: dyVec ? "vec4f" : "f32" },
        { name: "O", write: true },
      ],
      setup: [
        digits("g", [["fb", "p.fBlocks"], ["cb", "p.cBlocks"], ["chunk"]]),
        `let f0 = fb * ${FQ * 4}u;`,
        `let c0 = cb * ${CC}u;`,
        "let ih = i32(p.h);",
        "let iw = i32(p.w);",
        "let plane = p.h * p.w;",
        "let pl = p.ho * p.wo;",
        ...setup,
      ],
      // Every chunk has perChunk steps; steps past the end read clamped data with dy masked to 0.
      loops: [{ head: "for (var i = 0u; i < p.perChunk; i++) {" }],
      step: [
        "let s0 = chunk * p.perChunk + i;",
        "let valid = s0 < p.steps;",
        "let s = min(s0, p.steps - 1u);",
        digits("s", [["tx", "p.tilesX"], ["ty", "p.tilesY"], ["n"]]),
        `let oy0 = ty * ${RH}u;`,
        `let ox0 = tx * ${RW}u;`,
        "let xb = n * p.c * plane;",
        ...(dyVec ? [] : ["let db = n * p.f * pl;"]),
        ...step,
      ],
      v: 4,
      accs,
      loads,
      stores: [`let ob = chunk * ${chunkSize};`, ...stores],
    });
  },
);
