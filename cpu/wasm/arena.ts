/**
 * One memory arena for the native backend: its buffers live in one `WebAssembly.Memory`, so the
 * WebAssembly kernels read and write them in place, and BLAS (through Deno FFI "buffer"
 * parameters) receives typed-array views into the same memory: nothing is copied between them.
 *
 * Allocation: sizes round up to size classes (multiples of 16 bytes up to 256, then four classes
 * per power of two, at most 25% over). A released block goes to its class's free list while
 * the pooled bytes stay within `poolBytes` (the pool of the JavaScript-heap backend, carried
 * over), else back to the free space, where neighbouring free ranges merge; {@link Arena.trim}
 * returns every pooled block there. A new block comes from its class list, else the first free
 * range that fits, else the top of the memory, which grows (doubling, up to 4 GiB) when needed.
 * Steady-state training allocates the same sizes every step, so it stops growing the memory
 * after the first. WebAssembly memory never shrinks: `trim` makes the space reusable for any
 * size, it does not give it back to the system.
 *
 * Growth: `memory.grow` detaches every view of the old `ArrayBuffer`. An {@link ArenaBuffer}
 * therefore derives its view again whenever the arena's {@link Arena.generation} (bumped by
 * each growth) has changed since: code must read `.data` after any allocation, never keep a
 * view across one. When the memory cannot grow (the 4 GiB limit, or the system's), `alloc`
 * returns undefined and the caller keeps the buffer on the JavaScript heap.
 *
 * @example
 * ```ts
 * import { Arena } from "./arena.ts";
 * const arena = new Arena();
 * const b = arena.buffer(1000, "float32")!;
 * b.data.fill(1);
 * console.log(b.data.length, arena.stats().used); // 1000 4096 (its size class)
 * arena.release(b);
 * ```
 *
 * @module
 */

import type { DType, TypedArray } from "../../kernel/shape.ts";
import { CpuBuffer } from "../oracle.ts";

const PAGE = 65536;
const MAX_PAGES = 65536;

/** The size class of a request of `bytes` (> 0). */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return Math.max(16, Math.ceil(bytes / 16) * 16);
  const p = 2 ** Math.floor(Math.log2(bytes));
  const q = p / 4;
  return Math.ceil(bytes / q) * q;
}

/** A buffer of the CPU backends whose memory is a block of an {@link Arena}. */
export class ArenaBuffer extends CpuBuffer {
  #view: TypedArray;
  #generation: number;
  /** A view of `length` elements at byte address `ptr` of the arena's memory. */
  constructor(
    readonly arena: Arena,
    readonly ptr: number,
    readonly length: number,
    readonly float64: boolean,
  ) {
    const view = arena.view(ptr, length, float64);
    super(view);
    this.#view = view;
    this.#generation = arena.generation;
  }
  /** The elements (a view derived again after the memory grew). */
  override get data(): TypedArray {
    if (this.#generation !== this.arena.generation) {
      this.#view = this.arena.view(this.ptr, this.length, this.float64);
      this.#generation = this.arena.generation;
    }
    return this.#view;
  }
  /** Number of elements. */
  override get size(): number {
    return this.length;
  }
}

/** The arena; see the module documentation. */
export class Arena {
  /** The memory every block lives in. */
  readonly memory: WebAssembly.Memory;
  /** Bumped by every growth of the memory (views of the old buffer are detached then). */
  generation = 0;
  /** Bytes of released blocks kept on their class lists at most. */
  readonly poolBytes: number;
  #top = 64; // address 0 stays unused
  #classes = new Map<number, number[]>();
  #pooled = 0;
  /** Free ranges [start, end), sorted by start, none touching another. */
  #free: [number, number][] = [];
  #sizes = new Map<number, number>();
  #buffer: ArrayBuffer;
  readonly #maxPages: number;

  /**
   * An arena of `initialBytes` (rounded up to 64 KiB pages) that grows as needed up to
   * `maxBytes` (default and at most 4 GiB, the limit of a 32-bit WebAssembly memory).
   */
  constructor(
    { initialBytes = 16 * 2 ** 20, maxBytes = 2 ** 32, poolBytes = 512 * 2 ** 20 }: {
      initialBytes?: number;
      maxBytes?: number;
      poolBytes?: number;
    } = {},
  ) {
    this.#maxPages = Math.max(1, Math.min(MAX_PAGES, Math.floor(maxBytes / PAGE)));
    this.memory = new WebAssembly.Memory({
      initial: Math.min(this.#maxPages, Math.max(1, Math.ceil(initialBytes / PAGE))),
      maximum: this.#maxPages,
    });
    this.#buffer = this.memory.buffer as ArrayBuffer;
    this.poolBytes = poolBytes;
  }

  /** A view of `length` elements at byte address `ptr`. */
  view(ptr: number, length: number, float64: boolean): TypedArray {
    return float64
      ? new Float64Array(this.#buffer, ptr, length)
      : new Float32Array(this.#buffer, ptr, length);
  }

  /** A buffer of `size` elements (contents undefined), or undefined when the arena is full. */
  buffer(size: number, dtype: DType): ArenaBuffer | undefined {
    const f64 = dtype === "float64";
    const ptr = this.alloc(Math.max(1, size) * (f64 ? 8 : 4));
    return ptr === undefined ? undefined : new ArenaBuffer(this, ptr, size, f64);
  }

  /** Returns a buffer's block (the buffer must not be used afterwards). */
  release(b: ArenaBuffer): void {
    this.free(b.ptr);
  }

  /** The byte address of a new block of at least `bytes`, 16-aligned; undefined when full. */
  alloc(bytes: number): number | undefined {
    const size = sizeClass(bytes);
    const list = this.#classes.get(size);
    let ptr = list?.pop();
    if (ptr !== undefined) this.#pooled -= size;
    else {
      ptr = this.#fromFree(size) ?? this.#fromTop(size);
      if (ptr === undefined) return undefined;
    }
    this.#sizes.set(ptr, size);
    return ptr;
  }

  /** Releases the block at `ptr`. */
  free(ptr: number): void {
    const size = this.#sizes.get(ptr);
    if (size === undefined) throw new Error(`arena: no block at ${ptr} to free`);
    this.#sizes.delete(ptr);
    if (this.#pooled + size <= this.poolBytes) {
      const list = this.#classes.get(size);
      if (list) list.push(ptr);
      else this.#classes.set(size, [ptr]);
      this.#pooled += size;
    } else this.#addFree(ptr, ptr + size);
  }

  /** Moves every pooled block to the free space (reusable for any size). */
  trim(): void {
    for (const [size, list] of this.#classes) {
      for (const ptr of list) this.#addFree(ptr, ptr + size);
    }
    this.#classes.clear();
    this.#pooled = 0;
  }

  /** Memory size, bytes in live blocks, pooled on class lists, free below the top. */
  stats(): { memory: number; used: number; pooled: number; free: number; top: number } {
    let used = 0;
    for (const s of this.#sizes.values()) used += s;
    const free = this.#free.reduce((a, [s, e]) => a + e - s, 0);
    return { memory: this.#buffer.byteLength, used, pooled: this.#pooled, free, top: this.#top };
  }

  #fromFree(size: number): number | undefined {
    for (let i = 0; i < this.#free.length; i++) {
      const r = this.#free[i];
      if (r[1] - r[0] < size) continue;
      const ptr = r[0];
      r[0] += size;
      if (r[0] === r[1]) this.#free.splice(i, 1);
      return ptr;
    }
    return undefined;
  }

  #fromTop(size: number): number | undefined {
    const ptr = this.#top;
    const end = ptr + size;
    if (end > this.#buffer.byteLength && !this.#grow(end)) return undefined;
    this.#top = end;
    return ptr;
  }

  /** Grows the memory to hold `end` bytes (doubling where it can); false when it cannot. */
  #grow(end: number): boolean {
    const have = this.#buffer.byteLength / PAGE;
    const need = Math.ceil(end / PAGE);
    if (need > this.#maxPages) return false;
    for (const pages of [Math.min(this.#maxPages, Math.max(need, 2 * have)), need]) {
      try {
        this.memory.grow(pages - have);
        this.#buffer = this.memory.buffer as ArrayBuffer;
        this.generation++;
        return true;
      } catch {
        // not that much: try the least, then give up
      }
    }
    return false;
  }

  /** Adds [start, end) to the free ranges, merging neighbours; the top comes down to it. */
  #addFree(start: number, end: number): void {
    const f = this.#free;
    let i = 0;
    while (i < f.length && f[i][0] < start) i++;
    f.splice(i, 0, [start, end]);
    if (i + 1 < f.length && f[i][1] === f[i + 1][0]) {
      f[i][1] = f[i + 1][1];
      f.splice(i + 1, 1);
    }
    if (i > 0 && f[i - 1][1] === f[i][0]) {
      f[i - 1][1] = f[i][1];
      f.splice(i, 1);
      i--;
    }
    if (f[i][1] === this.#top) {
      this.#top = f[i][0];
      f.splice(i, 1);
    }
  }
}
