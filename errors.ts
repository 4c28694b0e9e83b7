/**
 * The library's error and the checks of user-given values that raise it: every message says what
 * was wrong and what to do. The bottom of the module graph: it imports nothing.
 *
 * @module
 */

/** The error raised for misuse of a backend or tensor, with a message that says what to do. */
export class SgnError extends Error {
  /** Always "SgnError", so that messages and logs name the kind of error. */
  override name = "SgnError";
}

/**
 * A value as an error message shows it: numbers as JavaScript writes them (NaN, Infinity, -0,
 * where JSON would write null or 0), strings quoted, anything else as JSON, cut to 80 characters.
 *
 * @example
 * ```ts
 * import { showValue } from "./errors.ts";
 * console.log(showValue(NaN), showValue("relu"), showValue([1, 2])); // NaN "relu" [1,2]
 * ```
 */
export function showValue(v: unknown): string {
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
  if (typeof v === "bigint") return `${v}n`;
  if (v === undefined || typeof v === "symbol") return String(v);
  if (typeof v === "function") return "a function";
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * `v` checked as a user-given integer in [min, max] (no upper bound but the exact integers by
 * default); `what` names it in the error ("must be a positive integer" for min 1, "a
 * non-negative integer" for min 0, else the range).
 *
 * @example
 * ```ts
 * import { checkInt } from "./errors.ts";
 * console.log(checkInt(3, "maxPool2d: size", 1)); // 3
 * ```
 */
export function checkInt(
  v: unknown,
  what: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    const bounded = max < Number.MAX_SAFE_INTEGER;
    const kind = !bounded && min === 1
      ? "a positive integer"
      : !bounded && min === 0
      ? "a non-negative integer"
      : `an integer from ${min}${bounded ? ` to ${max}` : " on"}`;
    throw new SgnError(`${what} must be ${kind}, got ${showValue(v)}`);
  }
  return v;
}

/** `v` checked as a list of integers in [min, max] (see {@link checkInt}). */
export function checkInts(
  v: unknown,
  what: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number[] {
  if (!Array.isArray(v)) {
    throw new SgnError(`${what} must be an array of integers, got ${showValue(v)}`);
  }
  return v.map((x, i) => checkInt(x, `${what}[${i}]`, min, max));
}
