/**
 * oneDNN's convolutions on the seed's four architectures, each product in both layouts
 * (`cpu/dnnl.ts`: plain NCHW as is, or oneDNN's preferred layouts with the reorders from and to
 * NCHW included), best of 5 after a warm-up, float32, and the layout `convLayout` picks. The
 * measurement behind that rule (bench/README.md, issue 21).
 *
 * ```sh
 * deno run -A bench/dnnl_report.ts
 * ```
 */
import { conv2dOutSize, type Conv2dSpec } from "../kernel/backend.ts";
import { type ConvKind, type ConvLayout, convLayout, loadDnnl } from "../cpu/dnnl.ts";
import { ARCHITECTURES, type ConvNetSpec } from "../models/networks.ts";

const r = loadDnnl();
if (!r.dnnl) {
  console.log(`no oneDNN: ${r.reason}`);
  Deno.exit(0);
}
const d = r.dnnl;

/** The convolutions of an architecture on inputs [n, c, h, w], in order. */
function convSpecs(spec: ConvNetSpec, n: number, [c, h, w]: number[]): Conv2dSpec[] {
  const out: Conv2dSpec[] = [];
  for (const layer of Object.values(spec.conv_layers)) {
    if (layer.type === "CONV") {
      const k = layer.filter_size, stride = layer.stride ?? 1, pad = layer.padding ?? 0;
      const s = {
        n,
        c,
        h,
        w,
        f: layer.num_filters,
        kh: k,
        kw: k,
        strideH: stride,
        strideW: stride,
        padH: pad,
        padW: pad,
      };
      // The seed's architecture_3 leaves nothing for its last convolution on 32 x 32 inputs.
      if (conv2dOutSize(s).some((v) => v < 1)) break;
      out.push(s);
      [c, [h, w]] = [layer.num_filters, conv2dOutSize(s)];
    } else if (layer.type === "POOL") {
      const size = layer.pool_size ?? 2, stride = layer.stride ?? size;
      [h, w] = [Math.floor((h - size) / stride) + 1, Math.floor((w - size) / stride) + 1];
    }
  }
  return out;
}

const RUNS: [string, number[], number][] = [
  ["architecture_1", [1, 28, 28], 1000],
  ["architecture_2", [1, 28, 28], 1000],
  ["architecture_3", [3, 32, 32], 128],
  ["architecture_4", [3, 32, 32], 128],
];

/** Best of 5 runs of one product, ms. */
function time(kind: ConvKind, s: Conv2dSpec, layout: ConvLayout): number {
  const [ho, wo] = conv2dOutSize(s);
  const x = new Float32Array(s.n * s.c * s.h * s.w).map((_, i) => ((i * 7919) % 13) / 13 - 0.5);
  const wt = new Float32Array(s.f * s.c * s.kh * s.kw).map((_, i) => ((i * 31) % 7) / 7 - 0.5);
  const y = new Float32Array(s.n * s.f * ho * wo).map((_, i) => ((i * 17) % 11) / 11 - 0.5);
  const [a, b, out] = kind === "forward"
    ? [x, wt, y.slice()]
    : kind === "backwardData"
    ? [y, wt, x.slice()]
    : [x, y, wt.slice()];
  d.conv(kind, s, a, b, out, layout);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    d.conv(kind, s, a, b, out, layout);
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

console.log(`oneDNN ${d.version} (${d.path}); ms, best of 5, reorders included\n`);
console.log(
  "| architecture | n | c -> f | h x w | k | product | plain | preferred | preferred / plain | picked |",
);
console.log("|---|---:|---|---|---:|---|---|---|---:|---|");
for (const [name, input, n] of RUNS) {
  for (const s of convSpecs(ARCHITECTURES[name], n, input)) {
    for (const kind of ["forward", "backwardData", "backwardWeights"] as const) {
      const [plain, preferred] = [time(kind, s, "plain"), time(kind, s, "preferred")];
      const impl = (l: ConvLayout) => d.implementation(kind, s, l);
      console.log(
        `| ${name} | ${n} | ${s.c} -> ${s.f} | ${s.h} x ${s.w} | ${s.kh} | ${kind} | ` +
          `${plain.toFixed(2)} (${impl("plain")}) | ${preferred.toFixed(2)} (${
            impl("preferred")
          }) | ${(preferred / plain).toFixed(2)}x | ${convLayout(kind, s)} |`,
      );
    }
  }
}
