/**
 * oneDNN (Intel's deep neural network library, the one PyTorch's CPU convolutions come from)
 * through Deno's FFI: float32 convolutions (forward, backward-data, backward-weights) and max
 * pooling (forward with its workspace, backward), on NCHW / OIHW memory as our buffers hold it.
 *
 * Loading is optional, as for BLAS: the library is searched by its usual names (Debian's
 * `libdnnl2` gives `libdnnl.so.2`; Homebrew and conda install `libdnnl`), `SGN_DNNL` names a path
 * instead or `none` to turn it off, and without it {@link loadDnnl} says why in one line. This
 * module speaks oneDNN's version-2 C API (operation descriptors; declared in cpu/dnnl_api.ts,
 * our specs in its terms in cpu/dnnl_descs.ts); a version-3 library is reported as not supported
 * yet and the caller keeps its im2col + BLAS path.
 *
 * Each primitive is created once per spec (every field of it in the key) and cached with its
 * memory objects; a call only points the memory objects at the caller's arrays and executes.
 * float64 has no oneDNN convolution: the caller keeps BLAS for it.
 *
 * @module
 */

import type { Conv2dSpec, Pool2dSpec } from "../kernel/backend.ts";
import { pool2dOutSize } from "../kernel/backend.ts";
import { denoNs, openFirst } from "./ffi.ts";
import {
  ARG,
  check,
  CONVOLUTION_DIRECT,
  CPU,
  type Lib,
  OP_DESC_BYTES,
  POOLING_MAX,
  QUERY,
  QUERY_IMPL_INFO,
  STREAM_DEFAULT,
  SYMBOLS,
} from "./dnnl_api.ts";
import { convDescs, poolDescs } from "./dnnl_descs.ts";

/** The three convolution products. */
export type ConvKind = "forward" | "backwardData" | "backwardWeights";

/**
 * The layouts a convolution runs in: "plain" (our NCHW / OIHW as is) or "preferred" (the ones
 * oneDNN picks, with reorders from and to ours); see {@link convLayout}.
 */
export type ConvLayout = "plain" | "preferred";

/** float32 convolutions and max pooling through oneDNN (see the module documentation). */
export interface Dnnl {
  /** Where the library was loaded from. */
  readonly path: string;
  /** The library's version, e.g. "2.6.3". */
  readonly version: string;
  /**
   * One convolution product on float32 arrays, in our layouts:
   * - forward: a = x [n, c, h, w], b = w [f, c, kh, kw], out = y [n, f, ho, wo];
   * - backwardData: a = dy [n, f, ho, wo], b = w, out = dx [n, c, h, w];
   * - backwardWeights: a = x, b = dy, out = dw [f, c, kh, kw].
   *
   * The product runs in the layouts {@link convLayout} names for it unless `layout` says which
   * (for measurements; each choice is a primitive of its own).
   */
  conv(
    kind: ConvKind,
    s: Conv2dSpec,
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    layout?: ConvLayout,
  ): void;
  /** The forward convolution plus a bias per filter (bias [f]), in one pass. */
  convBias(
    s: Conv2dSpec,
    x: Float32Array,
    w: Float32Array,
    bias: Float32Array,
    y: Float32Array,
  ): void;
  /** The bytes of max pooling's workspace for a spec (what the backward pass reads). */
  poolWorkspaceBytes(s: Pool2dSpec): number;
  /**
   * How the max-pooling workspace of a spec records each window's argmax, when that was checked:
   * "u8" or "s32", one entry per output in the output's layout, holding ky kw + kx (the position
   * in the window). oneDNN calls the workspace implementation-specific, so this is verified once
   * per spec, on an input whose argmaxes are known, before anyone reads it; undefined when the
   * check failed (the workspace is then only handed back to oneDNN).
   */
  argmaxFormat(s: Pool2dSpec): "u8" | "s32" | undefined;
  /** Max pooling forward: y [n, c, ho, wo] and the workspace that records each window's argmax. */
  maxPool(s: Pool2dSpec, x: Float32Array, y: Float32Array, workspace: Uint8Array): void;
  /** Max pooling backward: dx [n, c, h, w] from dy and the forward pass's workspace. */
  maxPoolBackward(s: Pool2dSpec, dy: Float32Array, workspace: Uint8Array, dx: Float32Array): void;
  /**
   * The implementation oneDNN chose for a product (e.g. "jit:avx512_core"), for reports; for a
   * convolution, in the layouts `layout` names (default: {@link convLayout}'s).
   */
  implementation(
    kind: ConvKind | "maxPool" | "maxPoolBackward",
    s: Conv2dSpec | Pool2dSpec,
    layout?: ConvLayout,
  ): string;
  /** Primitives created so far (each once per spec). */
  readonly primitives: number;
  /**
   * Reorders created so far: one per argument whose layout a primitive chose differently from
   * ours ({@link convLayout}); each runs at every call of its primitive.
   */
  readonly reorders: number;
}

/** Why oneDNN did not load, or the library when it did. */
export type DnnlResult = { dnnl: Dnnl; reason?: undefined } | { dnnl: undefined; reason: string };

/** A created primitive: what to point at the caller's arrays, and how to run it. */
interface Prim {
  impl: string;
  /** Its buffers in the layouts it chose (kept alive with it). */
  held: Uint8Array[];
  run(arrays: ArrayBufferView[]): void;
  workspaceBytes?: number;
  argmaxFormat?: "u8" | "s32" | null;
}

/**
 * One argument of a primitive: its memory descriptor in our layout, the query that says which
 * layout the primitive chose (for one created with `format_tag_any`), and whether it is written.
 */
interface Slot {
  arg: number;
  plain: Deno.PointerValue;
  query?: number;
  output?: boolean;
}

let cached: DnnlResult | undefined;

/** The libraries tried, in order, on this operating system. */
export function dnnlCandidates(os: string): string[] {
  if (os === "darwin") {
    return [
      "/opt/homebrew/opt/onednn/lib/libdnnl.2.dylib",
      "/usr/local/opt/onednn/lib/libdnnl.2.dylib",
      "libdnnl.2.dylib",
    ];
  }
  if (os === "windows") return ["dnnl.dll"];
  return ["libdnnl.so.2", "libdnnl.so", "/usr/lib/x86_64-linux-gnu/libdnnl.so.2"];
}

/**
 * Loads oneDNN once per process (`SGN_DNNL` names a path instead; `SGN_DNNL=none` turns it off).
 *
 * @example
 * ```ts
 * import { loadDnnl } from "./dnnl.ts";
 * const r = loadDnnl();
 * console.log(r.dnnl ? `oneDNN ${r.dnnl.version}` : `no oneDNN: ${r.reason}`);
 * ```
 */
export function loadDnnl(): DnnlResult {
  return (cached ??= tryLoad());
}

function tryLoad(): DnnlResult {
  const deno = denoNs();
  const r = openFirst({
    what: "oneDNN",
    variable: "SGN_DNNL",
    candidates: dnnlCandidates,
    install: {
      linux: "apt-get install libdnnl2",
      darwin: "brew install onednn",
      windows: "put dnnl.dll on PATH",
    },
  }, SYMBOLS);
  if (!r.lib) {
    // A library that opens but lacks a function of oneDNN 2's C API: most likely oneDNN 3.
    const v3 = r.errors?.some((e) => /undefined symbol: dnnl_/.test(e))
      ? " (it lacks oneDNN 2's C API; oneDNN 3 is not supported yet)"
      : "";
    return { dnnl: undefined, reason: r.reason + v3 };
  }
  try {
    return { dnnl: wrap(deno!, r.lib.symbols, r.path) };
  } catch (e) {
    r.lib.close();
    return {
      dnnl: undefined,
      reason: `oneDNN at ${r.path} did not start: ${(e as Error).message}`,
    };
  }
}

function wrap(deno: typeof Deno, L: Lib, path: string): Dnnl {
  const outPtr = new BigUint64Array(1);
  const take = (): Deno.PointerValue => deno.UnsafePointer.create(outPtr[0]);

  const vp = L.dnnl_version();
  if (!vp) throw new Error("dnnl_version returned nothing");
  const vv = new deno.UnsafePointerView(vp);
  const version = `${vv.getInt32(0)}.${vv.getInt32(4)}.${vv.getInt32(8)}`;

  check(L.dnnl_engine_create(outPtr, CPU, 0n), "engine creation");
  const engine = take();
  check(L.dnnl_stream_create(outPtr, engine, STREAM_DEFAULT), "stream creation");
  const stream = take();

  /** A memory object for a descriptor (its data pointer set at each call). */
  const memory = (desc: Uint8Array | Deno.PointerValue): Deno.PointerValue => {
    const p = desc instanceof Uint8Array ? deno.UnsafePointer.of(desc) : desc;
    check(L.dnnl_memory_create(outPtr, p, engine, null), "memory creation");
    return take();
  };

  /** A primitive descriptor from an operation descriptor (and a forward hint for backward). */
  const primitiveDesc = (op: Uint8Array, hint: Deno.PointerValue = null): Deno.PointerValue => {
    check(L.dnnl_primitive_desc_create(outPtr, op, null, engine, hint), "primitive descriptor");
    return take();
  };

  const implOf = (pd: Deno.PointerValue): string => {
    const s = new BigUint64Array(1);
    if (L.dnnl_primitive_desc_query(pd, QUERY_IMPL_INFO, 0, s) !== 0 || s[0] === 0n) return "?";
    return new deno.UnsafePointerView(deno.UnsafePointer.create(s[0])!).getCString();
  };

  /** Executes a primitive with (arg, memory) pairs. */
  const executor = (prim: Deno.PointerValue, pairs: [number, Deno.PointerValue][]) => {
    const table = new BigUint64Array(pairs.length * 2);
    const view = new Int32Array(table.buffer);
    pairs.forEach(([arg, mem], i) => {
      view[i * 4] = arg;
      table[i * 2 + 1] = BigInt(deno.UnsafePointer.value(mem));
    });
    return () => check(L.dnnl_primitive_execute(prim, stream, pairs.length, table), "execution");
  };

  /**
   * The primitive of pd, run with the caller's arrays bound to its slots in order. A slot whose
   * layout the primitive chose (`query`) and that differs from ours gets its own buffer in that
   * layout and a reorder: into it before the primitive for an input, out of it after for an
   * output. The buffer is the primitive's alone, so oneDNN's zero padding, written when the
   * buffer is bound, stays as it was.
   */
  const make = (pd: Deno.PointerValue, slots: Slot[]): Prim => {
    check(L.dnnl_primitive_create(outPtr, pd), "primitive creation");
    const prim = take();
    const user: Deno.PointerValue[] = [];
    const before: (() => void)[] = [];
    const after: (() => void)[] = [];
    const held: Uint8Array[] = [];
    const pairs: [number, Deno.PointerValue][] = slots.map((slot) => {
      const mem = memory(slot.plain);
      user.push(mem);
      const chosen = slot.query === undefined
        ? null
        : L.dnnl_primitive_desc_query_md(pd, slot.query, 0);
      if (!chosen || L.dnnl_memory_desc_equal(chosen, slot.plain) !== 0) return [slot.arg, mem];
      const bytes = Number(L.dnnl_memory_desc_get_size(chosen));
      const room = new Uint8Array(bytes + 64);
      held.push(room);
      const at = deno.UnsafePointer.value(deno.UnsafePointer.of(room)!);
      const aligned = deno.UnsafePointer.create((BigInt(at) + 63n) & ~63n);
      check(L.dnnl_memory_create(outPtr, chosen, engine, aligned), "memory creation");
      const blocked = take();
      const [from, to, fromMd, toMd] = slot.output
        ? [blocked, mem, chosen, slot.plain]
        : [mem, blocked, slot.plain, chosen];
      check(
        L.dnnl_reorder_primitive_desc_create(outPtr, fromMd, engine, toMd, engine, null),
        "reorder descriptor",
      );
      check(L.dnnl_primitive_create(outPtr, take()), "reorder creation");
      const run = executor(take(), [[ARG.src, from], [ARG.dst, to]]);
      (slot.output ? after : before).push(run);
      reorders++;
      return [slot.arg, blocked];
    });
    const execute = executor(prim, pairs);
    primitives++;
    return {
      impl: implOf(pd),
      held,
      run(arrays) {
        for (let i = 0; i < user.length; i++) {
          check(
            L.dnnl_memory_set_data_handle(user[i], deno.UnsafePointer.of(arrays[i])),
            "memory binding",
          );
        }
        for (const r of before) r();
        execute();
        for (const r of after) r();
        check(L.dnnl_stream_wait(stream), "stream wait");
      },
    };
  };

  const ptr = (m: Uint8Array) => deno.UnsafePointer.of(m);
  const prims = new Map<string, Prim>();
  let primitives = 0;
  let reorders = 0;

  const convKey = (s: Conv2dSpec) =>
    [s.n, s.c, s.h, s.w, s.f, s.kh, s.kw, s.strideH, s.strideW, s.padH, s.padW].join(",");
  const poolKey = (s: Pool2dSpec) =>
    [s.n, s.c, s.h, s.w, s.kh, s.kw, s.strideH, s.strideW].join(",");

  const convPrim = (
    kind: ConvKind | "forwardBias",
    s: Conv2dSpec,
    layout = convLayout(kind === "forwardBias" ? "forward" : kind, s),
  ): Prim => {
    const preferred = layout === "preferred";
    const key = `${kind}:${layout}:${convKey(s)}`;
    let p = prims.get(key);
    if (p) return p;
    const d = convDescs(L, s, kind === "forwardBias", preferred);
    const fwdPd = primitiveDesc(d.fwd);
    const slot = (arg: number, plain: Uint8Array, query: number, output = false): Slot => ({
      arg,
      plain: ptr(plain),
      query: preferred ? query : undefined,
      output,
    });
    const src = slot(ARG.src, d.plain.src, QUERY.src);
    const weights = slot(ARG.weights, d.plain.wei, QUERY.weights);
    if (kind === "forwardBias" || kind === "forward") {
      const dst = slot(ARG.dst, d.plain.dst, QUERY.dst, true);
      p = make(
        fwdPd,
        kind === "forward" ? [src, weights, dst] : [src, weights, {
          arg: ARG.bias,
          plain: ptr(d.b),
        }, dst],
      );
    } else if (kind === "backwardData") {
      const op = new Uint8Array(OP_DESC_BYTES);
      check(
        L.dnnl_convolution_backward_data_desc_init(
          op,
          CONVOLUTION_DIRECT,
          d.op.src,
          d.op.wei,
          d.op.dst,
          d.strides,
          d.pad,
          d.padR,
        ),
        "convolution backward-data descriptor",
      );
      p = make(primitiveDesc(op, fwdPd), [
        slot(ARG.diffDst, d.plain.dst, QUERY.diffDst),
        weights,
        slot(ARG.diffSrc, d.plain.src, QUERY.diffSrc, true),
      ]);
    } else {
      const op = new Uint8Array(OP_DESC_BYTES);
      check(
        L.dnnl_convolution_backward_weights_desc_init(
          op,
          CONVOLUTION_DIRECT,
          d.op.src,
          d.op.wei,
          null,
          d.op.dst,
          d.strides,
          d.pad,
          d.padR,
        ),
        "convolution backward-weights descriptor",
      );
      p = make(primitiveDesc(op, fwdPd), [
        src,
        slot(ARG.diffDst, d.plain.dst, QUERY.diffDst),
        slot(ARG.diffWeights, d.plain.wei, QUERY.diffWeights, true),
      ]);
    }
    prims.set(key, p);
    return p;
  };

  const poolPrim = (kind: "maxPool" | "maxPoolBackward", s: Pool2dSpec): Prim => {
    const key = `${kind}:${poolKey(s)}`;
    let p = prims.get(key);
    if (p) return p;
    const d = poolDescs(L, s);
    const fwdPd = primitiveDesc(d.fwd);
    const ws = L.dnnl_primitive_desc_query_md(fwdPd, QUERY.workspace, 0);
    if (!ws) throw new Error("oneDNN max pooling has no workspace");
    const workspaceBytes = Number(L.dnnl_memory_desc_get_size(ws));
    if (kind === "maxPool") {
      p = make(fwdPd, [
        { arg: ARG.src, plain: ptr(d.src) },
        { arg: ARG.dst, plain: ptr(d.dst) },
        { arg: ARG.workspace, plain: ws },
      ]);
    } else {
      const op = new Uint8Array(OP_DESC_BYTES);
      check(
        L.dnnl_pooling_backward_desc_init(
          op,
          POOLING_MAX,
          d.src,
          d.dst,
          d.strides,
          d.kernel,
          d.pad,
          d.padR,
        ),
        "pooling backward descriptor",
      );
      p = make(primitiveDesc(op, fwdPd), [
        { arg: ARG.diffDst, plain: ptr(d.dst) },
        { arg: ARG.workspace, plain: ws },
        { arg: ARG.diffSrc, plain: ptr(d.src) },
      ]);
    }
    p.workspaceBytes = workspaceBytes;
    prims.set(key, p);
    return p;
  };

  return {
    path,
    version,
    get primitives() {
      return primitives;
    },
    get reorders() {
      return reorders;
    },
    conv(kind, s, a, b, out, layout) {
      convPrim(kind, s, layout).run([a, b, out]);
    },
    convBias(s, x, w, bias, y) {
      convPrim("forwardBias", s).run([x, w, bias, y]);
    },
    poolWorkspaceBytes(s) {
      return poolPrim("maxPool", s).workspaceBytes!;
    },
    argmaxFormat(s) {
      const p = poolPrim("maxPool", s);
      if (p.argmaxFormat === undefined) p.argmaxFormat = checkArgmaxFormat(s, p) ?? null;
      return p.argmaxFormat ?? undefined;
    },
    maxPool(s, x, y, workspace) {
      poolPrim("maxPool", s).run([x, y, workspace]);
    },
    maxPoolBackward(s, dy, workspace, dx) {
      poolPrim("maxPoolBackward", s).run([dy, workspace, dx]);
    },
    implementation(kind, s, layout) {
      return kind === "maxPool" || kind === "maxPoolBackward"
        ? poolPrim(kind, s as Pool2dSpec).impl
        : convPrim(kind, s as Conv2dSpec, layout).impl;
    },
  };
}

/**
 * Which layouts a convolution product runs in: "preferred" lets oneDNN pick them (blocked ones
 * such as nChw16c, with its direct jit kernels), our NCHW arrays reordered into and out of them
 * around each call; "plain" runs on NCHW as is (oneDNN's gemm-based kernels). Measured on the
 * seed's four architectures (bench/README.md, issue 21), the preferred layouts, reorders
 * included, take 0.14-0.9x the time of plain ones, except the input gradient of a convolution
 * with fewer than 4 input channels (a first layer), 2-3.6x slower: that one stays plain. The
 * rule depends on the spec only, so a run makes the same choice, and the same float32 sums,
 * every time.
 *
 * @example
 * ```ts
 * import { convLayout } from "./dnnl.ts";
 * const s = { n: 8, c: 1, h: 28, w: 28, f: 6, kh: 5, kw: 5, strideH: 1, strideW: 1, padH: 0, padW: 0 };
 * console.log(convLayout("forward", s), convLayout("backwardData", s)); // preferred plain
 * ```
 */
export function convLayout(kind: ConvKind, s: Conv2dSpec): ConvLayout {
  return kind === "backwardData" && s.c < 4 ? "plain" : "preferred";
}

/**
 * Runs the forward pooling primitive on an input whose every window has one known maximum
 * (distinct values) and says whether its workspace holds ky kw + kx per output, as u8 or s32.
 */
function checkArgmaxFormat(s: Pool2dSpec, p: Prim): "u8" | "s32" | undefined {
  const [ho, wo] = pool2dOutSize(s);
  const outputs = s.n * s.c * ho * wo;
  const bytes = p.workspaceBytes!;
  const format = bytes === outputs ? "u8" : bytes === 4 * outputs ? "s32" : undefined;
  if (!format || s.n * s.c * s.h * s.w >= 2 ** 24) return undefined;
  // Distinct integers below 2^24 (exact in float32): i 7919 mod a prime above the size.
  const size = s.n * s.c * s.h * s.w;
  const x = new Float32Array(size);
  for (let i = 0; i < size; i++) x[i] = (i * 7919) % 16777213;
  const y = new Float32Array(outputs);
  const ws = new Uint8Array(bytes);
  p.run([x, y, ws]);
  const at = format === "u8" ? ws : new Int32Array(ws.buffer);
  let o = 0;
  for (let nc = 0; nc < s.n * s.c; nc++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++, o++) {
        let best = 0, bv = -Infinity;
        for (let ky = 0; ky < s.kh; ky++) {
          for (let kx = 0; kx < s.kw; kx++) {
            const v = x[(nc * s.h + oy * s.strideH + ky) * s.w + ox * s.strideW + kx];
            if (v > bv) (bv = v), (best = ky * s.kw + kx);
          }
        }
        if (at[o] !== best) return undefined;
      }
    }
  }
  return format;
}
