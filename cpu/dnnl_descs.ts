/**
 * Our convolution and pooling specs in oneDNN's terms: the memory descriptors (NCHW / OIHW, or
 * left to the primitive), the strides and paddings (oneDNN's right and bottom padding, negative
 * where a pooling border is dropped), and the forward operation descriptors that the backward
 * ones take as their hint.
 *
 * @module
 */

import type { Conv2dSpec, Pool2dSpec } from "../kernel/backend.ts";
import { conv2dOutSize, pool2dOutSize } from "../kernel/backend.ts";
import {
  ANY,
  check,
  CONVOLUTION_DIRECT,
  dims,
  F32,
  FORWARD_TRAINING,
  type Lib,
  MD_BYTES,
  NCHW,
  OP_DESC_BYTES,
  POOLING_MAX,
  X,
} from "./dnnl_api.ts";

/** A float32 memory descriptor: a vector, or 4-d NCHW (or `ANY` as a last entry). */
function md(L: Lib, ...shape: number[]): Uint8Array {
  const m = new Uint8Array(MD_BYTES);
  const tag = shape.length === 5 ? shape.pop()! : shape.length === 1 ? X : NCHW;
  check(
    L.dnnl_memory_desc_init_by_tag(m, shape.length, dims(...shape), F32, tag),
    "memory descriptor",
  );
  return m;
}

/**
 * The convolution's forward operation descriptor (also the hint of the backward ones), with a
 * bias [f] when `bias`; in `preferred` layouts, the descriptors leave the layout of the source,
 * weights and destination to oneDNN (`format_tag_any`), and `plain` holds ours.
 */
export function convDescs(L: Lib, s: Conv2dSpec, bias: boolean, preferred: boolean) {
  const [ho, wo] = conv2dOutSize(s);
  const plain = {
    src: md(L, s.n, s.c, s.h, s.w),
    wei: md(L, s.f, s.c, s.kh, s.kw),
    dst: md(L, s.n, s.f, ho, wo),
  };
  const op = preferred
    ? {
      src: md(L, s.n, s.c, s.h, s.w, ANY),
      wei: md(L, s.f, s.c, s.kh, s.kw, ANY),
      dst: md(L, s.n, s.f, ho, wo, ANY),
    }
    : plain;
  const strides = dims(s.strideH, s.strideW);
  const pad = dims(s.padH, s.padW);
  // oneDNN's right/bottom padding: what makes the last window end at the last output.
  const padR = dims(
    (ho - 1) * s.strideH + s.kh - s.h - s.padH,
    (wo - 1) * s.strideW + s.kw - s.w - s.padW,
  );
  const fwd = new Uint8Array(OP_DESC_BYTES);
  const b = bias ? md(L, s.f) : new Uint8Array(0);
  check(
    bias
      ? L.dnnl_convolution_forward_desc_init_bias(
        fwd,
        FORWARD_TRAINING,
        CONVOLUTION_DIRECT,
        op.src,
        op.wei,
        b,
        op.dst,
        strides,
        pad,
        padR,
      )
      : L.dnnl_convolution_forward_desc_init(
        fwd,
        FORWARD_TRAINING,
        CONVOLUTION_DIRECT,
        op.src,
        op.wei,
        null,
        op.dst,
        strides,
        pad,
        padR,
      ),
    "convolution descriptor",
  );
  return { plain, op, b, strides, pad, padR, fwd };
}

/**
 * Max pooling's forward operation descriptor (also the hint of the backward one) and the
 * descriptors of its source and destination.
 */
export function poolDescs(L: Lib, s: Pool2dSpec) {
  const [ho, wo] = pool2dOutSize(s);
  const src = md(L, s.n, s.c, s.h, s.w);
  const dst = md(L, s.n, s.c, ho, wo);
  const strides = dims(s.strideH, s.strideW);
  const kernel = dims(s.kh, s.kw);
  const pad = dims(0, 0);
  // Windows that would cross the border are dropped: negative right padding says so.
  const padR = dims((ho - 1) * s.strideH + s.kh - s.h, (wo - 1) * s.strideW + s.kw - s.w);
  const fwd = new Uint8Array(OP_DESC_BYTES);
  check(
    L.dnnl_pooling_forward_desc_init(
      fwd,
      FORWARD_TRAINING,
      POOLING_MAX,
      src,
      dst,
      strides,
      kernel,
      pad,
      padR,
    ),
    "pooling descriptor",
  );
  return { src, dst, strides, kernel, pad, padR, fwd };
}
