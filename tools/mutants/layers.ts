/**
 * Mutants of the layers and activations beyond the seed's (softplus, erf, GELU, layer
 * normalization, average pooling, residual blocks), aimed at tests/layers_test.ts,
 * tests/layers_networks_test.ts and the generated networks of tests/property_networks_test.ts:
 * a wrong derivative constant, a derivative read from the output, a scale or an epsilon in the
 * wrong place, windows grouped wrongly, a skip connection dropped, an initialization or a table
 * entry off, a sign in WGSL.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const LAYERS = ["tests/layers_test.ts", "tests/layers_networks_test.ts"];

/** Layer and activation mutants (run with `--only "[layers]"`). */
export const MUTANTS: Mutant[] = [
  {
    file: "autodiff/derivatives.ts",
    find: "softplus: unary((x) => o.sigmoid(x)),",
    replace: "softplus: unary((_, out) => o.sigmoid(out)),",
    what: "[layers] softplus' derivative read as sigmoid of the output instead of the input",
    tests: LAYERS,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "o.mul(o.exp(o.neg(o.square(x))), TWO_OVER_SQRT_PI)",
    replace: "o.mul(o.exp(o.neg(o.square(x))), 1.12)",
    what: "[layers] erf's derivative with a wrong constant (1.12 for 2/sqrt(pi))",
    tests: LAYERS,
  },
  {
    file: "autodiff/ops.ts",
    find: "add(erf(mul(x, Math.SQRT1_2)), 1)",
    replace: "add(erf(mul(x, 0.5)), 1)",
    what: "[layers] gelu takes erf(x / 2) instead of erf(x / sqrt(2))",
    tests: LAYERS,
  },
  {
    file: "autodiff/ops.ts",
    find: "return div(centered, sqrt(add(variance, eps)));",
    replace: "return div(centered, add(sqrt(variance), eps));",
    what: "[layers] layerNorm adds epsilon to the standard deviation instead of the variance",
    tests: LAYERS,
  },
  {
    file: "autodiff/ops.ts",
    find: "const variance = mean(square(centered), axes, true);",
    replace: "const variance = mean(square(x), axes, true);",
    what: "[layers] layerNorm's variance of the uncentered values",
    tests: LAYERS,
  },
  {
    file: "autodiff/ops.ts",
    find: "return mean(reshape(covered, [n, c, ho, kh, wo, kw]), [3, 5]);",
    replace: "return mean(reshape(covered, [n, c, kh, ho, kw, wo]), [2, 4]);",
    what: "[layers] avgPool2d's tiling path averages strided samples instead of blocks",
    tests: LAYERS,
  },
  {
    file: "autodiff/ops.ts",
    find: "if (sh === kh && sw === kw) {",
    replace: "if (sh >= kh && sw >= kw) {",
    what: "[layers] avgPool2d's reshape path taken for spaced windows (stride > size)",
    tests: LAYERS,
  },
  {
    file: "models/conv_net.ts",
    find: "            return o.add(x, y);",
    replace: "            return y;",
    what: "[layers] a RES block drops its skip connection",
    tests: LAYERS,
  },
  {
    file: "models/network_base.ts",
    find: 'if (how === "ones") values.fill(1);',
    replace: 'if (how === "ones") values.fill(0);',
    what: "[layers] layer normalization's gains start at 0",
    tests: LAYERS,
  },
  {
    file: "models/mlp.ts",
    find: "h = skip ? o.add(h, z) : z;",
    replace: "h = skip ? o.add(z, z) : z;",
    what: "[layers] mlp's residual layers add their output twice instead of their input",
    tests: LAYERS,
  },
  {
    file: "kernel/erf.ts",
    find: "0.9229001282564583",
    replace: "0.9229001282564585",
    what: "[layers] one entry of erf's table 2 ulps off",
    tests: LAYERS,
  },
  {
    file: "kernel/erf.ts",
    find: "p *= h / (j + 2);",
    replace: "p *= h / (j + 1);",
    what: "[layers] erf's series with the wrong factorials",
    tests: LAYERS,
  },
  {
    file: "wgsl/codegen.ts",
    find: "  return select(r, -r, x < 0.0);",
    replace: "  return select(r, r, x < 0.0);",
    what: "[layers] WGSL erf loses the sign of negative inputs from -1/2 down",
    tests: LAYERS,
  },
  {
    file: "cpu/wasm/math.ts",
    find: '  c(0).op(`${t}.eq`).op("v128.bitselect");\n  f.get(x).get(x);',
    replace: '  c(0).op(`${t}.ne`).op("v128.bitselect");\n  f.get(x).get(x);',
    what:
      "[layers] WebAssembly softplus takes e where u - 1 is not 0 (log1p's correction inverted)",
    tests: ["tests/wasm_test.ts"],
  },
];
