/**
 * A small seeded pseudo-random generator (xoshiro128**), so that initializations, shuffles and
 * tests repeat exactly for a given seed on every platform.
 *
 * @example
 * ```ts
 * import { Random } from "./random.ts";
 * const rng = new Random(1);
 * const u = rng.uniform(); // in [0, 1)
 * const z = rng.normal(); // standard normal
 * ```
 *
 * @module
 */

/** A seeded generator of uniform and normal numbers. */
export class Random {
  private s = new Uint32Array(4);
  private spare: number | undefined;

  /** Seeds the state with splitmix32 so that nearby seeds give unrelated streams. */
  constructor(seed: number) {
    let x = (seed >>> 0) ^ 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    return (this.nextU32() * 2 ** 21 + (this.nextU32() >>> 11)) / 2 ** 53;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** An integer uniform in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A Float64Array of `n` values from `draw`. */
  array(n: number, draw: (rng: Random) => number = (r) => r.range(-1, 1)): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = draw(this);
    return out;
  }

  /** Fisher-Yates shuffle of `0..n-1`. */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** MT19937's init_genrand: the state from one 32-bit seed. */
function initGenrand(mt: Uint32Array, seed: number): void {
  mt[0] = seed >>> 0;
  for (let i = 1; i < 624; i++) {
    const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
    mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
  }
}

/** MT19937's state transition over all 624 words. */
function twist(mt: Uint32Array): void {
  for (let i = 0; i < 624; i++) {
    const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
    mt[i] = mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
  }
}

/** MT19937's output tempering of one state word. */
function temper(y: number): number {
  y ^= y >>> 11;
  y ^= (y << 7) & 0x9d2c5680;
  y ^= (y << 15) & 0xefc60000;
  y ^= y >>> 18;
  return y >>> 0;
}

/**
 * NumPy's legacy `RandomState` for `seed(int)` followed by `randn`: MT19937 seeded with
 * init_genrand and the polar Gaussian with its cached second value. The seed's MLPs draw their
 * initial weights as `np.random.seed(10); np.random.randn(n)` (a fixed seed, whatever --seed
 * says), so this reproduces the seed's exact initialization.
 *
 * @example
 * ```ts
 * import { NumpyRandomState } from "./random.ts";
 * const rs = new NumpyRandomState(10);
 * console.log(rs.randn()); // 1.331586504129518, as numpy.random.seed(10); numpy.random.randn()
 * ```
 */
export class NumpyRandomState {
  private mt = new Uint32Array(624);
  private index = 624;
  private gauss: number | undefined;

  /** Seeds the generator as `np.random.RandomState(seed)` does; `seed` is in [0, 2^32). */
  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(
        `NumpyRandomState: the seed must be an integer in [0, 2^32), got ${seed}`,
      );
    }
    initGenrand(this.mt, seed);
  }

  /** The next 32-bit output of MT19937. */
  nextU32(): number {
    if (this.index >= 624) {
      twist(this.mt);
      this.index = 0;
    }
    return temper(this.mt[this.index++]);
  }

  /** Uniform in [0, 1) with 53 bits, as numpy's random_sample. */
  random(): number {
    const a = this.nextU32() >>> 5;
    const b = this.nextU32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** An integer uniform in [0, max], as numpy's legacy random_interval (masked rejection). */
  interval(max: number): number {
    if (max === 0) return 0;
    let mask = max;
    for (const shift of [1, 2, 4, 8, 16]) mask |= mask >>> shift;
    let value: number;
    do value = (this.nextU32() & mask) >>> 0; while (value > max);
    return value;
  }

  /** Shuffles in place, as numpy's legacy RandomState.shuffle on a 1-D array. */
  shuffle<T>(items: T[] | Uint32Array): void {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.interval(i);
      const t = items[i];
      items[i] = items[j];
      items[j] = t as never;
    }
  }

  /** One standard normal, as numpy's legacy randn. */
  randn(): number {
    if (this.gauss !== undefined) {
      const g = this.gauss;
      this.gauss = undefined;
      return g;
    }
    let x1: number;
    let x2: number;
    let r2: number;
    do {
      x1 = 2 * this.random() - 1;
      x2 = 2 * this.random() - 1;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1 || r2 === 0);
    const f = Math.sqrt((-2 * Math.log(r2)) / r2);
    this.gauss = f * x1;
    return f * x2;
  }
}

/**
 * Python's `random` module for what the seed's scripts use of it: `random.seed(n)` with a
 * non-negative integer (MT19937 seeded by init_by_array over the 32-bit words of n) and
 * `random.shuffle(list)` (Fisher-Yates from the end, each index drawn by `_randbelow`, i.e.
 * getrandbits(k) with rejection). The seed orders its mini-batches with it: `random.seed(--seed)`
 * once, then `random.shuffle(idx)` on the same index list every epoch.
 *
 * @example
 * ```ts
 * import { PythonRandom } from "./random.ts";
 * const order = Array.from({ length: 10 }, (_, i) => i);
 * new PythonRandom(1).shuffle(order);
 * console.log(order); // [6, 8, 9, 7, 5, 3, 0, 4, 1, 2], as random.seed(1); random.shuffle(x)
 * ```
 */
export class PythonRandom {
  private mt = new Uint32Array(624);
  private index = 624;

  /** Seeds the generator as Python's `random.seed(seed)` does for a non-negative integer. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`PythonRandom: the seed must be a non-negative integer, got ${seed}`);
    }
    // init_by_array with the key = the seed's 32-bit words, least significant first ([0] for 0).
    const key: number[] = [];
    for (let v = seed; v > 0; v = Math.floor(v / 4294967296)) key.push(v % 4294967296);
    if (key.length === 0) key.push(0);
    const mt = this.mt;
    initGenrand(mt, 19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(624, key.length); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= 624) {
        mt[0] = mt[623];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = 623; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= 624) {
        mt[0] = mt[623];
        i = 1;
      }
    }
    mt[0] = 0x80000000;
  }

  /** `random.getrandbits(k)` for 1 <= k <= 32. */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 1 || k > 32) {
      throw new RangeError(`PythonRandom.getrandbits: k must be in 1..32, got ${k}`);
    }
    if (this.index >= 624) {
      twist(this.mt);
      this.index = 0;
    }
    return temper(this.mt[this.index++]) >>> (32 - k);
  }

  /** `random._randbelow(n)`: uniform in [0, n) by rejection over bit_length(n) bits. */
  randbelow(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) {
      throw new RangeError(`PythonRandom.randbelow: n must be in 1..2^32-1, got ${n}`);
    }
    const k = 32 - Math.clz32(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** `random.shuffle(items)`, in place. */
  shuffle<T>(items: T[] | Uint32Array): void {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t as never;
    }
  }
}
