/**
 * oneDNN's version-2 C API as cpu/dnnl.ts calls it through Deno's FFI: the functions
 * (dnnl.h), the enumerations and argument indices of dnnl_types.h, the room its descriptors
 * take, and the status check every call goes through.
 *
 * @module
 */

const P = "pointer" as const;
const B = "buffer" as const;
const ok = "i32" as const; // dnnl_status_t

export const SYMBOLS = {
  dnnl_version: { parameters: [], result: P },
  dnnl_engine_create: { parameters: [B, "i32", "usize"], result: ok },
  dnnl_stream_create: { parameters: [B, P, "u32"], result: ok },
  dnnl_memory_desc_init_by_tag: { parameters: [B, "i32", B, "i32", "i32"], result: ok },
  dnnl_convolution_forward_desc_init: {
    parameters: [B, "i32", "i32", B, B, P, B, B, B, B],
    result: ok,
  },
  dnnl_convolution_forward_desc_init_bias: {
    name: "dnnl_convolution_forward_desc_init",
    parameters: [B, "i32", "i32", B, B, B, B, B, B, B],
    result: ok,
  },
  dnnl_convolution_backward_data_desc_init: {
    parameters: [B, "i32", B, B, B, B, B, B],
    result: ok,
  },
  dnnl_convolution_backward_weights_desc_init: {
    parameters: [B, "i32", B, B, P, B, B, B, B],
    result: ok,
  },
  dnnl_pooling_forward_desc_init: { parameters: [B, "i32", "i32", B, B, B, B, B, B], result: ok },
  dnnl_pooling_backward_desc_init: { parameters: [B, "i32", B, B, B, B, B, B], result: ok },
  dnnl_primitive_desc_create: { parameters: [B, B, P, P, P], result: ok },
  dnnl_primitive_desc_query: { parameters: [P, "i32", "i32", B], result: ok },
  dnnl_primitive_desc_query_md: { parameters: [P, "i32", "i32"], result: P },
  dnnl_memory_desc_get_size: { parameters: [P], result: "usize" },
  dnnl_memory_desc_equal: { parameters: [P, P], result: "i32" },
  dnnl_reorder_primitive_desc_create: { parameters: [B, P, P, P, P, P], result: ok },
  dnnl_primitive_create: { parameters: [B, P], result: ok },
  dnnl_memory_create: { parameters: [B, P, P, P], result: ok },
  dnnl_memory_set_data_handle: { parameters: [P, P], result: ok },
  dnnl_primitive_execute: { parameters: [P, P, "i32", B], result: ok, nonblocking: false },
  dnnl_stream_wait: { parameters: [P], result: ok },
} as const;

export type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// Enumerations of dnnl_types.h (oneDNN 2.x).
export const F32 = 3; // dnnl_f32
export const NCHW = 5; // dnnl_nchw (== dnnl_oihw)
export const X = 2; // dnnl_x (== dnnl_a): a plain vector
export const ANY = 1; // dnnl_format_tag_any: the primitive picks its layout
export const FORWARD_TRAINING = 64;
export const CONVOLUTION_DIRECT = 1;
export const POOLING_MAX = 0x1ff;
export const CPU = 1;
export const STREAM_DEFAULT = 1;
export const QUERY_IMPL_INFO = 8;
export const QUERY = {
  src: 129,
  diffSrc: 130,
  weights: 131,
  diffWeights: 132,
  dst: 133,
  diffDst: 134,
  workspace: 135,
} as const;
export const ARG = {
  src: 1,
  dst: 17,
  weights: 33,
  bias: 41,
  workspace: 64,
  diffSrc: 129,
  diffDst: 145,
  diffWeights: 161,
} as const;

/** Room for a dnnl_memory_desc_t (696 bytes in 2.6) and for operation descriptors (< 6 KiB). */
export const MD_BYTES = 2048;
export const OP_DESC_BYTES = 16384;

const STATUS = [
  "success",
  "out of memory",
  "invalid arguments",
  "unimplemented",
  "iterator ends",
  "runtime error",
  "not required",
];

/** Throws unless a oneDNN call succeeded, naming the call and its status. */
export function check(status: number, what: string): void {
  if (status !== 0) {
    throw new Error(`oneDNN ${what} failed: ${STATUS[status] ?? `status ${status}`}`);
  }
}

/** A 12-entry int64 dims array (dnnl_dims_t) holding `values`. */
export function dims(...values: number[]): BigInt64Array {
  const d = new BigInt64Array(12);
  values.forEach((v, i) => (d[i] = BigInt(v)));
  return d;
}
