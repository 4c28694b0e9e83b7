/**
 * How the report draws each (source, configuration) pair: the configuration chooses the hue and
 * the source the shade and the dash, so that every pair has a colour of its own while the runs of
 * one configuration still read as one family (ours solid in the base colour, the seed's dashed in
 * a darker shade of it, ...). The builder (report/html.ts) puts the result into the page's data;
 * the page script and its legend draw exactly that.
 *
 * @module
 */

/** One hue per configuration (the ten of Matplotlib's tab10, which stay apart on white). */
const HUES = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#bcbd22",
  "#7f7f7f",
];

/**
 * One shade per source, as a mix with black (negative) or white (positive): the base colour,
 * then darker, lighter and darker still; far enough apart to tell at a glance, and none so light
 * that a line fades into the white page.
 */
const SHADES = [0, -0.45, 0.42, -0.7];

/** One dash pattern per source (canvas and SVG lengths in pixels; [] is solid). */
const DASHES: readonly (readonly number[])[] = [[], [7, 4], [2, 3], [10, 3, 2, 3]];

/** The colour and dash of one series. */
export interface SeriesStyle {
  /** `#rrggbb`. */
  color: string;
  /** The line's dash pattern, [] for solid. */
  dash: number[];
}

function hex(n: number): string {
  return Math.round(Math.min(255, Math.max(0, n))).toString(16).padStart(2, "0");
}

/** `color` mixed with black (amount < 0) or white (amount > 0). */
function shade(color: string, amount: number): string {
  const n = parseInt(color.slice(1), 16);
  const target = amount < 0 ? 0 : 255;
  const t = Math.abs(amount);
  return "#" + [n >> 16, (n >> 8) & 255, n & 255].map((c) => hex(c + (target - c) * t)).join("");
}

function hslHex(h: number, s: number, l: number): string {
  const f = (k: number) => {
    const a = s * Math.min(l, 1 - l);
    const m = (k + h / 30) % 12;
    return 255 * (l - a * Math.max(-1, Math.min(m - 3, 9 - m, 1)));
  };
  return "#" + [f(0), f(8), f(4)].map(hex).join("");
}

/**
 * The style of the series of configuration number `config` from source number `source` (both
 * counted from 0 in the report's order). Within the first 10 configurations and 4 sources every
 * pair has its own colour from a fixed palette: hue by configuration, shade by source. Beyond
 * that the hues go round the colour wheel by the golden angle and the shades step through
 * lightness, so pairs still get colours of their own, if less far apart. The dash is the
 * source's, repeating after 4 sources.
 *
 * @example
 * ```ts
 * import { seriesStyle } from "./style.ts";
 * console.log(seriesStyle(0, 0)); // { color: "#1f77b4", dash: [] }
 * console.log(seriesStyle(0, 1)); // { color: "#114163", dash: [7, 4] }: darker, dashed
 * console.log(seriesStyle(1, 0).color); // "#d62728": the next configuration's hue
 * ```
 */
export function seriesStyle(config: number, source: number): SeriesStyle {
  if (!(Number.isInteger(config) && config >= 0 && Number.isInteger(source) && source >= 0)) {
    throw new RangeError(`seriesStyle: indices must be integers from 0, got ${config}, ${source}`);
  }
  const dash = [...DASHES[source % DASHES.length]];
  if (config < HUES.length && source < SHADES.length) {
    return { color: shade(HUES[config], SHADES[source]), dash };
  }
  const hue = (config * 137.508) % 360;
  const lightness = 0.3 + ((source * 0.13) % 0.42);
  return { color: hslHex(hue, 0.65, lightness), dash };
}
