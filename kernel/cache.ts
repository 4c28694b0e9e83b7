/**
 * Looking up what a backend built for a kernel (a compiled function, a WGSL pipeline plan, a
 * WebAssembly function) by the kernel's structure, cheaply enough to do on every run.
 *
 * Kernels are data rebuilt each time a graph is built, so a lookup cannot go by object identity,
 * and it runs once per kernel launch: on the seed's MLP, tens of launches per loss + gradient
 * and hundreds per SGN step. Building a string key of the whole expression (and collapsing the
 * kernel first) took 2-3% of an SGN step on W1 and made garbage; here a lookup writes the
 * kernel's {@link kernelStructure} (numbers) into a reused tape, hashes it, and compares it with
 * the stored tapes of that hash, so it allocates only the constants. Collapsing and code
 * generation run only on a miss. A hit needs the whole tape equal, never the hash alone, so two
 * kernels that differ in any field (a stride, an offset, an op, the dtype, a shape) never share
 * an entry.
 *
 * @module
 */

import type { DType } from "./shape.ts";
import { type Kernel, kernelStructure } from "./ir.ts";

/** Counters of a {@link KernelCache}. */
export interface KernelCacheStats {
  /** Lookups (one per kernel launch). */
  lookups: number;
  /** Lookups that found nothing and called `build`. */
  builds: number;
}

interface Entry<T> {
  tape: Float64Array;
  value: T;
}

/**
 * What a backend built per kernel structure, found by {@link KernelCache.get}.
 *
 * @example
 * ```ts
 * import { KernelCache } from "./cache.ts";
 * import { binary, constant, load } from "./ir.ts";
 * const cache = new KernelCache((k) => `code for ${k.shape}`);
 * const scale = (c: number) => ({ shape: [4], inputs: 1, body: binary("mul", load(0, [1]), constant(c)) });
 * const a = cache.get(scale(2), "float32");
 * const b = cache.get(scale(3), "float32");
 * console.log(a.value === b.value, b.consts, cache.stats); // true [ 3 ] { lookups: 2, builds: 1 }
 * ```
 */
export class KernelCache<T> {
  /** Lookups and builds so far. */
  readonly stats: KernelCacheStats = { lookups: 0, builds: 0 };
  #table = new Map<number, Entry<T>[]>();
  #tape: number[] = [];

  /** A cache whose misses call `build` with the kernel and dtype. */
  constructor(readonly build: (kernel: Kernel, dtype: DType) => T) {}

  /** What was built for the kernel's structure (built now on a miss), and its constants. */
  get(kernel: Kernel, dtype: DType): { value: T; consts: number[] } {
    this.stats.lookups++;
    const consts: number[] = [];
    const tape = this.#tape;
    const n = kernelStructure(kernel, dtype, tape, consts);
    // FNV-1a over the numbers (their int32 parts: a collision only costs a comparison).
    let h = 0x811c9dc5;
    for (let i = 0; i < n; i++) h = Math.imul(h ^ (tape[i] | 0), 0x01000193);
    let bucket = this.#table.get(h);
    if (bucket) {
      for (const e of bucket) {
        if (sameTape(e.tape, tape, n)) return { value: e.value, consts };
      }
    } else {
      bucket = [];
      this.#table.set(h, bucket);
    }
    this.stats.builds++;
    const stored = Float64Array.from(tape.slice(0, n)); // before build, which may look up again
    const value = this.build(kernel, dtype);
    bucket.push({ tape: stored, value });
    return { value, consts };
  }

  /** Number of structures stored. */
  get size(): number {
    let n = 0;
    for (const b of this.#table.values()) n += b.length;
    return n;
  }
}

function sameTape(stored: Float64Array, tape: readonly number[], n: number): boolean {
  if (stored.length !== n) return false;
  for (let i = 0; i < n; i++) if (stored[i] !== tape[i]) return false;
  return true;
}
