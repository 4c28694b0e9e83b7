/**
 * The WebGPU runtime: one device, a pipeline cache, a size-bucketed buffer pool, and a dispatch
 * queue that batches compute passes into command buffers. Reading a buffer back is the only point
 * that waits for the device.
 *
 * Kernel convention: binding 0 is a uniform block of parameters (at most {@link PARAM_BYTES}
 * bytes), bindings 1..n are the storage buffers passed to {@link GpuRuntime.dispatch}, in order.
 * Every declared binding must be used by the shader (pipelines use the automatic layout).
 *
 * @module
 */

import type { DeviceBuffer } from "../kernel/backend.ts";

import type { DType } from "../kernel/shape.ts";

import { SgnError } from "../errors.ts";

/** Bytes reserved for one dispatch's parameters (the uniform offset alignment). */
export const PARAM_BYTES = 256;
/**
 * Bytes of derived buffers ({@link GpuRuntime.derived}) kept at most; past it the least recently
 * used go back to the pool. Convolution weights in the kernels' layout are what it holds: the
 * largest of the seed's networks (architecture_3) needs 2 x 5.3 MB.
 */
export const DERIVED_BYTES = 64 * 2 ** 20;
/** Dispatches recorded before the queue is submitted without waiting. */
const MAX_BATCH = 128;
/** Largest number of workgroups along one dispatch dimension (WebGPU's default limit). */
export const MAX_GROUPS = 65535;
/**
 * Invocations per workgroup of the register-blocked kernels (matmul, convolutions): on llvmpipe
 * a workgroup runs on one thread, one invocation per lane of an AVX2 register of f32.
 */
export const LANES = 8;
/** Threads that run workgroups concurrently (lavapipe: one per CPU), for the cost models. */
export const THREADS = Math.max(1, Math.min(64, globalThis.navigator?.hardwareConcurrency ?? 4));

/** A pooled GPU buffer holding `size` float32 elements. */
export class GpuBuffer implements DeviceBuffer {
  /** Always float32 on WebGPU. */
  readonly dtype: DType = "float32";
  /** Whether the buffer went back to the pool (using it then is an error). */
  released = false;
  /** A handle on pooled GPU memory (the runtime makes these: {@link GpuRuntime.alloc}). */
  constructor(
    readonly size: number,
    readonly gpu: GPUBuffer,
    readonly id: number,
  ) {}
}

/** Builds the parameter block of a dispatch: u32, i32 and f32 fields, 4 bytes each. */
export class Params {
  private view = new DataView(new ArrayBuffer(PARAM_BYTES));
  private offset = 0;
  /** Appends unsigned integers. */
  u32(...values: number[]): this {
    for (const v of values) {
      this.view.setUint32(this.offset, v, true);
      this.offset += 4;
    }
    return this;
  }
  /** Appends signed integers. */
  i32(...values: number[]): this {
    for (const v of values) {
      this.view.setInt32(this.offset, v, true);
      this.offset += 4;
    }
    return this;
  }
  /** Appends floats. */
  f32(...values: number[]): this {
    for (const v of values) {
      this.view.setFloat32(this.offset, v, true);
      this.offset += 4;
    }
    return this;
  }
  /**
   * Appends floats from the next 16-byte boundary: a kernel's constants, `c: array<vec4f, n>`
   * after its fields (codegen.ts's `routineSource`).
   */
  consts(values: readonly number[]): this {
    this.offset = Math.ceil(this.offset / 16) * 16;
    return this.f32(...values);
  }
  /** The packed bytes. */
  bytes(): Uint8Array {
    return new Uint8Array(this.view.buffer, 0, PARAM_BYTES);
  }
}

/** Bytes of the pool bucket that holds `bytes`: powers of two split into quarters (<= 25% waste). */
function bucketBytes(bytes: number): number {
  const b = Math.max(16, bytes);
  if (b <= 1024) return Math.ceil(b / 16) * 16;
  const top = 2 ** Math.floor(Math.log2(b));
  const quarter = top / 4;
  return Math.ceil(b / quarter) * quarter;
}

/** Counters for tests and benchmarks. */
export interface RuntimeStats {
  /** Compute dispatches recorded. */
  dispatches: number;
  /** Command buffers submitted to the queue. */
  submits: number;
  /** Buffers read back to the host (each one waits for the device). */
  readbacks: number;
  /** Compute pipelines compiled. */
  pipelines: number;
  /** Buffer-to-buffer copies recorded (commands of their own, not dispatches). */
  copies: number;
}

/** One WebGPU device with its caches; see the module documentation. */
export class GpuRuntime {
  private pipelines = new Map<string, GPUComputePipeline>();
  private pool = new Map<number, GPUBuffer[]>();
  private live = 0;
  private pooledCount = 0;
  /** Derived buffers by source and key, most recently used last (see {@link derived}). */
  private derivedOf = new Map<GpuBuffer, Map<string, GpuBuffer>>();
  private derivedBytes = 0;
  /** Bytes of derived buffers kept at most (tests lower it to see the eviction). */
  derivedLimit: number = DERIVED_BYTES;
  private nextId = 1;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pending = 0;
  private arena: GPUBuffer;
  private arenaData = new Uint8Array(PARAM_BYTES * MAX_BATCH);
  private staging: GPUBuffer[] = [];
  private errors: string[] = [];
  /** What the runtime has done so far (tests and benchmarks read it). */
  readonly stats: RuntimeStats = {
    dispatches: 0,
    submits: 0,
    readbacks: 0,
    pipelines: 0,
    copies: 0,
  };

  /** A runtime over a device (most code calls {@link GpuRuntime.create}). */
  constructor(
    readonly device: GPUDevice,
    readonly description: string,
    /** Whether the adapter is a CPU rasterizer (lavapipe, llvmpipe, SwiftShader). */
    readonly software = false,
  ) {
    this.arena = device.createBuffer({
      size: PARAM_BYTES * MAX_BATCH,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    // At exit, wait for queued work and let the device go before the process tears down its
    // memory: lavapipe's worker threads may otherwise still run kernels on freed host memory.
    globalThis.addEventListener?.("unload", () => {
      try {
        this.flush();
        this.device.destroy();
      } catch {
        // exiting anyway
      }
    });
    device.addEventListener("uncapturederror", (e) => {
      this.errors.push(String((e as GPUUncapturedErrorEvent).error?.message ?? e));
    });
  }

  /** Requests an adapter and device; undefined when WebGPU or an adapter is missing. */
  static async create(): Promise<GpuRuntime | undefined> {
    const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
    if (!gpu) return undefined;
    const adapter = await quietly(() =>
      gpu.requestAdapter({ powerPreference: "high-performance" })
    );
    if (!adapter) return undefined;
    const limits = adapter.limits;
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
        maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupSizeY: limits.maxComputeWorkgroupSizeY,
        maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
      },
    });
    const info = adapter.info;
    const description = [info.description, info.vendor && `vendor ${info.vendor}`]
      .filter(Boolean).join(", ") || "unknown adapter";
    return new GpuRuntime(device, description, isSoftwareAdapter(info));
  }

  /** A buffer of `size` float32 elements from the pool. Its contents are undefined. */
  alloc(size: number): GpuBuffer {
    const bytes = bucketBytes(size * 4);
    let gpu = this.pool.get(bytes)?.pop();
    if (gpu) {
      this.pooledCount--;
    } else {
      gpu = this.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
    }
    this.live++;
    return new GpuBuffer(size, gpu, this.nextId++);
  }

  /**
   * Returns a buffer to the pool, with the buffers derived from it. Queued work that reads them
   * still runs first (queue order).
   */
  release(buffer: DeviceBuffer): void {
    const b = this.check(buffer, "release");
    b.released = true;
    this.live--;
    this.toPool(b.gpu);
    const derived = this.derivedOf.get(b);
    if (!derived) return;
    this.derivedOf.delete(b);
    for (const d of derived.values()) this.dropDerived(d);
  }

  /** Puts GPU memory on its size's pool list. */
  private toPool(gpu: GPUBuffer): void {
    const list = this.pool.get(gpu.size) ?? [];
    list.push(gpu);
    this.pool.set(gpu.size, list);
    this.pooledCount++;
  }

  /** Gives a derived buffer's memory back to the pool (its source's entry is gone already). */
  private dropDerived(d: GpuBuffer): void {
    d.released = true;
    this.derivedBytes -= d.gpu.size;
    this.toPool(d.gpu);
  }

  /**
   * A buffer derived from `source` (the weights in a kernel's layout, say), made by `make` (which
   * allocates it and records the work that fills it) at the first call for a source and key, and
   * the same buffer at later calls while the source lives: a cached linearization's G v then
   * transposes its weights once, not at every CG iteration. Sound because a buffer's contents
   * never change while it lives (only the work that makes it writes it). The buffer goes back to
   * the pool when its source is released, or when the derived buffers pass
   * {@link GpuRuntime.derivedLimit} (least recently used first); it is not counted as live, and
   * the caller must not release it nor keep it past the call that asked for it.
   */
  derived(source: GpuBuffer, key: string, make: () => GpuBuffer): GpuBuffer {
    const of = this.derivedOf.get(source) ?? new Map<string, GpuBuffer>();
    // Most recently used last, for the eviction below.
    this.derivedOf.delete(source);
    this.derivedOf.set(source, of);
    const hit = of.get(key);
    if (hit) return hit;
    const d = make();
    this.live--; // the cache's memory, not a buffer of the caller's
    of.set(key, d);
    this.derivedBytes += d.gpu.size;
    while (this.derivedBytes > this.derivedLimit) {
      const [oldest, list] = this.derivedOf.entries().next().value!;
      if (oldest === source) break; // only the source asked for now is left
      this.derivedOf.delete(oldest);
      for (const x of list.values()) this.dropDerived(x);
    }
    return d;
  }

  /** Bytes of the derived buffers held now (see {@link derived}). */
  heldDerivedBytes(): number {
    return this.derivedBytes;
  }

  /** Buffers handed out and not released. */
  liveBuffers(): number {
    return this.live;
  }

  /** Released buffers kept for reuse. */
  pooledBuffers(): number {
    return this.pooledCount;
  }

  /** Throws a clear error unless `buffer` is a live buffer of this runtime. */
  check(buffer: DeviceBuffer, op: string): GpuBuffer {
    if (!(buffer instanceof GpuBuffer)) {
      throw new SgnError(`${op}: the buffer does not belong to the WebGPU backend`);
    }
    if (buffer.released) {
      throw new SgnError(`${op}: the buffer was already released (a disposed tensor was used)`);
    }
    return buffer;
  }

  /** Copies host data into a new buffer. */
  upload(data: Float32Array): GpuBuffer {
    const b = this.alloc(data.length);
    // queue.writeBuffer runs before any work still being recorded, which may read the pooled
    // buffer's previous contents: submit that work first.
    this.flush();
    if (data.length > 0) {
      this.device.queue.writeBuffer(
        b.gpu,
        0,
        data.buffer as ArrayBuffer,
        data.byteOffset,
        data.byteLength,
      );
    }
    return b;
  }

  /** The compute pipeline for a WGSL source, compiled once. */
  pipeline(code: string): GPUComputePipeline {
    let p = this.pipelines.get(code);
    if (!p) {
      const module = this.device.createShaderModule({ code });
      p = this.device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      this.pipelines.set(code, p);
      this.stats.pipelines++;
    }
    return p;
  }

  /**
   * Records one dispatch of the kernel `code` with a parameter block and storage buffers bound at
   * 1..n, over `groups` workgroups. Nothing runs until the batch is submitted. A kernel of
   * several parts (products grouped into one dispatch, matmul.ts) takes one block per part,
   * bound together as one uniform of consecutive {@link PARAM_BYTES} blocks.
   */
  dispatch(
    code: string,
    params: Params | readonly Params[],
    buffers: readonly GpuBuffer[],
    groups: readonly [number, number?, number?],
  ): void {
    const [gx, gy = 1, gz = 1] = groups;
    if (gx === 0 || gy === 0 || gz === 0) return;
    if (gx > MAX_GROUPS || gy > MAX_GROUPS || gz > MAX_GROUPS) {
      throw new SgnError(`dispatch of ${gx}x${gy}x${gz} workgroups exceeds ${MAX_GROUPS}`);
    }
    const blocks = params instanceof Params ? [params] : params;
    if (blocks.length < 1 || blocks.length > MAX_BATCH) {
      throw new SgnError(`dispatch: give 1 to ${MAX_BATCH} parameter blocks, not ${blocks.length}`);
    }
    if (this.pending + blocks.length > MAX_BATCH) this.flush();
    const pipeline = this.pipeline(code);
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    const slot = this.pending * PARAM_BYTES;
    blocks.forEach((b, i) => this.arenaData.set(b.bytes(), slot + i * PARAM_BYTES));
    const size = blocks.length * PARAM_BYTES;
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: this.arena, offset: slot, size } },
    ];
    for (let i = 0; i < buffers.length; i++) {
      entries.push({ binding: i + 1, resource: { buffer: buffers[i].gpu } });
    }
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(gx, gy, gz);
    this.pending += blocks.length;
    this.stats.dispatches++;
    if (this.pending >= MAX_BATCH) this.flush();
  }

  /**
   * Records a copy of `size` elements from `src` at `srcAt` to `dst` at `dstAt` (in elements), in
   * order with the dispatches around it: the open compute pass ends, the copy is encoded, and the
   * next dispatch opens a new pass. A copy is one command, done by the device's copy engine or a
   * memcpy (lavapipe), where a kernel doing the same would be a dispatch.
   */
  copy(src: GpuBuffer, srcAt: number, dst: GpuBuffer, dstAt: number, size: number): void {
    if (size === 0) return;
    const fits = srcAt >= 0 && dstAt >= 0 && srcAt + size <= src.size && dstAt + size <= dst.size;
    if (!fits || src === dst) {
      throw new SgnError(
        `copy: ${size} elements from ${srcAt} of ${src.size} to ${dstAt} of ${dst.size} ` +
          (fits ? "within one buffer (give two buffers)" : "do not fit"),
      );
    }
    this.encoder ??= this.device.createCommandEncoder();
    this.pass?.end();
    this.pass = null;
    this.encoder.copyBufferToBuffer(src.gpu, srcAt * 4, dst.gpu, dstAt * 4, size * 4);
    this.stats.copies++;
  }

  /** Submits recorded work without waiting for it. */
  flush(): void {
    if (!this.encoder) return;
    this.pass?.end();
    if (this.pending) {
      this.device.queue.writeBuffer(this.arena, 0, this.arenaData, 0, this.pending * PARAM_BYTES);
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.pass = null;
    this.encoder = null;
    this.pending = 0;
    this.stats.submits++;
  }

  /** Reads a buffer back: submits pending work and waits for the device. */
  async read(buffer: DeviceBuffer): Promise<Float32Array> {
    const b = this.check(buffer, "read");
    const out = new Float32Array(b.size);
    if (b.size === 0) return out;
    const bytes = b.size * 4;
    const size = Math.ceil(bytes / 16) * 16;
    const idx = this.staging.findIndex((s) => s.size >= size);
    const staging = idx >= 0 ? this.staging.splice(idx, 1)[0] : this.device.createBuffer({
      size: bucketBytes(size),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.flush();
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(b.gpu, 0, staging, 0, size);
    this.device.queue.submit([encoder.finish()]);
    this.stats.submits++;
    this.stats.readbacks++;
    await staging.mapAsync(GPUMapMode.READ, 0, size);
    out.set(new Float32Array(staging.getMappedRange(0, size), 0, b.size));
    staging.unmap();
    this.staging.push(staging);
    this.throwErrors();
    return out;
  }

  /** Raises any validation error the device reported since the last check. */
  throwErrors(): void {
    if (this.errors.length > 0) {
      const msg = this.errors.splice(0).join("\n");
      throw new SgnError(`WebGPU reported an error: ${msg}`);
    }
  }

  /** Frees pooled (unused) buffers. */
  trim(): void {
    this.flush();
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.pooledCount = 0;
  }
}

/**
 * Workgroup counts covering `count` workgroups' worth of work in a 2-D grid (each dimension at
 * most {@link MAX_GROUPS}); kernels recover the linear index as `gid.x + gid.y * nx * wgSize`.
 */
export function grid(count: number): [number, number] {
  if (count <= MAX_GROUPS) return [count, 1];
  const y = Math.ceil(count / MAX_GROUPS);
  return [Math.ceil(count / y), y];
}

/**
 * Records a kernel of workgroup size `size` over `count` invocations laid out in a 2-D grid
 * (see {@link grid}), appending the row stride (invocations per grid row) to `params`: the kernel
 * indexes `gid.x + gid.y * p.stride` and skips indices past its count.
 */
export function dispatchFlat(
  rt: GpuRuntime,
  code: string,
  params: Params,
  buffers: GpuBuffer[],
  count: number,
  size = 64,
): void {
  const [gx, gy] = grid(Math.ceil(count / size));
  rt.dispatch(code, params.u32(gx * size), buffers, [gx, gy]);
}

/** Throws a clear error unless buffer `b`, the operand `what` of `op`, holds `shape`. */
export function expectShape(
  op: string,
  what: string,
  b: GpuBuffer,
  shape: readonly number[],
): void {
  const size = shape.reduce((a, d) => a * d, 1);
  if (b.size !== size) {
    throw new SgnError(
      `${op}: ${what} has ${b.size} elements, expected ${size} ([${
        shape.join(", ")
      }]) for the given spec`,
    );
  }
}

/**
 * Whether an adapter runs on the CPU: the fallback flag, or the names of Mesa's and Chromium's
 * software rasterizers in its description.
 */
export function isSoftwareAdapter(
  info: { isFallbackAdapter?: boolean; description?: string; vendor?: string; device?: string },
): boolean {
  const text = [info.description, info.vendor, info.device].join(" ");
  return info.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader|software/i.test(text);
}

/**
 * Requests the adapter so that nothing reaches the user's terminal and nothing breaks at exit.
 * Both remedies apply on Linux only, only for the length of the request (the variables are unset
 * again afterwards: the WebGPU instance, made by the first request, keeps its choice), and never
 * when the user set the variable.
 *
 * - Without `XDG_RUNTIME_DIR` (containers, SSH sessions, CI runners), enumerating Vulkan adapters
 *   makes libwayland-client, loaded by Mesa's Vulkan driver to look for a Wayland display, print
 *   "error: XDG_RUNTIME_DIR is invalid or not set in the environment." twice. So it points at a
 *   new private (0700) empty directory, removed afterwards.
 * - Where a Vulkan driver is installed, `DENO_WEBGPU_BACKEND` is set to `vulkan`, so that wgpu
 *   does not also open its OpenGL backend. That backend loads libEGL (libglvnd), whose
 *   destructor, run by exit(), races a worker thread's exit that frees the same thread state:
 *   glibc then aborts ("corrupted size vs. prev_size in fastbins", exit 134) after the program
 *   has finished, in about 2% of runs here (core dumps: tools/repeat_suite.ts). Without a Vulkan
 *   driver (a machine with only OpenGL) the default stays.
 *
 * Without the permissions this needs, the request runs as it is.
 */
async function quietly<T>(request: () => Promise<T>): Promise<T> {
  // Reached through globalThis.Deno?. so that browsers (no Deno) skip it.
  const set: string[] = [];
  let dir: string | undefined;
  try {
    if (globalThis.Deno?.build.os === "linux") {
      if (!globalThis.Deno?.env.get("XDG_RUNTIME_DIR")) {
        dir = globalThis.Deno?.makeTempDirSync({ prefix: "sgn-webgpu-probe-" });
        if (dir !== undefined) {
          globalThis.Deno?.env.set("XDG_RUNTIME_DIR", dir);
          set.push("XDG_RUNTIME_DIR");
        }
      }
      if (!globalThis.Deno?.env.get("DENO_WEBGPU_BACKEND") && vulkanDriverInstalled()) {
        globalThis.Deno?.env.set("DENO_WEBGPU_BACKEND", "vulkan");
        set.push("DENO_WEBGPU_BACKEND");
      }
    }
  } catch {
    // no env or write permission: probe as it is
  }
  try {
    return await request();
  } finally {
    try {
      for (const name of set) globalThis.Deno?.env.delete(name);
      if (dir !== undefined) globalThis.Deno?.removeSync(dir, { recursive: true });
    } catch {
      // the directory is empty and private; leaving it is harmless
    }
  }
}

/** Whether a Vulkan driver manifest (ICD) is where the Vulkan loader looks for one. */
export function vulkanDriverInstalled(): boolean {
  const env = globalThis.Deno?.env;
  if (env?.get("VK_ICD_FILENAMES") || env?.get("VK_DRIVER_FILES")) return true;
  const home = env?.get("HOME");
  const dirs = [
    "/usr/share/vulkan/icd.d",
    "/usr/local/share/vulkan/icd.d",
    "/etc/vulkan/icd.d",
    ...(home ? [`${home}/.local/share/vulkan/icd.d`] : []),
  ];
  for (const d of dirs) {
    try {
      for (const e of globalThis.Deno?.readDirSync(d) ?? []) {
        if (e.name.endsWith(".json")) return true;
      }
    } catch {
      // not there
    }
  }
  return false;
}
