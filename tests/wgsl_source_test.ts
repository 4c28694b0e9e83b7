/** wgsl/source.ts: kernel sources built once per key, pruned to what `main` reaches. */
import assert from "node:assert/strict";
import { memoKernel, pruneFunctions } from "../wgsl/source.ts";

Deno.test("wgsl source: unreached functions and their comments go, reached ones stay", () => {
  const code = `struct P { n: u32 }
// a comment of a
fn a(x: f32) -> f32 { return b(x) + 1.0; }
fn b(x: f32) -> f32 { if (x > 0.0) { return x; } return -x; }
// unused, with {braces} inside
fn unused() -> f32 { let v = vec2f(1.0, 2.0); { let w = v; } return 0.0; }
@compute @workgroup_size(1)
fn main() { let y = a(2.0); }`;
  const out = pruneFunctions(code);
  assert.match(out, /fn a\(/);
  assert.match(out, /fn b\(/, "reached through a");
  assert.match(out, /\/\/ a comment of a/);
  assert.doesNotMatch(out, /unused/);
  assert.match(out, /struct P/);
  assert.match(out, /fn main\(\) \{ let y = a\(2\.0\); \}$/);
});

Deno.test("wgsl source: one string object per key; functions in arguments count by source", () => {
  let builds = 0;
  const k = memoKernel("test", (n: number, c: { f: () => string }) => {
    builds++;
    return `@compute @workgroup_size(1)\nfn main() { let x = ${n}; let y = ${c.f()}; }`;
  });
  const one = { f: () => "1" };
  const two = { f: () => "2" };
  assert.equal(k(3, one), k(3, one));
  assert.equal(builds, 1);
  assert.notEqual(k(3, two), k(3, one));
  assert.notEqual(k(4, one), k(3, one));
  assert.equal(builds, 3);
});
