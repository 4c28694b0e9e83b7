/**
 * Generated product specs (kernel/backend.ts `MatmulSpec`) for the tests of the WebGPU product
 * kernel (tests/matmul_group_test.ts, tests/prologue_test.ts): sizes on and off multiples of 4,
 * either operand transposed, the sums row (of products of batch 1 whose B is not transposed: the
 * fold never asks for it), batches with either operand shared, and operands at offsets.
 */
import type { MatmulSpec } from "../kernel/backend.ts";
import { fc } from "./property.ts";

/**
 * Specs of products with `batches` (drawn from; 1 for none) and, with `offsets`, operands read
 * from offsets into larger buffers.
 */
export function arbProductSpec(
  batches: readonly number[],
  offsets: boolean,
): fc.Arbitrary<MatmulSpec> {
  return fc.record({
    m: fc.integer({ min: 1, max: 37 }),
    k: fc.integer({ min: 1, max: 41 }),
    n: fc.integer({ min: 1, max: 36 }),
    transA: fc.boolean(),
    transB: fc.boolean(),
    sums: fc.boolean(),
    batch: fc.constantFrom(...batches),
    batchA: fc.boolean(),
    batchB: fc.boolean(),
    offA: offsets ? fc.constantFrom(0, 3, 4) : fc.constant(0),
    offB: offsets ? fc.constantFrom(0, 1, 8) : fc.constant(0),
  }).map((c) => ({
    m: c.m,
    k: c.k,
    n: c.n,
    transA: c.transA,
    transB: c.transB,
    ...(c.sums && !c.transB && c.batch === 1 ? { sums: true } : {}),
    ...(c.batch > 1 ? { batch: c.batch, batchA: c.batchA, batchB: c.batchB } : {}),
    ...(c.offA || c.offB ? { offsetA: c.offA, offsetB: c.offB } : {}),
  }));
}
