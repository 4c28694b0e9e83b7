/**
 * The kernel benchmark cases shared by kernels_bench.ts (deno bench) and kernels_report.ts
 * (a table with GFLOP/s). A case runs its kernel n times and reads the last result back once;
 * the bench runs every case, on every backend, with the same n ({@link KERNELS_PER_ITERATION}).
 */
import * as K from "../kernel/kernels.ts";
import type { Backend, Conv2dSpec, DeviceBuffer, Pool2dSpec } from "../kernel/backend.ts";
import type { DType } from "../kernel/shape.ts";
import { conv2dOutSize, pool2dOutSize } from "../kernel/backend.ts";
import { benchBackends } from "./devices.ts";
import { Random } from "../random.ts";

/**
 * Kernels per `deno bench` iteration, the same on every backend, followed by one readback: so a
 * group's rows (one per backend) do the same work, and WebGPU's readback round trip (~11 ms on
 * lavapipe) is shared by this many kernels, as it is in training.
 */
export const KERNELS_PER_ITERATION = 10;

/** One measurable workload. */
export interface KernelCase {
  /** The kernel and its backend, e.g. "matmul 1000x784x256 A B [webgpu]". */
  name: string;
  /** The kernel without the backend: the cases of one group do the same work. */
  group: string;
  backend: Backend;
  /** Floating-point operations (or bytes, for memory-bound kernels) of one kernel. */
  work: number;
  unit: "GFLOP/s" | "GB/s";
  /** Runs the kernel n times and reads the last result back once. */
  runN: (n: number) => Promise<void>;
}

/** Throughput of one kernel of `c` that took `ms`, e.g. "12.34 GFLOP/s". */
export function throughput(c: KernelCase, ms: number): string {
  return `${(c.work / (ms / 1000) / 1e9).toFixed(2)} ${c.unit}`;
}

function rand(be: Backend, n: number, seed: number, dtype: DType = "float32"): DeviceBuffer {
  const rng = new Random(seed);
  const a = dtype === "float64" ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.range(-1, 1);
  return be.upload(a);
}

/** Runs `kernel` n times and reads the last result back (the only synchronization). */
function timedN(be: Backend, kernel: () => DeviceBuffer): (n: number) => Promise<void> {
  return async (n) => {
    let last: DeviceBuffer | undefined;
    for (let i = 0; i < n; i++) {
      if (last) be.release(last);
      last = kernel();
    }
    await be.read(last!);
    be.release(last!);
  };
}

/** A stride-1 valid convolution of batch n: c -> f channels, h x h images, k x k kernels. */
function conv(n: number, c: number, h: number, f: number, k: number): Conv2dSpec {
  return { n, c, h, w: h, f, kh: k, kw: k, strideH: 1, strideW: 1, padH: 0, padW: 0 };
}

/** The layers of the seed's conv nets: Fashion-MNIST architecture_1 and CIFAR-10 architecture_4. */
const CONVS: [string, Conv2dSpec][] = [
  ["Fashion 1->6 5x5 (batch 1000)", conv(1000, 1, 28, 6, 5)],
  ["Fashion 6->16 5x5 (batch 1000)", conv(1000, 6, 12, 16, 5)],
  ["CIFAR 3->32 3x3 (batch 128)", conv(128, 3, 32, 32, 3)],
  ["CIFAR 32->64 3x3 (batch 128)", conv(128, 32, 15, 64, 3)],
  ["CIFAR 64->64 3x3 (batch 128)", conv(128, 64, 6, 64, 3)],
];

/** A max pool of batch n over c maps of h x h, k x k windows at `stride`. */
function pool(n: number, c: number, h: number, k: number, stride: number): Pool2dSpec {
  return { n, c, h, w: h, kh: k, kw: k, strideH: stride, strideW: stride };
}

/**
 * The max pools measured: the seed's (2 x 2 windows tiling a map, and CIFAR's 13 x 13 map, whose
 * last row and column no window covers) and overlapping windows (3 x 3 at stride 2, as in AlexNet).
 */
const POOLS: [string, Pool2dSpec][] = [
  ["Fashion 2x2 of 24x24x6 (batch 1000)", pool(1000, 6, 24, 2, 2)],
  ["CIFAR 2x2 of 13x13x32 (batch 128)", pool(128, 32, 13, 2, 2)],
  ["3x3 stride 2 of 27x27x64 (batch 128)", pool(128, 64, 27, 3, 2)],
];

/** The matrix products measured: the issues' shapes and the seed's thin MLP layers. */
export const MATMULS: [number, number, number][] = [
  [1000, 784, 256],
  [1000, 512, 512],
  [128, 4096, 64],
  [1000, 784, 20],
  [1000, 20, 784],
  [784, 1000, 20],
];

/**
 * All cases, for WebGPU (when an adapter exists), the native CPU backend (when BLAS loads) and,
 * unless `cpu` is false, the plain TypeScript one; matrix products also in float64 on the
 * backends that have it.
 */
export async function kernelCases({ cpu = true } = {}): Promise<KernelCase[]> {
  const out: KernelCase[] = [];
  for (const be of await benchBackends({ cpu })) {
    const name = be.name;
    const dtypes: DType[] = be.dtypes.includes("float64") ? ["float32", "float64"] : ["float32"];
    for (const dtype of dtypes) {
      for (const [m, k, n] of MATMULS) {
        const a = rand(be, m * k, 1, dtype);
        const b = rand(be, k * n, 2, dtype);
        for (const [tA, tB] of [[false, false], [true, false], [false, true]]) {
          const spec = { m, k, n, transA: tA, transB: tB };
          const tag = `${tA ? "A^T B" : tB ? "A B^T" : "A B"}${dtype === "float64" ? " f64" : ""}`;
          out.push({
            name: `matmul ${m}x${k}x${n} ${tag} [${name}]`,
            group: `matmul ${m}x${k}x${n} ${tag}`,
            backend: be,
            work: 2 * m * n * k,
            unit: "GFLOP/s",
            runN: timedN(be, () => be.matmul(a, b, spec)),
          });
        }
      }
    }
    for (const [label, s] of CONVS) {
      const [ho, wo] = conv2dOutSize(s);
      const flops = 2 * s.n * s.f * ho * wo * s.c * s.kh * s.kw;
      const x = rand(be, s.n * s.c * s.h * s.w, 3);
      const w = rand(be, s.f * s.c * s.kh * s.kw, 4);
      const dy = rand(be, s.n * s.f * ho * wo, 5);
      const kernels: [string, () => DeviceBuffer][] = [
        ["forward", () => be.conv2d(x, w, s)],
        ["input grad", () => be.conv2dInputGrad(dy, w, s)],
        ["weight grad", () => be.conv2dWeightGrad(x, dy, s)],
      ];
      for (const [kind, k] of kernels) {
        out.push({
          name: `conv2d ${label} ${kind} [${name}]`,
          group: `conv2d ${label} ${kind}`,
          backend: be,
          work: flops,
          unit: "GFLOP/s",
          runN: timedN(be, k),
        });
      }
    }
    for (const [label, s] of POOLS) {
      const [ho, wo] = pool2dOutSize(s);
      const x = rand(be, s.n * s.c * s.h * s.w, 9);
      const dy = rand(be, s.n * s.c * ho * wo, 10);
      out.push({
        name: `maxPool2d backward ${label} [${name}]`,
        group: `maxPool2d backward ${label}`,
        backend: be,
        // x and dy read, dx written.
        work: 4 * (2 * s.n * s.c * s.h * s.w + s.n * s.c * ho * wo),
        unit: "GB/s",
        runN: timedN(be, () => be.maxPool2dBackward(x, dy, s)),
      });
    }
    const n = 1_000_000;
    const x = rand(be, n, 6);
    const y = rand(be, n, 7);
    const row = rand(be, 1000, 8);
    const mem: [string, number, () => DeviceBuffer][] = [
      ["exp", 8 * n, () => K.unary(be, "exp", x)],
      ["mul", 12 * n, () => K.binary(be, "mul", x, [n], y, [n])],
      ["add row-broadcast", 8 * n, () => K.binary(be, "add", x, [1000, 1000], row, [1000])],
      ["sum all", 4 * n, () => K.reduce(be, "sum", x, 1, n, 1)],
      ["sum rows 1000x1000", 4 * n, () => K.reduce(be, "sum", x, 1000, 1000, 1)],
      ["sum columns 1000x1000", 4 * n, () => K.reduce(be, "sum", x, 1, 1000, 1000)],
      ["dot", 8 * n, () => K.dot(be, x, y)],
      ["axpy", 12 * n, () => K.axpy(be, 0.5, x, y)],
    ];
    for (const [label, bytes, k] of mem) {
      out.push({
        name: `${label} 1e6 [${name}]`,
        group: `${label} 1e6`,
        backend: be,
        work: bytes,
        unit: "GB/s",
        runN: timedN(be, k),
      });
    }
  }
  return out;
}
