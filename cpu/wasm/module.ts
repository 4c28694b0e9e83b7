/**
 * A small WebAssembly binary builder: enough of the format (LEB128 integers, the type, import,
 * function, export and code sections, locals, structured control flow) and of the instruction
 * set (the scalar i32/f32/f64 and the 128-bit SIMD instructions, after their 0xFD prefix) for the
 * kernels of `cpu/wasm/codegen.ts`. Instructions are named as in the specification's text format.
 *
 * @example
 * ```ts
 * import { WasmModule } from "./module.ts";
 * const m = new WasmModule();
 * m.func(["i32", "i32"], ["i32"], (f) => {
 *   f.get(0).get(1).op("i32.add");
 * }, "add");
 * const { add } = new WebAssembly.Instance(new WebAssembly.Module(m.bytes())).exports as {
 *   add: (a: number, b: number) => number;
 * };
 * console.log(add(2, 3)); // 5
 * ```
 *
 * @module
 */

/** A value type. */
export type ValType = "i32" | "i64" | "f32" | "f64" | "v128";

const VALTYPE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`uleb: ${n} is not a natural number`);
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Signed LEB128 (of an integer that fits 64 bits, given as a bigint or a safe number). */
export function sleb(v: number | bigint): number[] {
  let n = BigInt(v);
  const out: number[] = [];
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (b & 0x40) === 0) || (n === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const utf8 = (s: string): number[] => {
  const b = new TextEncoder().encode(s);
  return [...uleb(b.length), ...b];
};

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];

/** Instructions without immediates: one byte, or the SIMD prefix 0xFD and a LEB128 code. */
const PLAIN = {
  unreachable: [0x00],
  nop: [0x01],
  else: [0x05],
  end: [0x0b],
  return: [0x0f],
  drop: [0x1a],
  select: [0x1b],
  "i32.eqz": [0x45],
  "i32.eq": [0x46],
  "i32.ne": [0x47],
  "i32.lt_s": [0x48],
  "i32.lt_u": [0x49],
  "i32.gt_s": [0x4a],
  "i32.gt_u": [0x4b],
  "i32.le_s": [0x4c],
  "i32.le_u": [0x4d],
  "i32.ge_s": [0x4e],
  "i32.ge_u": [0x4f],
  "f32.eq": [0x5b],
  "f32.ne": [0x5c],
  "f32.lt": [0x5d],
  "f32.gt": [0x5e],
  "f32.le": [0x5f],
  "f32.ge": [0x60],
  "f64.eq": [0x61],
  "f64.ne": [0x62],
  "f64.lt": [0x63],
  "f64.gt": [0x64],
  "f64.le": [0x65],
  "f64.ge": [0x66],
  "i32.add": [0x6a],
  "i32.sub": [0x6b],
  "i32.mul": [0x6c],
  "i32.and": [0x71],
  "i32.or": [0x72],
  "i32.xor": [0x73],
  "i32.shl": [0x74],
  "i32.shr_s": [0x75],
  "i32.shr_u": [0x76],
  "f32.abs": [0x8b],
  "f32.neg": [0x8c],
  "f32.sqrt": [0x91],
  "f32.add": [0x92],
  "f32.sub": [0x93],
  "f32.mul": [0x94],
  "f32.div": [0x95],
  "f32.min": [0x96],
  "f32.max": [0x97],
  "f64.abs": [0x99],
  "f64.neg": [0x9a],
  "f64.sqrt": [0x9f],
  "f64.add": [0xa0],
  "f64.sub": [0xa1],
  "f64.mul": [0xa2],
  "f64.div": [0xa3],
  "f64.min": [0xa4],
  "f64.max": [0xa5],
  "i32.trunc_f64_s": [0xaa],
  "f32.convert_i32_s": [0xb2],
  "f32.demote_f64": [0xb6],
  "f64.convert_i32_s": [0xb7],
  "f64.promote_f32": [0xbb],
  "i32.reinterpret_f32": [0xbc],
  "f32.reinterpret_i32": [0xbe],
  // SIMD (0xFD prefix)
  "i32x4.splat": [0xfd, 0x11],
  "i64x2.splat": [0xfd, 0x12],
  "f32x4.splat": [0xfd, 0x13],
  "f64x2.splat": [0xfd, 0x14],
  "i32x4.eq": [0xfd, 0x37],
  "i32x4.ne": [0xfd, 0x38],
  "i32x4.lt_s": [0xfd, 0x39],
  "i32x4.gt_s": [0xfd, 0x3b],
  "f32x4.eq": [0xfd, 0x41],
  "f32x4.ne": [0xfd, 0x42],
  "f32x4.lt": [0xfd, 0x43],
  "f32x4.gt": [0xfd, 0x44],
  "f32x4.le": [0xfd, 0x45],
  "f32x4.ge": [0xfd, 0x46],
  "f64x2.eq": [0xfd, 0x47],
  "f64x2.ne": [0xfd, 0x48],
  "f64x2.lt": [0xfd, 0x49],
  "f64x2.gt": [0xfd, 0x4a],
  "f64x2.le": [0xfd, 0x4b],
  "f64x2.ge": [0xfd, 0x4c],
  "v128.not": [0xfd, 0x4d],
  "v128.and": [0xfd, 0x4e],
  "v128.andnot": [0xfd, 0x4f],
  "v128.or": [0xfd, 0x50],
  "v128.xor": [0xfd, 0x51],
  "v128.bitselect": [0xfd, 0x52],
  "v128.any_true": [0xfd, 0x53],
  "f32x4.demote_f64x2_zero": [0xfd, 0x5e],
  "f64x2.promote_low_f32x4": [0xfd, 0x5f],
  "f32x4.nearest": [0xfd, 0x6a],
  "f64x2.nearest": [0xfd, 0x94, 0x01],
  "i32x4.shl": [0xfd, 0xab, 0x01],
  "i32x4.shr_s": [0xfd, 0xac, 0x01],
  "i32x4.shr_u": [0xfd, 0xad, 0x01],
  "i32x4.add": [0xfd, 0xae, 0x01],
  "i32x4.sub": [0xfd, 0xb1, 0x01],
  "i32x4.min_s": [0xfd, 0xb6, 0x01],
  "i32x4.max_s": [0xfd, 0xb8, 0x01],
  "i64x2.extend_low_i32x4_s": [0xfd, 0xc7, 0x01],
  "i64x2.shl": [0xfd, 0xcb, 0x01],
  "i64x2.shr_s": [0xfd, 0xcc, 0x01],
  "i64x2.shr_u": [0xfd, 0xcd, 0x01],
  "i64x2.add": [0xfd, 0xce, 0x01],
  "i64x2.sub": [0xfd, 0xd1, 0x01],
  "f32x4.abs": [0xfd, 0xe0, 0x01],
  "f32x4.neg": [0xfd, 0xe1, 0x01],
  "f32x4.sqrt": [0xfd, 0xe3, 0x01],
  "f32x4.add": [0xfd, 0xe4, 0x01],
  "f32x4.sub": [0xfd, 0xe5, 0x01],
  "f32x4.mul": [0xfd, 0xe6, 0x01],
  "f32x4.div": [0xfd, 0xe7, 0x01],
  "f32x4.min": [0xfd, 0xe8, 0x01],
  "f32x4.max": [0xfd, 0xe9, 0x01],
  "f32x4.pmin": [0xfd, 0xea, 0x01],
  "f32x4.pmax": [0xfd, 0xeb, 0x01],
  "f64x2.abs": [0xfd, 0xec, 0x01],
  "f64x2.neg": [0xfd, 0xed, 0x01],
  "f64x2.sqrt": [0xfd, 0xef, 0x01],
  "f64x2.add": [0xfd, 0xf0, 0x01],
  "f64x2.sub": [0xfd, 0xf1, 0x01],
  "f64x2.mul": [0xfd, 0xf2, 0x01],
  "f64x2.div": [0xfd, 0xf3, 0x01],
  "f64x2.min": [0xfd, 0xf4, 0x01],
  "f64x2.max": [0xfd, 0xf5, 0x01],
  "f64x2.pmin": [0xfd, 0xf6, 0x01],
  "f64x2.pmax": [0xfd, 0xf7, 0x01],
  "i32x4.trunc_sat_f32x4_s": [0xfd, 0xf8, 0x01],
  "f32x4.convert_i32x4_s": [0xfd, 0xfa, 0x01],
  "i32x4.trunc_sat_f64x2_s_zero": [0xfd, 0xfc, 0x01],
  "f64x2.convert_low_i32x4_s": [0xfd, 0xfe, 0x01],
} as const satisfies Record<string, readonly number[]>;

/** The name of an instruction without immediates. */
export type PlainOp = keyof typeof PLAIN;

/** Memory instructions (opcode bytes; the natural alignment, log2). */
const MEM = {
  "i32.load": [[0x28], 2],
  "f32.load": [[0x2a], 2],
  "f64.load": [[0x2b], 3],
  "i32.store": [[0x36], 2],
  "f32.store": [[0x38], 2],
  "f64.store": [[0x39], 3],
  "v128.load": [[0xfd, 0x00], 4],
  "v128.store": [[0xfd, 0x0b], 4],
  "v128.load32_zero": [[0xfd, 0x5c], 2],
  "v128.load64_zero": [[0xfd, 0x5d], 3],
} as const satisfies Record<string, readonly [readonly number[], number]>;

/** The name of a load or store. */
export type MemOp = keyof typeof MEM;

/** Lane instructions (one lane index immediate). */
const LANE = {
  "i32x4.extract_lane": [0xfd, 0x1b],
  "i32x4.replace_lane": [0xfd, 0x1c],
  "f32x4.extract_lane": [0xfd, 0x1f],
  "f32x4.replace_lane": [0xfd, 0x20],
  "f64x2.extract_lane": [0xfd, 0x21],
  "f64x2.replace_lane": [0xfd, 0x22],
} as const satisfies Record<string, readonly number[]>;

/** The name of a lane instruction. */
export type LaneOp = keyof typeof LANE;

/** The body of one function: locals and instructions, appended by chained calls. */
export class Fn {
  readonly #code: number[] = [];
  readonly #locals: ValType[] = [];
  /** Number of parameters (locals 0..params-1). */
  readonly params: number;

  /** A function body with parameters of these types. */
  constructor(params: readonly ValType[]) {
    this.params = params.length;
  }

  /** Declares a local; returns its index. */
  local(type: ValType): number {
    this.#locals.push(type);
    return this.params + this.#locals.length - 1;
  }

  /** Appends raw bytes. */
  raw(...bytes: number[]): this {
    for (const b of bytes) this.#code.push(b);
    return this;
  }

  /** An instruction without immediates. */
  op(name: PlainOp): this {
    return this.raw(...PLAIN[name]);
  }

  /** Several instructions without immediates, in order. */
  ops(...names: PlainOp[]): this {
    for (const n of names) this.op(n);
    return this;
  }

  /** local.get. */
  get(i: number): this {
    return this.raw(0x20, ...uleb(i));
  }
  /** local.set. */
  set(i: number): this {
    return this.raw(0x21, ...uleb(i));
  }
  /** local.tee. */
  tee(i: number): this {
    return this.raw(0x22, ...uleb(i));
  }

  /** i32.const. */
  i32(v: number): this {
    return this.raw(0x41, ...sleb(v | 0));
  }
  /** f32.const. */
  f32(v: number): this {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    return this.raw(0x43, ...b);
  }
  /** f64.const. */
  f64(v: number): this {
    const b = new Uint8Array(new Float64Array([v]).buffer);
    return this.raw(0x44, ...b);
  }
  /** v128.const from 16 bytes. */
  v128(bytes: Uint8Array): this {
    if (bytes.length !== 16) throw new RangeError("v128.const takes 16 bytes");
    return this.raw(0xfd, 0x0c, ...bytes);
  }
  /** v128.const of four equal f32 lanes. */
  f32x4(v: number): this {
    return this.v128(new Uint8Array(new Float32Array([v, v, v, v]).buffer));
  }
  /** v128.const of two equal f64 lanes. */
  f64x2(v: number): this {
    return this.v128(new Uint8Array(new Float64Array([v, v]).buffer));
  }
  /** v128.const of two equal i64 lanes. */
  i64x2(v: bigint): this {
    return this.v128(new Uint8Array(new BigInt64Array([v, v]).buffer));
  }
  /** v128.const of four equal i32 lanes. */
  i32x4(v: number): this {
    return this.v128(new Uint8Array(new Int32Array([v, v, v, v]).buffer));
  }

  /** A load or store with a constant byte offset (alignment: the natural one). */
  mem(name: MemOp, offset = 0): this {
    const [code, align] = MEM[name];
    return this.raw(...code, ...uleb(align), ...uleb(offset));
  }

  /** A lane instruction. */
  lane(name: LaneOp, lane: number): this {
    return this.raw(...LANE[name], lane);
  }

  /** A lane load or store (memarg, then the lane index). */
  memLane(name: "v128.store64_lane" | "v128.load64_lane", lane: number, offset = 0): this {
    const code = name === "v128.store64_lane" ? 0x5b : 0x57;
    return this.raw(0xfd, code, 3, ...uleb(offset), lane);
  }

  /** i8x16.shuffle with 16 byte indices into the two operands (0-15 first, 16-31 second). */
  shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16) throw new RangeError("i8x16.shuffle takes 16 lane indices");
    return this.raw(0xfd, 0x0d, ...lanes);
  }

  /** block (no result). */
  block(): this {
    return this.raw(0x02, 0x40);
  }
  /** loop (no result). */
  loop(): this {
    return this.raw(0x03, 0x40);
  }
  /** if (no result). */
  if(): this {
    return this.raw(0x04, 0x40);
  }
  /** end of a block, loop, if or the function. */
  end(): this {
    return this.op("end");
  }
  /** br to the label `depth` levels out. */
  br(depth: number): this {
    return this.raw(0x0c, ...uleb(depth));
  }
  /** br_if to the label `depth` levels out. */
  brIf(depth: number): this {
    return this.raw(0x0d, ...uleb(depth));
  }
  /** call. */
  call(index: number): this {
    return this.raw(0x10, ...uleb(index));
  }

  /** The function's code-section entry: locals (run-length grouped) and the body, sized. */
  encode(): number[] {
    const groups: number[][] = [];
    let i = 0;
    while (i < this.#locals.length) {
      let j = i;
      while (j < this.#locals.length && this.#locals[j] === this.#locals[i]) j++;
      groups.push([...uleb(j - i), VALTYPE[this.#locals[i]]]);
      i = j;
    }
    const body = [...vec(groups), ...this.#code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

/**
 * A module under construction: function types, imported functions, a memory import, functions
 * and exports.
 */
export class WasmModule {
  readonly #types: string[] = [];
  readonly #imports: { module: string; name: string; type: number }[] = [];
  readonly #funcs: { type: number; fn: Fn }[] = [];
  readonly #exports: { name: string; index: number }[] = [];
  #memory?: { module: string; name: string; min: number };

  /**
   * Imports a function (`module`.`name`) and returns its index (for `call`). Imported functions
   * come first in the index space, so every import is declared before the first function.
   */
  importFunc(
    module: string,
    name: string,
    params: readonly ValType[],
    results: readonly ValType[],
  ): number {
    if (this.#funcs.length) {
      throw new Error(`WasmModule: import ${module}.${name} declared after a function`);
    }
    return this.#imports.push({ module, name, type: this.#type(params, results) }) - 1;
  }

  /** Imports a memory (`module`.`name`) of at least `min` pages. */
  importMemory(module: string, name: string, min = 0): this {
    this.#memory = { module, name, min };
    return this;
  }

  #type(params: readonly ValType[], results: readonly ValType[]): number {
    const enc = [
      0x60,
      ...vec(params.map((t) => [VALTYPE[t]])),
      ...vec(results.map((t) => [VALTYPE[t]])),
    ]
      .join(",");
    let i = this.#types.indexOf(enc);
    if (i < 0) i = this.#types.push(enc) - 1;
    return i;
  }

  /**
   * Declares a function and returns its index (for `call`), building its body now or later:
   * `build` may be omitted and the returned body filled before {@link WasmModule.bytes}.
   */
  func(
    params: readonly ValType[],
    results: readonly ValType[],
    build?: (f: Fn) => void,
    exportName?: string,
  ): number {
    const fn = new Fn(params);
    const index = this.#imports.length +
      this.#funcs.push({ type: this.#type(params, results), fn }) - 1;
    if (exportName !== undefined) this.#exports.push({ name: exportName, index });
    build?.(fn);
    return index;
  }

  /** The body of function `index` (to fill one declared without a builder). */
  body(index: number): Fn {
    return this.#funcs[index - this.#imports.length].fn;
  }

  /** The binary module. */
  bytes(): Uint8Array<ArrayBuffer> {
    const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
    const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    out.push(...section(1, vec(this.#types.map((t) => t.split(",").map(Number)))));
    const imports = this.#imports.map((i) => [
      ...utf8(i.module),
      ...utf8(i.name),
      0x00,
      ...uleb(i.type),
    ]);
    if (this.#memory) {
      const m = this.#memory;
      imports.push([...utf8(m.module), ...utf8(m.name), 0x02, 0x00, ...uleb(m.min)]);
    }
    if (imports.length) out.push(...section(2, vec(imports)));
    out.push(...section(3, vec(this.#funcs.map((f) => uleb(f.type)))));
    out.push(
      ...section(7, vec(this.#exports.map((e) => [...utf8(e.name), 0x00, ...uleb(e.index)]))),
    );
    out.push(...section(10, vec(this.#funcs.map((f) => f.fn.encode()))));
    return new Uint8Array(out);
  }
}

/** A tiny module using a SIMD instruction: validates exactly where WebAssembly SIMD is there. */
export function simdAvailable(): boolean {
  if (typeof WebAssembly === "undefined") return false;
  const m = new WasmModule();
  m.func([], ["v128"], (f) => {
    f.f32x4(1).f32x4(2).op("f32x4.add");
  });
  try {
    return WebAssembly.validate(m.bytes());
  } catch {
    return false;
  }
}
