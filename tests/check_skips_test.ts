/** tools/check_skips.ts: which lines of a test log are skips, and which skips are expected. */
import assert from "node:assert/strict";
import { expectedSkips, skipsOf } from "../tools/check_skips.ts";

Deno.test("check_skips: ignored tests, steps and SKIP lines are found; others are not", () => {
  const log = [
    "\x1b[0m\x1b[38;5;245m./tests/a_test.ts => \x1b[0mfirst test ... \x1b[0m\x1b[33mignored\x1b[0m (0ms)",
    "second test ... ok (3ms)",
    "outer ... inner step ... ignored (0ms)",
    "[sgn tests] SKIP disk full: cannot mount a tmpfs here (permission denied)",
    "[sgn tests] WebGPU adapter: lavapipe",
    "ok | 2 passed | 0 failed | 2 ignored (1s)",
  ].join("\n");
  assert.deepEqual(skipsOf(log), [
    { test: "first test" },
    { test: "inner step" },
    { test: "disk full", reason: "cannot mount a tmpfs here (permission denied)" },
  ]);
  const list = expectedSkips("# comment\n^disk full$\tneeds root\n\n");
  assert.equal(list.length, 1);
  assert.equal(list[0][1], "needs root");
  assert.ok(list[0][0].test("disk full") && !list[0][0].test("first test"));
});
