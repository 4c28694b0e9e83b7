/**
 * The native backend's launches prepared for replays (kernel/record.ts, `Recording.replay`): at
 * a launch's first replay, what `NativeBackend.run`, `matmul` and `softmax` look up on every call
 * (a kernel's WebAssembly function by its structure, the checked product spec, the epilogue's
 * kernel and function, the sums row's kernel) is resolved once and kept in a closure; later
 * replays of it are allocations and the BLAS and WebAssembly calls over the buffers' addresses.
 * The calls are the plain path's, with its arguments, so a replay gives its numbers to the bit.
 *
 * What does not fit (buffers outside the arena or of other sizes, a kernel without a
 * WebAssembly form, an empty product, routines other than matmul and float32 softmax) runs the
 * plain way (`runLaunch`).
 *
 * @module
 */

import { checkMatmulSpec, type DeviceBuffer, matmulShape } from "../kernel/backend.ts";
import { epilogueKernel, type Kernel, outputSize, singleOutputs } from "../kernel/ir.ts";
import { type Launch, type PreparedLaunch, runLaunch } from "../kernel/record.ts";
import type { DType } from "../kernel/shape.ts";
import { type Blas, gemmProduct } from "./blas.ts";
import type { KernelRuns } from "./native_kernels.ts";
import { type CpuBuffer, sumsKernel } from "./oracle.ts";
import { type Arena, ArenaBuffer } from "./wasm/arena.ts";
import { compileWasmKernel } from "./wasm/codegen.ts";
import { wasmSoftmax } from "./wasm/softmax.ts";

/** What a prepared launch uses of the native backend. */
export interface NativeParts {
  /** The backend, for the plain path. */
  backend: Parameters<typeof runLaunch>[0];
  arena: Arena;
  blas: Blas;
  runs: KernelRuns;
  /** The backend's allocation (a buffer in the arena when it has room). */
  alloc(size: number, dtype: DType): CpuBuffer;
  release(b: DeviceBuffer): void;
}

/**
 * Launches that replays ran prepared, and the plain way (tests read them; the native backend's
 * `kernelRuns` count the kernels inside either).
 */
export const replayRuns = { prepared: 0, plain: 0 };

/** A launch's runner for one set of input sizes, or undefined when it has none. */
type Resolve = (p: NativeParts, l: Launch, ins: readonly CpuBuffer[]) => PreparedLaunch | undefined;

/**
 * `l` prepared for replays on the native backend: resolved at its first run for the sizes of
 * that run's buffers (their dtype included), the plain path when it cannot be.
 */
export function prepareNativeLaunch(p: NativeParts, l: Launch): PreparedLaunch {
  const plain = (ins: readonly DeviceBuffer[]) => {
    replayRuns.plain++;
    return runLaunch(p.backend, l, ins);
  };
  const resolve: Resolve | undefined = l.kind === "kernel"
    ? kernelRunner
    : l.routine.op === "matmul"
    ? matmulRunner
    : l.routine.op === "softmax"
    ? softmaxRunner
    : undefined;
  if (!resolve) return plain;
  let run: PreparedLaunch | undefined;
  return (ins) => {
    if (!run) {
      const bufs = inArena(ins);
      const r = bufs && resolve(p, l, bufs);
      run = r ? guarded(ins, r, plain) : plain;
    }
    return run(ins);
  };
}

/** The buffers when all are live arena buffers, else undefined. */
function inArena(ins: readonly DeviceBuffer[]): ArenaBuffer[] | undefined {
  for (const b of ins) if (!(b instanceof ArenaBuffer) || b.released) return undefined;
  return ins as ArenaBuffer[];
}

/** `run` while the inputs are live arena buffers of the first call's sizes, else `plain`. */
function guarded(
  first: readonly DeviceBuffer[],
  run: PreparedLaunch,
  plain: PreparedLaunch,
): PreparedLaunch {
  const sizes = first.map((b) => b.size);
  const f64 = first.map((b) => (b as ArenaBuffer).float64);
  return (ins) => {
    if (ins.length !== sizes.length) return plain(ins);
    for (let i = 0; i < ins.length; i++) {
      const b = ins[i];
      if (
        !(b instanceof ArenaBuffer) || b.released || b.size !== sizes[i] || b.float64 !== f64[i]
      ) return plain(ins);
    }
    replayRuns.prepared++;
    return run(ins);
  };
}

/**
 * A kernel's WebAssembly function with its arguments held: the constants in place, the
 * addresses written per call. Undefined when the kernel has no WebAssembly form.
 */
function wasmCall(kernel: Kernel, dtype: DType, arena: Arena) {
  const w = compileWasmKernel(kernel, dtype, arena.memory);
  if (!w) return undefined;
  const args = [...new Array<number>(kernel.inputs + 1).fill(0), ...w.consts];
  const out = kernel.inputs;
  return {
    /** Runs the kernel over input addresses `ptrs` (as many as it reads) into `outPtr`. */
    run(ptrs: readonly number[], outPtr: number) {
      for (let i = 0; i < out; i++) args[i] = ptrs[i];
      args[out] = outPtr;
      w.fn.apply(undefined, args);
    },
  };
}

const ptrsOf = (bs: readonly ArenaBuffer[], from = 0, to = bs.length) => {
  const out = new Array<number>(to - from);
  for (let i = from; i < to; i++) out[i - from] = bs[i].ptr;
  return out;
};

/** An IR kernel (each output of a kernel of several, as cpu/native_kernels.ts runs them). */
const kernelRunner: Resolve = (p, l, ins) => {
  if (l.kind !== "kernel") return undefined;
  const { kernel, dtype } = l;
  const parts = kernel.more ? singleOutputs(kernel) : [kernel];
  const calls = parts.map((k) => wasmCall(k, dtype, p.arena));
  const size = outputSize(kernel);
  if (size === 0 || ins.length !== kernel.inputs || ins.some((b) => b.dtype !== dtype)) {
    return undefined;
  }
  if (calls.some((c) => !c)) return undefined;
  const partBytes = (size / parts.length) * (dtype === "float64" ? 8 : 4);
  return (bufs) => {
    const out = p.alloc(size, dtype);
    if (!(out instanceof ArenaBuffer)) {
      p.release(out);
      return runLaunch(p.backend, l, bufs);
    }
    const ptrs = ptrsOf(bufs as ArenaBuffer[]);
    for (let j = 0; j < calls.length; j++) calls[j]!.run(ptrs, out.ptr + j * partBytes);
    p.runs.wasm += calls.length;
    return out;
  };
};

/**
 * A matrix product through BLAS gemm as NativeBackend.product calls it, its sums row by
 * {@link sumsKernel} written in place, then its epilogue kernel.
 */
const matmulRunner: Resolve = (p, l, ins) => {
  if (l.kind !== "routine" || l.routine.op !== "matmul") return undefined;
  const [a, b] = ins;
  const dtype = a.dtype;
  if (ins.some((x) => x.dtype !== dtype)) return undefined;
  const o = l.offsets;
  const spec = checkMatmulSpec(
    o ? { ...l.routine.spec, offsetA: o[0], offsetB: o[1] } : l.routine.spec,
    a.size,
    b.size,
  );
  const { m, k, n, batch, sums } = spec;
  if (k === 0 || m * n === 0 || l.args !== 2) return undefined;
  const bytes = dtype === "float64" ? 8 : 4;
  const rawSize = batch * m * n + (sums ? n : 0);
  const sumsCall = sums ? wasmCall(sumsKernel(spec), dtype, p.arena) : undefined;
  const epi = l.epilogue
    ? epilogueKernel(matmulShape(l.routine.spec), l.epilogue, ins.length - l.args)
    : undefined;
  const epiCall = epi && wasmCall(epi, dtype, p.arena);
  if ((sums && !sumsCall) || (epi && (!epiCall || outputSize(epi) !== rawSize))) return undefined;
  return (bufs) => {
    const raw = p.alloc(rawSize, dtype);
    if (!(raw instanceof ArenaBuffer)) {
      p.release(raw);
      return runLaunch(p.backend, l, bufs);
    }
    const [x, y] = bufs as ArenaBuffer[];
    gemmProduct(p.blas, spec, x.data, y.data, raw.data); // data after the allocation
    if (sumsCall) {
      sumsCall.run([y.ptr], raw.ptr + m * n * bytes);
      p.runs.wasm++;
    }
    if (!epiCall) return raw;
    const out = p.alloc(rawSize, dtype);
    if (!(out instanceof ArenaBuffer)) {
      p.release(out);
      p.release(raw);
      return runLaunch(p.backend, l, bufs);
    }
    const ptrs = ptrsOf(bufs as ArenaBuffer[], l.args);
    ptrs.push(raw.ptr);
    epiCall.run(ptrs, out.ptr);
    p.runs.wasm++;
    p.release(raw);
    return out;
  };
};

/** Float32 softmax in WebAssembly, as NativeBackend.softmax runs it over arena buffers. */
const softmaxRunner: Resolve = (p, l, ins) => {
  if (l.kind !== "routine" || l.routine.op !== "softmax") return undefined;
  const { rows, cols, log } = l.routine;
  const [x] = ins;
  if (x.dtype !== "float32" || x.size !== rows * cols || x.size === 0) return undefined;
  const fn = wasmSoftmax(p.arena.memory);
  return (bufs) => {
    const out = p.alloc(rows * cols, "float32");
    if (!(out instanceof ArenaBuffer)) {
      p.release(out);
      return runLaunch(p.backend, l, bufs);
    }
    fn((bufs[0] as ArenaBuffer).ptr, out.ptr, rows, cols, log ? 1 : 0);
    return out;
  };
};
