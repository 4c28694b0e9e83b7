/**
 * Mutants of the derivative rules, the transformations, the losses and the networks, aimed at
 * the property tests of tests/property_networks_test.ts, property_ties_test.ts and
 * property_programs_test.ts: ties broken the other way in one rule, a derivative read from the
 * wrong operand, a Hessian product scaled wrongly, a network that drops or adds a layer's
 * nonlinearity, and the pooling argmax of the oracle and of WebGPU (the native one's is in
 * core.ts); and at tests/autodiff_rules_test.ts: a unary primitive's derivative row or lowering
 * wrong.
 *
 * @module
 */
import type { Mutant } from "../mutate.ts";

const PROP = [
  "tests/property_networks_test.ts",
  "tests/property_ties_test.ts",
  "tests/property_programs_test.ts",
];
const RULES = ["tests/autodiff_rules_test.ts"];

/** Derivative-rule, loss and network mutants (run with `--only "[ad]"`). */
export const MUTANTS: Mutant[] = [
  {
    file: "autodiff/derivatives.ts",
    find: "needs[1] ? unbroadcast(o.mul(ct, o.sub(1, m)), b.shape) : null,",
    replace: "needs[1] ? unbroadcast(o.mul(ct, o.greaterEqual(b, a)), b.shape) : null,",
    what: "[ad] maximum's VJP gives b its share where b >= a: at a tie both operands get it",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "relu: unary((_, out) => o.step(out)),",
    replace: "relu: unary((_, out) => o.greaterEqual(out, 0)),",
    what: "[ad] relu's derivative at 0 taken as 1 instead of the documented 0",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "return o.div(o.sum(o.mul(t, mask), p.axes, p.keepdims), count);",
    replace: "return o.sum(o.mul(t, mask), p.axes, p.keepdims);",
    what: "[ad] max reduction's JVP sums tied tangents instead of sharing (VJP still shares)",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: 'jvp: ([x], [_, tv], p) => tv && bind("maxPool2d", [x, tv], poolOf(p)),',
    replace: 'jvp: ([x], [_, tv], p) => tv && bind("maxPool2d", [tv, tv], poolOf(p)),',
    what: "[ad] max-pool's JVP pools the tangent by its own maximum, not at the input's argmax",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "t && o.mul(s, o.sub(t, o.sum(o.mul(s, t), -1, true)))",
    replace: "t && o.mul(s, o.sub(t, o.sum(o.mul(s, t), 0, true)))",
    what: "[ad] softmax's JVP sums over the first axis instead of the class axis",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "t && o.sub(t, o.sum(o.mul(o.exp(out), t), -1, true))",
    replace: "t && o.sub(t, o.sum(o.mul(out, t), -1, true))",
    what: "[ad] logSoftmax's JVP weighs by log-probabilities instead of probabilities",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "o.matmul(ct, b, { transB: !transB })",
    replace: "o.matmul(ct, b, { transB })",
    what: "[ad] matmul's VJP for A forgets to transpose B (only a square B passes the shapes)",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "needs[1] ? unbroadcast(o.neg(o.mul(q, out)), b.shape) : null,",
    replace: "needs[1] ? unbroadcast(o.mul(q, out), b.shape) : null,",
    what: "[ad] div's VJP for the divisor loses its sign",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "tanh: unary((_, t) =>",
    replace: "tanh: unary((t, _) =>",
    what: "[ad] tanh's derivative 1 - t^2 read from the input instead of the output",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "needs[1] ? cwg(x, ct, { ...convOf(p), kh: w.shape[2], kw: w.shape[3] }) : null,",
    replace: "needs[1] ? cwg(x, ct, { ...convOf(p), kh: w.shape[3], kw: w.shape[2] }) : null,",
    what: "[ad] conv2d's weight gradient with kernel height and width swapped",
    tests: PROP,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "abs: unary((x) => o.sign(x)),",
    replace: "abs: unary((x) => o.step(x)),",
    what: "[ad] abs' taken as step(x): 0 instead of -1 below zero",
    tests: RULES,
  },
  {
    file: "autodiff/derivatives.ts",
    find: "sign: unary(null),",
    replace: "sign: unary((x) => o.abs(x)),",
    what: "[ad] sign given a derivative where it is piecewise constant",
    tests: RULES,
  },
  {
    file: "autodiff/primitives.ts",
    find: "lower: ([x]) => k.unary(op, x),",
    replace: 'lower: ([x]) => k.unary(op === "abs" ? "relu" : op, x),',
    what: "[ad] one unary primitive lowered to another row of the op table",
    tests: RULES,
  },
  {
    file: "autodiff/traces.ts",
    find: 'ct[j] = ct[j] ? bind("add", [ct[j]!, g], undefined) : g;',
    replace: "ct[j] = g;",
    what: "[ad] the backward sweep overwrites a cotangent instead of accumulating (fan-out)",
    tests: PROP,
  },
  {
    file: "autodiff/linearize.ts",
    find: "const grads = scope(() => lin.vjp(o.onesLike(y)));",
    replace: "const grads = scope(() => lin.vjp(y));",
    what: "[ad] valueAndGrad seeds the backward sweep with the value instead of 1",
    tests: PROP,
  },
  {
    file: "models/losses.ts",
    find: "o.sub(u, o.sum(o.mul(s, u), -1, true))",
    replace: "o.sub(u, o.sum(o.mul(s, u), 0, true))",
    what: "[ad] softmax cross-entropy's Hessian product sums s.u over the batch axis",
    tests: PROP,
  },
  {
    file: "models/losses.ts",
    find: "return o.mul(u, 2 / z.size);",
    replace: "return o.mul(u, 2 / z.shape[0]);",
    what: "[ad] squared error's Hessian product averages over the batch only, not N x D",
    tests: PROP,
  },
  {
    file: "models/losses.ts",
    find: "return o.div(o.neg(o.sum(o.mul(targets, o.logSoftmax(z)))), z.shape[0]);",
    replace: "return o.div(o.neg(o.sum(o.mul(targets, o.logSoftmax(z)))), z.shape[1]);",
    what: "[ad] softmax cross-entropy averaged over the classes instead of the batch",
    tests: PROP,
  },
  {
    file: "models/mlp.ts",
    find: "return o.add(o.matmul(h, params[out]), params[out + 1]);",
    replace: "return act(o.add(o.matmul(h, params[out]), params[out + 1]));",
    what: "[ad] the MLP applies its activation to the output layer too",
    tests: PROP,
  },
  {
    file: "models/conv_net.ts",
    find: "    flushRelu();\n    return steps;",
    replace: "    return steps;",
    what: "[ad] a conv net whose last conv layer is a relu drops that relu",
    tests: PROP,
  },
  {
    file: "cpu/oracle.ts",
    find: "if (best < 0 || (!Number.isNaN(bv) && (v > bv || Number.isNaN(v)))) {",
    replace: "if (best < 0 || (!Number.isNaN(bv) && (v >= bv || Number.isNaN(v)))) {",
    what: "[ad] the oracle's max-pool routes ties to the last maximum of the window",
    tests: PROP,
  },
  {
    file: "wgsl/prelude.ts",
    find: "return v > acc || (v == acc && i < arg);",
    replace: "return v >= acc;",
    what: "[ad] WebGPU's argmax (the max-pool backward's) routes ties to the last maximum",
    tests: PROP,
  },
];
