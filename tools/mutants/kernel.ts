/**
 * Mutants of the kernel layer and its lowerings (the lazy graph's are in lazy.ts beside this
 * file): record and replay (kernel/record.ts), collapse, reshape strides, split reductions and kernel structures
 * (kernel/ir.ts), the structural kernel cache (kernel/cache.ts), the compiled CPU loops
 * (cpu/compile.ts), the native routines and their caches (cpu/native.ts, cpu/dnnl.ts), the
 * WebAssembly kernels, math and arena (wasm/) and the WebGPU grid, reductions, pooling and
 * convolution template (wgsl/). Caught by the generated cases of
 * tests/property_lazy_programs_test.ts, property_routines_test.ts, property_grid_test.ts and
 * wgsl_routines_test.ts, by tests/dnnl_test.ts, tests/kernel_cache_test.ts and
 * tests/wasm*_test.ts against references written in the tests, and float64's bits on both
 * native paths by tests/native_paths_test.ts.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const PROP = [
  "tests/property_lazy_programs_test.ts",
  "tests/property_routines_test.ts",
  "tests/property_grid_test.ts",
];
const CACHE = "tests/kernel_cache_test.ts";
const WASM = [
  "tests/wasm_test.ts",
  "tests/wasm_kernels_test.ts",
  "tests/wasm_arena_test.ts",
  ...PROP,
];
const REPLAY = ["tests/replay_test.ts"];
const PATHS = ["tests/native_paths_test.ts"];
const PREPARED = ["tests/replay_prepared_test.ts"];
const ROUTINES = ["tests/wgsl_routines_test.ts"];
const GATHER = ["tests/pool_gather_test.ts"];

/** The mutants of the kernel layer and backends (tagged, so `--only "[kernel]"` runs them). */
export const MUTANTS: Mutant[] = ([
  // --- kernel/record.ts, autodiff/replay.ts ----------------------------------------------------
  {
    file: "kernel/record.ts",
    find: "if (s >= n + c && !outs.includes(s)) steps[i].free.push(s);",
    replace: "if (s >= n && !outs.includes(s)) steps[i].free.push(s);",
    what:
      "a replay frees the recording's constants after their last use (the next replay reads freed memory)",
    tests: REPLAY,
  },
  {
    file: "kernel/record.ts",
    find: "      for (const s of st.free) be.release(slots[s]!);\n",
    replace: "",
    what: "a replay keeps its intermediates (every replay leaks them)",
    tests: REPLAY,
  },
  {
    file: "kernel/record.ts",
    find: "    this.#slot.set(out, o);\n",
    replace: "",
    what: "a recorded launch's result is not known as one (later launches read it as a constant)",
    tests: REPLAY,
  },
  {
    file: "kernel/record.ts",
    find: "const ok = outSlots.every((s, i) => s >= this.#inputs && outSlots.indexOf(s) === i);",
    replace: "const ok = true;",
    what: "a function whose results do not all depend on its inputs is recorded anyway",
    tests: REPLAY,
  },
  {
    file: "autodiff/replay.ts",
    find: 'return `${i}@${w.offset}:${x.shape.join("x")}:${x.dtype}`;',
    replace: 'return `${i}:${x.shape.join("x")}:${x.dtype}`;',
    what: "inputs at other offsets in their buffer than recorded are replayed",
    tests: REPLAY,
  },
  {
    file: "kernel/record.ts",
    find: "if (!ins.some((x) => (this.#slot.get(x.buffer) ?? -1) >= 0)) return;",
    replace: "if (!ins.some((x) => this.#slot.has(x.buffer))) return;",
    what: "a launch that reads only the recording's constants is recorded (rerun at every replay)",
    tests: PREPARED,
  },
  {
    file: "cpu/blas.ts",
    find: "for (let t = 0; t < batch; t++) {",
    replace: "for (let t = 0; t < 1; t++) {",
    what: "the native batched product computes its first matrix only",
    tests: PROP,
  },
  {
    file: "cpu/native_replay.ts",
    find: "sumsCall.run([y.ptr], raw.ptr + m * n * bytes);",
    replace: "sumsCall.run([y.ptr], raw.ptr);",
    what: "a prepared product writes its sums row over its first row",
    tests: PREPARED,
  },
  {
    file: "cpu/native_replay.ts",
    find: "for (let j = 0; j < calls.length; j++)",
    replace: "for (let j = 0; j < 1; j++)",
    what: "a prepared kernel of several outputs computes its first output only",
    tests: PREPARED,
  },
  // --- kernel/ir.ts --------------------------------------------------------------------------
  {
    file: "kernel/ir.ts",
    find: "for (let a = i; a < i2 - 1; a++) {",
    replace: "for (let a = i; a < i2 - 2; a++) {",
    what: "reshape merges dimensions without checking the last pair is contiguous",
    tests: PROP,
  },
  {
    file: "kernel/ir.ts",
    find: "groups.map((g) => strides[base + g[g.length - 1]])",
    replace: "groups.map((g) => strides[base + g[0]])",
    what: "collapse gives a merged group the stride of its outer dimension, not its inner one",
    tests: PROP,
  },
  {
    file: "kernel/ir.ts",
    find: "st[rank] * (r0 / s), st[rank]",
    replace: "st[rank] * s, st[rank]",
    what: "splitReduction steps between chunks by the number of chunks, not the chunk length",
    tests: PROP,
  },
  {
    file: "kernel/ir.ts",
    find: "        list(e.strides);\n        tape[n++] = e.offset;\n",
    replace: "        list(e.strides);\n",
    what: "the kernel structure leaves out the offsets of loads (compiled kernels shared wrongly)",
    tests: [...PROP, CACHE],
  },
  {
    file: "kernel/ir.ts",
    find: "tape[n++] = DTYPE_CODE[dtype];",
    replace: "tape[n++] = 0;",
    what: "the kernel structure leaves out the dtype (a float32 kernel serves a float64 run)",
    tests: [CACHE],
  },
  {
    file: "kernel/ir.ts",
    find: "        tape[n++] = DTYPE_CODE[e.to];\n",
    replace: "",
    what: "the kernel structure leaves out the type a cast rounds to",
    tests: [CACHE],
  },
  {
    file: "kernel/cache.ts",
    find: "if (sameTape(e.tape, tape, n)) return",
    replace: "if (e.tape.length === n) return",
    what: "a cache lookup trusts the hash and the tape's length instead of comparing every number",
    tests: [CACHE],
  },
  // --- cpu/compile.ts ------------------------------------------------------------------------
  {
    file: "cpu/compile.ts",
    find: "${v} * ${l.strides[base + d]};",
    replace: "${v} * ${l.strides[d]};",
    what: "compiled loops step reduced dimensions by the output dimensions' strides",
    tests: PROP,
  },
  {
    file: "cpu/compile.ts",
    find: "(${a} === ${a} && (v > ${a} || v !== v))",
    replace: "(${a} === ${a} && (v >= ${a} || v !== v))",
    what: "compiled max/argmax keep the last maximum at ties instead of the first",
    tests: PROP,
  },
  // --- the index leaf and the max-pool gather (kernel/ir.ts, lowerings, wgsl/pool.ts) ----------
  {
    file: "kernel/ir.ts",
    find: "        tape[n++] = e.offset;\n        list(e.strides);\n",
    replace: "        list(e.strides);\n",
    what: "an index leaf's offset is left out of the kernel structure (index leaf)",
    tests: [CACHE],
  },
  {
    file: "kernel/ir.ts",
    find: 'e.k === "load" || e.k === "index";',
    replace: 'e.k === "load";',
    what: "collapse merges dimensions an index leaf does not step through as one (index leaf)",
    tests: GATHER,
  },
  {
    file: "cpu/compile.ts",
    find: "return `p${ids.get(keyOf(e))!}_${level}`;",
    replace: "return `p${ids.get(keyOf(e))!}_0`;",
    what: "the compiled loops read an index leaf before its loops advance it (index leaf)",
    tests: GATHER,
  },
  {
    file: "wgsl/codegen.ts",
    find: 'return `f32(${[...terms, `(${l.offset})`].join(" + ")})`;',
    replace: 'return `f32(${[...terms, "0"].join(" + ")})`;',
    what: "WGSL drops an index leaf's offset (index leaf)",
    tests: GATHER,
  },
  {
    file: "kernel/pool.ts",
    find: 'binary("eq", ACC, index([0, 0, 0, kw, 0, 1])),\n      binary("ne", dy, constant(0)),',
    replace: 'binary("eq", ACC, index([0, 0, 0, kw, 0, 1])),\n      constant(1),',
    what: "the max-pool gather keeps a dy of -0 as -0 (a sum into zeros gives +0)",
    tests: GATHER,
  },
  {
    file: "kernel/pool.ts",
    find: 'const conds = [binary("eq", argmax, at), binary("ne", dy, constant(0))];',
    replace: 'const conds = [binary("eq", argmax, at), constant(1)];',
    what: "the max-pool gather (overlapping windows) keeps a dy of -0 as -0",
    tests: [...GATHER, "tests/conformance_edges_test.ts"],
  },
  {
    file: "kernel/pool.ts",
    find: "if (kw < sw) conds.push(",
    replace: "if (kw < 0) conds.push(",
    what: "the max-pool gather sends dy to cell columns right of the window too",
    tests: GATHER,
  },
  {
    file: "kernel/pool.ts",
    find: 'if (hc > ho) conds.push(binary("lt", index([0, 0, 1, 0, 0, 0]), constant(ho)));',
    replace: "",
    what: "the max-pool gather (windows apart) sends dy to the rows of a border no window covers",
    tests: GATHER,
  },
  {
    file: "kernel/pool.ts",
    find: 'if (mh > 1) conds.push(binary("ge", oy, constant(0)));',
    replace: "",
    what: "the max-pool gather (overlapping windows) reads windows above the first one",
    tests: GATHER,
  },
  {
    file: "kernel/pool.ts",
    find: 'if (wc > wo) conds.push(binary("lt", ox, constant(wo)));',
    replace: "",
    what: "the max-pool gather (overlapping windows) reads windows right of the last one",
    tests: GATHER,
  },
  {
    file: "kernel/pool.ts",
    find: "if (mw * sw > kw) conds.push(",
    replace: "if (mw * sw > kw + 1) conds.push(",
    what:
      "the max-pool gather (overlapping windows) takes a column past the window for the next row's",
    tests: GATHER,
  },
  {
    file: "kernel/pool.ts",
    find: "(mh - 1) * sh * kw + (mw - 1) * sw);",
    replace: "(mh - 1) * sh * kw + (mw - 1));",
    what: "the max-pool gather (overlapping windows) misplaces each position in its window",
    tests: GATHER,
  },
  {
    file: "kernel/pool.ts",
    find: "const window = [c * ho * wo, ho * wo, wo, 0, 1, 0, wo, 1];",
    replace: "const window = [c * ho * wo, ho * wo, wo, 0, 1, 0, wo, 0];",
    what: "the max-pool gather (overlapping windows) reads one window column for all",
    tests: GATHER,
  },
  {
    file: "kernel/pool.ts",
    find: "const fits = hc * sh === h && wc * sw === w;",
    replace: "const fits = hc * sh === h;",
    what: "the max-pool backward takes the cells' plane for dx where its columns reach past dx's",
    tests: GATHER,
  },
  {
    file: "wgsl/codegen.ts",
    find: "const u32 = (v: number) => (v < 0 ? `bitcast<u32>(${v}i)` : `${v}u`);",
    replace: "const u32 = (v: number) => `${v}u`;",
    what: "WGSL writes a load's negative offset as a u32 literal (-5u, which no shader takes)",
    tests: GATHER,
  },
  {
    file: "wgsl/codegen.ts",
    find: "const u32 = (v: number) => (v < 0 ? `bitcast<u32>(${v}i)` : `${v}u`);",
    replace: "const u32 = (v: number) => `${Math.abs(v)}u`;",
    what: "WGSL adds a load's negative stride or offset as its magnitude",
    tests: GATHER,
  },
  // --- cpu/native.ts -------------------------------------------------------------------------
  {
    file: "cpu/native_pool.ts",
    find: "if (v !== v || v === -Infinity) return true;",
    replace: "if (v !== v) return true;",
    what: "oneDNN pools an input holding -Infinity (a window of -Infinity gives -FLT_MAX)",
    tests: PROP,
  },
  {
    file: "cpu/native_pool.ts",
    find: "if (v !== v || v === -Infinity) return true;",
    replace: "if (v === -Infinity) return true;",
    what: "oneDNN pools an input holding NaN (its max skips NaN)",
    tests: PROP,
  },
  {
    file: "cpu/native.ts",
    find: "if (hit?.key === key && !y) return hit.ws;",
    replace: "if (hit && !y) return hit.ws;",
    what: "the oneDNN pooling workspace of an input is reused for another spec",
    tests: ["tests/dnnl_test.ts"],
  },
  {
    file: "cpu/native_conv.ts",
    find: "return { buffer: epi.inputs[l.input], offset: l.offset };",
    replace: "return { buffer: epi.inputs[l.input], offset: 0 };",
    what: "the oneDNN bias of a conv epilogue read from the start of its buffer, not its offset",
    tests: ["tests/dnnl_test.ts"],
  },
  {
    file: "cpu/native_conv.ts",
    find: "sizes[d] === 1 || st === want[d]",
    replace: "sizes[d] === 1 || st >= 0",
    what: "any conv epilogue that adds a load is taken for a bias per filter",
    tests: ["tests/dnnl_test.ts"],
  },
  {
    file: "cpu/native_pool.ts",
    find: "for (let kx = 0; kx < s.kw; kx++) offs[t++] = ky * w + kx;",
    replace: "for (let kx = 0; kx < s.kw; kx++) offs[t++] = ky * s.kw + kx;",
    what: "the max-pool JVP reads oneDNN's argmax row offset with the window's width",
    tests: ["tests/dnnl_test.ts"],
  },
  {
    file: "cpu/dnnl.ts",
    find: "(slot.output ? after : before).push(run);",
    replace: "(slot.output ? before : after).push(run);",
    what: "the reorders around a oneDNN convolution run on the wrong side of it",
    tests: ["tests/dnnl_test.ts"],
  },
  {
    file: "cpu/dnnl.ts",
    find: "query: preferred ? query : undefined,",
    replace: "query: undefined,",
    what: "a convolution created for oneDNN's layouts is bound to NCHW memory without reorders",
    tests: ["tests/dnnl_test.ts"],
  },
  {
    file: "cpu/dnnl.ts",
    find: 'return kind === "backwardData" && s.c < 4 ? "plain" : "preferred";',
    replace: 'return "preferred";',
    what: "a first layer's input gradient runs in oneDNN's layouts (3x slower)",
    tests: ["tests/dnnl_test.ts"],
  },
  {
    file: "cpu/dnnl.ts",
    find: "s.strideH, s.strideW, s.padH, s.padW].join",
    replace: "s.strideH, s.strideW, s.padH].join",
    what: "the oneDNN convolution primitive cache key leaves out the horizontal padding",
    tests: PROP,
  },
  {
    file: "cpu/dnnl.ts",
    find: "[s.n, s.c, s.h, s.w, s.kh, s.kw, s.strideH, s.strideW].join",
    replace: "[s.n, s.c, s.h, s.w, s.kh, s.kw, s.strideH].join",
    what: "the oneDNN pooling primitive cache key leaves out the horizontal stride",
    tests: PROP,
  },
  {
    file: "cpu/native.ts",
    find: "s.padH,\n      s.padW,\n    ]}`;",
    replace: "s.padW,\n    ]}`;",
    what: "the im2col column cache key leaves out the vertical padding",
    tests: PROP,
  },
  {
    file: "cpu/native_conv.ts",
    find: "s.kw, s.strideH, s.strideW, s.padH, s.padW].join",
    replace: "s.kw, s.strideH, s.padH, s.padW].join",
    what: "the im2col index-map cache key leaves out the horizontal stride",
    tests: PROP,
  },
  {
    file: "cpu/native.ts",
    find: "${s.kw},${s.strideH},${s.strideW}`;",
    replace: "${s.kw},${s.strideH}`;",
    what: "the pooling argmax cache key leaves out the horizontal stride",
    tests: PROP,
  },
  {
    file: "cpu/native_conv.ts",
    find: "map[j] = iy < 0 || iy >= s.h ||",
    replace: "map[j] = iy < 0 || iy > s.h ||",
    what: "im2col reads one row past the bottom edge instead of the zero padding",
    tests: PROP,
  },
  {
    file: "cpu/native.ts",
    find: "    if (s.strideH >= s.kh && s.strideW >= s.kw) {\n      // Windows do not overlap",
    replace: "    if (s.strideH >= s.kh || s.strideW >= s.kw) {\n      // Windows do not overlap",
    what: "max-pool backward stores instead of adding when windows overlap in one axis only",
    tests: PROP,
  },
  {
    file: "cpu/blas.ts",
    find: "const ob = offsetB + (batchB ? t * k * n : 0);",
    replace: "const ob = offsetB + t * k * n;",
    what: "a rank-2 B shared by every batch entry is read at a per-entry offset",
    tests: PROP,
  },
  // --- cpu/wasm/ ---------------------------------------------------------------------------------
  {
    file: "cpu/wasm/loops.ts",
    find: "const off = s * B;",
    replace: "const off = B;",
    what: "a strided load fills its second lane from the next element, not one stride on",
    tests: WASM,
  },
  {
    file: "cpu/wasm/loops.ts",
    find: "const off = j * s * 4;",
    replace: "const off = j * 4;",
    what: "a strided load into four float32 lanes reads neighbours, not one stride apart",
    tests: WASM,
  },
  {
    file: "cpu/wasm/loops.ts",
    find: "// An odd last element into lane 0 only.\n      this.counted(n - nv * W,",
    replace: "// An odd last element into lane 0 only.\n      this.counted(0,",
    what: "a partial-sum reduction drops the odd last element of each row",
    tests: WASM,
  },
  {
    file: "cpu/wasm/math.ts",
    find: 'f.get(x).get(n).f32x4(0.693359375).op("f32x4.mul").op("f32x4.sub");',
    replace: 'f.get(x).get(n).f32x4(0.6931).op("f32x4.mul").op("f32x4.sub");',
    what: "exp's range reduction uses a wrong ln 2 (high part)",
    tests: WASM,
  },
  {
    file: "cpu/wasm/math.ts",
    find: 'f.f32x4(MAGIC).op("f32x4.sub").set(n);',
    replace: 'f.f32x4(MAGIC - 1).op("f32x4.sub").set(n);',
    what: "exp's n (x log2 e rounded) is off by one against its integer ni",
    tests: WASM,
  },
  {
    file: "cpu/wasm/math.ts",
    find: 'f.get(x).f32x4(-104).op("f32x4.pmax").f32x4(89).op("f32x4.pmin").set(x);',
    replace: 'f.f32x4(-104).get(x).op("f32x4.pmax").f32x4(89).op("f32x4.pmin").set(x);',
    what: "exp's clamp takes its operands in the order that turns NaN into -104",
    tests: WASM,
  },
  {
    file: "cpu/wasm/math.ts",
    find: 'get(x).f32x4(0).op("f32x4.eq")',
    replace: 'get(x).f32x4(0).op("f32x4.lt")',
    what: "log(+-0) is not -Inf",
    tests: WASM,
  },
  {
    file: "cpu/wasm/loops.ts",
    find: 'const redVec = red.op === "sum" && this.S === "f32" && S > 0',
    replace: 'const redVec = red.op === "sum" && S > 0',
    what: "a float64 sum in WebAssembly adds in partial sums, not in the loops' and oracle's order",
    tests: PATHS,
  },
  {
    file: "cpu/wasm/vector_expr.ts",
    find: 'for (const v of args) f.get(v).lane("f64x2.extract_lane", lane);',
    replace: 'for (const v of args) f.get(v).lane("f64x2.extract_lane", 0);',
    what: "an imported function (exp, log, pow...) gets the first lane's argument in both lanes",
    tests: PATHS,
  },
  {
    file: "cpu/wasm/codegen.ts",
    find: 'if (e.k === "binary") return ROUNDED_BINARY.has(e.op) && exact(e.a) && exact(e.b);',
    replace:
      'if (e.k === "binary") return ROUNDED_BINARY.has(e.op) && rounded(e.a) && rounded(e.b);',
    what:
      "float32 lanes chosen for a map that rounds twice in a row (not the float64 path's value)",
    tests: WASM,
  },
  {
    file: "cpu/wasm/arena.ts",
    find: "        this.generation++;\n",
    replace: "",
    what: "the arena's memory grows without invalidating buffer views (they read detached memory)",
    tests: WASM,
  },
  // --- wgsl/ ---------------------------------------------------------------------------------
  {
    file: "wgsl/runtime.ts",
    find: "return [Math.ceil(count / y), y];",
    replace: "return [Math.floor(count / y), y];",
    what: "a 2-D dispatch grid drops the tail workgroups past 65,535",
    tests: PROP,
  },
  {
    file: "wgsl/codegen.ts",
    find: "u32(map ? gx * MAP_WG : gx, 0, 0, 0)",
    replace: "u32(gx, 0, 0, 0)",
    what: "element-wise kernels get the grid row stride in workgroups, not invocations",
    tests: PROP,
  },
  {
    file: "wgsl/codegen.ts",
    find: "s > 0u; s >>= 1u) {",
    replace: "s > 1u; s >>= 1u) {",
    what: "the workgroup reduction tree stops one level early",
    tests: PROP,
  },
  {
    file: "wgsl/conv_template.ts",
    find: "unrollKy ? (flip ? (kh - ky) * kw - 1 - kx : ky * kw + kx) : flip ? kw - 1 - kx : kx;",
    replace: "unrollKy ? (flip ? (kh - ky) * kw - 1 - kx : ky * kw + kx) : kx;",
    what: "the input gradient at stride 1 with runtime kernel rows reads its columns unflipped",
    tests: ROUTINES,
  },
  {
    file: "wgsl/conv_template.ts",
    find: "terms.push([`d${ky}_${px - kx + kw - 1}`, `w${ky}_${kx}_${q}`]);",
    replace: "terms.push([`d${ky}_${px + kx}`, `w${ky}_${kx}_${q}`]);",
    what: "the strided input gradient shares dy loads between taps that read other columns",
    tests: ROUTINES,
  },
  {
    file: "wgsl/conv.ts",
    find: "{ strides: [pl * f4 * 4, f4 * 4, 1], offset: 0 }",
    replace: "{ strides: [pl * f4 * 4, f4 * 4, 1], offset: 1 }",
    what: "dy transposed for vec4 loads over filters lands one filter off",
    tests: ROUTINES,
  },
] as Mutant[]).map((m) => ({ ...m, what: `[kernel] ${m.what}` }));
