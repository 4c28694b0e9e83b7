/**
 * The error function to the float64 nearest, as an oracle for kernel/erf.ts and the GELU tests:
 * erf(x) = x F(x^2), F(s) = 2/sqrt(pi) sum_n (-s)^n / (n! (2n + 1)) (the Taylor series, which
 * converges everywhere), summed in BigInt fixed point with 400 fraction bits (pi by Machin's
 * formula, its square root by Newton's iteration), then rounded once to the nearest float64
 * (ties to even, subnormals included). Shares nothing with the library's scheme.
 */

/** Fraction bits of the fixed-point values. */
const P = 400n;
const ONE = 1n << P;

/** floor(sqrt(n)) for n >= 0. */
function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << (BigInt(n.toString(2).length) / 2n + 1n);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** atan(1 / k) in fixed point (its alternating series). */
function atanInverse(k: bigint): bigint {
  let sum = 0n;
  let power = ONE / k;
  for (let n = 0n; power !== 0n; n++) {
    sum += (n % 2n === 0n ? power : -power) / (2n * n + 1n);
    power /= k * k;
  }
  return sum;
}

/** pi = 16 atan(1/5) - 4 atan(1/239), and 2 / sqrt(pi), in fixed point. */
const PI = 16n * atanInverse(5n) - 4n * atanInverse(239n);
const TWO_OVER_SQRT_PI = (2n * ONE * ONE) / isqrt(PI * ONE);

/** x = m 2^e exactly, m an integer (0 for x = 0). */
function decompose(x: number): { m: bigint; e: bigint } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = (bits >> 52n) & 0x7ffn;
  let m = bits & ((1n << 52n) - 1n);
  if (biased !== 0n) m |= 1n << 52n;
  const e = (biased === 0n ? 1n : biased) - 1075n;
  return { m: bits >> 63n ? -m : m, e };
}

/** The float64 nearest to v 2^k (ties to even). */
function nearest(v: bigint, k: bigint): number {
  if (v === 0n) return 0;
  const sign = v < 0n ? -1 : 1;
  const a = v < 0n ? -v : v;
  const len = BigInt(a.toString(2).length);
  // Keep 53 significant bits, fewer where the result is subnormal (its last bit is 2^-1074).
  let shift = len - 53n;
  if (k + shift < -1074n) shift = -1074n - k;
  if (shift <= 0n) return sign * Number(a) * 2 ** Number(k);
  let m = a >> shift;
  const rest = a - (m << shift);
  const half = 1n << (shift - 1n);
  if (rest > half || (rest === half && (m & 1n) === 1n)) m++;
  return sign * Number(m) * 2 ** Number(k + shift);
}

/** erf(x) rounded to the nearest float64 (NaN, +-Inf and +-0 as erf gives them). */
export function erfReference(x: number): number {
  if (Number.isNaN(x) || x === 0) return x;
  if (!Number.isFinite(x)) return Math.sign(x);
  // Beyond 6.5, 1 - erf(x) < 2^-60: the nearest float64 is +-1.
  if (Math.abs(x) > 6.5) return Math.sign(x);
  const { m, e } = decompose(x);
  // s = x^2 = m^2 2^(2e) in fixed point.
  const sh = 2n * e + P;
  const s = sh >= 0n ? (m * m) << sh : (m * m) >> -sh;
  let term = ONE;
  let sum = 0n;
  for (let n = 0n; term !== 0n; n++) {
    sum += term / (2n * n + 1n);
    term = -((term * s) >> P) / (n + 1n);
  }
  const f = (sum * TWO_OVER_SQRT_PI) >> P;
  return nearest(m * f, e - P);
}

/** The float64 ulp at the magnitude of `v` (the subnormal spacing below 2^-1022). */
export function ulp64(v: number): number {
  const a = Math.abs(v);
  if (a < 2 ** -1022) return 2 ** -1074;
  let p = Math.floor(Math.log2(a));
  if (2 ** p > a) p--;
  if (2 ** (p + 1) <= a) p++;
  return 2 ** (p - 52);
}

/** The float32 ulp at the magnitude of `v` (the subnormal spacing below 2^-126). */
export function ulp32(v: number): number {
  const a = Math.abs(v);
  if (a < 2 ** -126) return 2 ** -149;
  let p = Math.floor(Math.log2(a));
  if (2 ** p > a) p--;
  if (2 ** (p + 1) <= a) p++;
  return 2 ** (p - 23);
}

/** Gauss-Legendre's 5 nodes on [-1, 1] and their weights (closed forms). */
const GL_NODES = [
  0,
  Math.sqrt(5 - 2 * Math.sqrt(10 / 7)) / 3,
  -Math.sqrt(5 - 2 * Math.sqrt(10 / 7)) / 3,
  Math.sqrt(5 + 2 * Math.sqrt(10 / 7)) / 3,
  -Math.sqrt(5 + 2 * Math.sqrt(10 / 7)) / 3,
];
const GL_WEIGHTS = [
  128 / 225,
  (322 + 13 * Math.sqrt(70)) / 900,
  (322 + 13 * Math.sqrt(70)) / 900,
  (322 - 13 * Math.sqrt(70)) / 900,
  (322 - 13 * Math.sqrt(70)) / 900,
];

/**
 * erf(x) as 2/sqrt(pi) times the integral of e^(-t^2) over [0, x], by 5-point Gauss-Legendre
 * quadrature on 24 equal panels (each at most 1/4 wide; +-1 beyond 6): within about 1e-15 of
 * erf, relative, and smooth in x (the panels scale with x), so central differences of it are
 * clean. Thousands of times faster than {@link erfReference}, for references of whole networks.
 */
export function erfQuadrature(x: number): number {
  if (Number.isNaN(x)) return x;
  if (Math.abs(x) >= 6) return Math.sign(x);
  const panels = 24;
  const h = x / panels;
  let sum = 0;
  for (let p = 0; p < panels; p++) {
    const mid = (p + 0.5) * h;
    for (let i = 0; i < 5; i++) {
      const t = mid + (GL_NODES[i] * h) / 2;
      sum += GL_WEIGHTS[i] * Math.exp(-t * t);
    }
  }
  return (sum * h) / Math.sqrt(Math.PI);
}
