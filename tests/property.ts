/**
 * Property tests: generated cases (npm:fast-check) instead of hand-picked ones, so that a bug
 * nobody listed still fails a test. fast-check shrinks a failing case to a small one and names
 * the seed and path that replay it.
 *
 * Two modes, one definition:
 * - `deno task test`: every property runs a bounded number of cases from a fixed seed, so the
 *   suite is repeatable and stays within CI's time.
 * - `deno task fuzz` (tools/fuzz.ts): `SGN_FUZZ_SECONDS=N` gives every property N seconds of
 *   cases from a fresh random seed (`SGN_FUZZ_SEED` chooses it); a failure prints the seed and
 *   path, and `SGN_FUZZ_SEED=<seed> SGN_FUZZ_PATH=<path>` replays exactly that case.
 *
 * Property tests are named `property: ...`, which is how `deno task fuzz` finds them.
 *
 * @module
 */
// The project has no import map: full npm: specifiers everywhere (see README).
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@4.11.0";

export { fc };

/** The seed of the repeatable runs in `deno task test`. */
export const FIXED_SEED = 20261205;

/** Seconds per property in fuzz mode; undefined in the repeatable mode. */
export function fuzzSeconds(): number | undefined {
  const s = Deno.env.get("SGN_FUZZ_SECONDS");
  if (s === undefined || s === "") return undefined;
  const n = Number(s);
  if (!(n > 0)) {
    throw new Error(`SGN_FUZZ_SECONDS must be a positive number of seconds, not "${s}"`);
  }
  return n;
}

function fuzzSeed(): number {
  const s = Deno.env.get("SGN_FUZZ_SEED");
  if (s !== undefined && s !== "") {
    const n = Number(s);
    if (!Number.isInteger(n)) throw new Error(`SGN_FUZZ_SEED must be an integer, not "${s}"`);
    return n;
  }
  return (Math.random() * 2 ** 31) | 0;
}

/**
 * The fast-check parameters for one property: `runs` cases from the fixed seed in the test
 * suite; in fuzz mode as many as fit in SGN_FUZZ_SECONDS from a random (printed) seed.
 */
export function params<T>(name: string, runs: number): fc.Parameters<T> {
  const secs = fuzzSeconds();
  if (secs === undefined) return { seed: FIXED_SEED, numRuns: runs, endOnFailure: false };
  const seed = fuzzSeed();
  const path = Deno.env.get("SGN_FUZZ_PATH") || undefined;
  console.log(`[sgn fuzz] ${name}: seed ${seed}, ${secs} s`);
  return {
    seed,
    ...(path ? { path, numRuns: 1 } : {
      numRuns: Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: secs * 1000,
      markInterruptAsFailure: false,
    }),
  };
}

/**
 * Registers `property: <name>` as a Deno test that checks an asynchronous property over the
 * generated values. A failure reports the shrunk counterexample, the seed and the path.
 *
 * @example
 * ```ts ignore
 * property("reshape keeps the values", fc.array(fc.double()), 100, async (xs) => { ... });
 * ```
 */
export function property<T>(
  name: string,
  arb: fc.Arbitrary<T>,
  runs: number,
  check: (value: T) => Promise<void> | void,
  options: { ignore?: boolean } = {},
): void {
  Deno.test({
    name: `property: ${name}`,
    ignore: options.ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      // In fuzz mode the time limit ends the property without waiting for the case under way;
      // it is awaited here, so that it does not run on into the next test (whose buffer counts
      // it would change).
      let current: Promise<unknown> = Promise.resolve();
      try {
        await fc.assert(
          fc.asyncProperty(arb, async (v) => {
            const run = Promise.resolve(check(v));
            current = run.catch(() => {});
            await run;
          }),
          params(name, runs),
        );
      } finally {
        await current;
      }
    },
  });
}
