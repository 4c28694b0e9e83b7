/**
 * The public API under generated bad arguments: every entry point, called with values of the
 * wrong type, shape or range (NaN, fractions, negative and huge sizes, strings, nulls, nested
 * junk, tensors of other shapes), must either work or throw an SgnError that says what was wrong.
 * Never a TypeError or RangeError from deep inside, and never a hang: a user's mistake must read
 * as one.
 */
import assert from "node:assert/strict";
import { fc, property } from "./property.ts";
import {
  Adam,
  convNet,
  full,
  grad,
  init,
  jvp,
  mlp,
  oneHot,
  ops,
  SGD,
  SGN,
  type Tensor,
  tensor,
  train,
  vjp,
  zeros,
} from "../mod.ts";
import { parseIdx, sineWaves } from "../datasets/mod.ts";

await init({ backend: "cpu" });

/** Values a user gets wrong: of the wrong type, not integral, out of range, or nested junk. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    NaN,
    Infinity,
    -Infinity,
    -1,
    0,
    1.5,
    -0.5,
    1e12,
    2 ** 53,
    "x",
    "",
    "3",
    null,
    undefined,
    true,
    [],
    {},
    [1, "a"],
    [[1, 2], [3]],
    [NaN],
    [-1, 2],
    [1e12, 1e12],
    { shape: [2] },
    () => 1,
    Symbol("s"),
    10n,
  ),
  fc.integer({ min: -3, max: 6 }),
  fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 4 }),
  fc.anything({ maxDepth: 2 }),
);

/** A real tensor of a small random shape, or junk in its place. */
const tensorOrJunk: fc.Arbitrary<unknown> = fc.oneof(
  fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 }).map((shape) =>
    zeros(shape)
  ),
  junk,
);

/** The entry points, each with the arbitrary of its arguments. */
const CALLS: [string, fc.Arbitrary<unknown[]>, (...a: unknown[]) => unknown][] = [
  ["tensor", fc.tuple(junk, junk), (a, b) => tensor(a as never, b as never)],
  ["zeros", fc.tuple(junk), (a) => zeros(a as never)],
  ["full", fc.tuple(junk, junk), (a, b) => full(a as never, b as never)],
  ["ops.add", fc.tuple(tensorOrJunk, tensorOrJunk), (a, b) => ops.add(a as never, b as never)],
  [
    "ops.matmul",
    fc.tuple(tensorOrJunk, tensorOrJunk),
    (a, b) => ops.matmul(a as never, b as never),
  ],
  ["ops.reshape", fc.tuple(tensorOrJunk, junk), (a, b) => ops.reshape(a as never, b as never)],
  ["ops.transpose", fc.tuple(tensorOrJunk, junk), (a, b) => ops.transpose(a as never, b as never)],
  [
    "ops.sum",
    fc.tuple(tensorOrJunk, junk, junk),
    (a, b, c) => ops.sum(a as never, b as never, c as never),
  ],
  ["ops.max", fc.tuple(tensorOrJunk, junk), (a, b) => ops.max(a as never, b as never)],
  ["ops.argmax", fc.tuple(tensorOrJunk, junk), (a, b) => ops.argmax(a as never, b as never)],
  [
    "ops.slice",
    fc.tuple(tensorOrJunk, junk, junk),
    (a, b, c) => ops.slice(a as never, b as never, c as never),
  ],
  [
    "ops.pad",
    fc.tuple(tensorOrJunk, junk, junk),
    (a, b, c) => ops.pad(a as never, b as never, c as never),
  ],
  [
    "ops.broadcastTo",
    fc.tuple(tensorOrJunk, junk),
    (a, b) => ops.broadcastTo(a as never, b as never),
  ],
  ["ops.concat", fc.tuple(junk, junk), (a, b) => ops.concat(a as never, b as never)],
  ["ops.softmax", fc.tuple(tensorOrJunk), (a) => ops.softmax(a as never)],
  [
    "ops.conv2d",
    fc.tuple(tensorOrJunk, tensorOrJunk, junk),
    (a, b, c) => ops.conv2d(a as never, b as never, c as never),
  ],
  [
    "ops.maxPool2d",
    fc.tuple(tensorOrJunk, junk, junk),
    (a, b, c) => ops.maxPool2d(a as never, b as never, c as never),
  ],
  [
    "mlp",
    fc.oneof(
      fc.record({
        inputs: junk,
        hidden: junk,
        outputs: junk,
        activation: junk,
        layerNorm: junk,
        residual: junk,
      }),
      junk,
    ).map((o) => [o]),
    (o) => mlp(o as never),
  ],
  [
    "convNet",
    fc.tuple(junk, junk, junk),
    (a, b, c) => convNet(a as never, b as never, c as never),
  ],
  ["oneHot", fc.tuple(junk, junk), (a, b) => oneHot(a as never, b as never)],
  ["SGN", fc.tuple(junk, junk), (a, b) => new SGN(a as never, b as never).dispose()],
  ["SGD", fc.tuple(junk, junk), (a, b) => new SGD(a as never, b as never).dispose()],
  ["Adam", fc.tuple(junk, junk), (a, b) => new Adam(a as never, b as never).dispose()],
  ["init", fc.tuple(junk), (a) => init(a as never).then(() => init({ backend: "cpu" }))],
  [
    "train",
    fc.tuple(fc.oneof(junk, fc.record({ epochs: junk, batchSize: junk }))),
    (a) => train(a as never),
  ],
  ["jvp", fc.tuple(junk, junk, junk), (f, p, t) => jvp(f as never, p as never, t as never)],
  ["vjp", fc.tuple(junk, junk), (f, p) => vjp(f as never, p as never)],
  [
    "grad",
    fc.tuple(junk, junk),
    (f, p) => (grad(f as never) as (...a: unknown[]) => unknown)(...(Array.isArray(p) ? p : [p])),
  ],
  [
    "SGN.step",
    fc.tuple(junk, junk),
    async (m, l) => {
      const opt = new SGN([zeros([2])]);
      try {
        await opt.step(m as never, l as never);
      } finally {
        opt.dispose();
      }
    },
  ],
  ["sineWaves", fc.tuple(junk, junk), (a, b) => sineWaves(a as never, b as never)],
  [
    "parseIdx",
    fc.tuple(fc.oneof(junk, fc.uint8Array({ maxLength: 40 })), junk, junk),
    (a, b, c) => parseIdx(a as never, b as never, c as never),
  ],
];

for (const [name, args, call] of CALLS) {
  property(
    `the public API: ${name} with bad arguments works or throws an SgnError`,
    args,
    60,
    async (a) => {
      let result: unknown;
      try {
        result = await call(...a);
      } catch (e) {
        const err = e as Error;
        const ok = err instanceof Error && err.name !== "TypeError" &&
          err.name !== "RangeError" && err.name !== "Error" && err.name !== "SyntaxError" &&
          /Error$/.test(err.name);
        if (!ok) {
          assert.fail(
            `${name}(${fc.stringify(a).slice(1, -1)}) threw ${err?.name}: ${err?.message}`,
          );
        }
        assert.ok(err.message.length > 10, `${name}: an error that says what was wrong`);
        return;
      }
      // What worked: a tensor that reads back.
      if (result && typeof result === "object" && "data" in result) {
        await (result as Tensor).data();
      }
    },
  );
}
