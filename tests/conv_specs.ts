/**
 * Pieces of generated convolution cases shared by the tests of the convolution routines
 * (tests/conv_sums_test.ts, tests/wgsl_routines_test.ts, tests/dnnl_test.ts): a spec's kernel
 * fitted to its padded input, and WebGPU's weight-gradient block sizes (any the template takes).
 */
import type { Conv2dSpec } from "../kernel/backend.ts";
import type { ConvPlans } from "../wgsl/conv.ts";
import { fc } from "./property.ts";

/** `s` with its kernel cut to the padded input where it is larger (a spec the routines take). */
export function fitKernel<S extends Conv2dSpec>(s: S): S {
  return { ...s, kh: Math.min(s.kh, s.h + 2 * s.padH), kw: Math.min(s.kw, s.w + 2 * s.padW) };
}

const int = (min: number, max: number) => fc.integer({ min, max });

/**
 * Block sizes of WebGPU's weight-gradient template: several channel blocks, chunks of the
 * reduction, dy transposed or not.
 */
export const weightGradPlanArb: fc.Arbitrary<NonNullable<ConvPlans["weightGrad"]>> = fc.record({
  ...{ rh: int(1, 3), rw: int(1, 3), cc: int(1, 3), fq: int(1, 2) },
  ...{ dyVec: fc.boolean(), chunks: int(1, 4) },
});
