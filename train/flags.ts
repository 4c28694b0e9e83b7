/**
 * The one command-line parser: a table of flags (kind, default, bounds, choices, help) in, typed
 * and checked values out. `train`'s settings table (settings.ts) and the other subcommands'
 * tables (cli.ts) all go through it, so every flag is parsed, checked and explained the same
 * way: `--name value` or `--name=value`, integers and numbers in decimal only, booleans as the
 * seed's str2bool (yes/true/t/y/1, no/false/f/n/0) or alone for true, switches without a value,
 * `ints` taking the following words.
 *
 * @module
 */

import { SgnError, showValue } from "../errors.ts";

/** One flag. */
export interface FlagSpec {
  /**
   * Its type: text, one of `choices`, an integer, a number, a boolean (str2bool), a switch (no
   * value), or integers (the words that follow).
   */
  kind: "string" | "choice" | "int" | "number" | "bool" | "switch" | "ints";
  /** The value when the flag is not given (undefined: unset). */
  default?: string | number | boolean | readonly number[];
  /** What it does, for --help. */
  help: string;
  /** The allowed values of a choice. */
  choices?: readonly string[];
  /** Inclusive bounds of a number (or of each integer of `ints`). */
  min?: number;
  max?: number;
  /**
   * A number's whole check, defined where the value is used (an optimizer's option rule): what
   * the value must be when `value` breaks it, else undefined. It replaces `min` and `max`.
   */
  rule?: (value: unknown) => string | undefined;
  /** A one-letter alias (`-h`). */
  short?: string;
}

/** The seed's str2bool. */
const TRUE = ["yes", "true", "t", "y", "1"];
const FALSE = ["no", "false", "f", "n", "0"];
const INT_SYNTAX = /^\+?\d{1,16}$/;
const NUMBER_SYNTAX = /^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
/** The most integers an `ints` flag takes. */
const MAX_INTS = 100;

/** What an int or number flag without a `rule` must be, when `value` is not; else undefined. */
function outOfBounds(s: FlagSpec, value: unknown): string | undefined {
  const int = s.kind === "int";
  if (
    typeof value === "number" && (int ? Number.isInteger(value) : Number.isFinite(value)) &&
    value >= (s.min ?? -Infinity) && value <= (s.max ?? Infinity)
  ) return undefined;
  const range = s.max === undefined ? "" : ` up to ${s.max}`;
  return int
    ? `${s.min === 0 ? "an integer from 0" : "a positive integer"}${range}`
    : `a number from ${s.min ?? "-Infinity"}${range}`;
}

/** Checks one value against its flag; returns it or throws naming the flag. */
export function checkFlag(name: string, s: FlagSpec, value: unknown, text = showValue(value)) {
  const bad = (what: string) => new SgnError(`--${name} must be ${what}, got ${text}`);
  const range = s.max === undefined ? "" : ` up to ${s.max}`;
  switch (s.kind) {
    case "string":
      if (typeof value !== "string") throw bad("text");
      break;
    case "choice":
      if (typeof value !== "string" || !s.choices!.includes(value)) {
        throw new SgnError(
          `--${name} must be one of ${s.choices!.filter((c) => c !== "").join(", ")}, got ${text}`,
        );
      }
      break;
    case "bool":
    case "switch":
      if (typeof value !== "boolean") {
        throw bad(`a boolean (${TRUE.join("/")} or ${FALSE.join("/")})`);
      }
      break;
    case "int":
    case "number": {
      const need = s.rule ? s.rule(value) : outOfBounds(s, value);
      if (need !== undefined) throw bad(need);
      break;
    }
    case "ints":
      if (
        !Array.isArray(value) || value.length === 0 || value.length > MAX_INTS ||
        value.some((v) =>
          typeof v !== "number" || !Number.isInteger(v) || v < (s.min ?? 1) ||
          v > (s.max ?? Infinity)
        )
      ) {
        throw bad(`one to ${MAX_INTS} positive integers${range}`);
      }
      break;
  }
  return value;
}

/** A flag's text as its typed value (NaN or the text itself where it is not of its kind). */
function fromText(s: FlagSpec, text: string): unknown {
  switch (s.kind) {
    case "int":
      return INT_SYNTAX.test(text.trim()) ? Number(text) : NaN;
    case "number":
      return NUMBER_SYNTAX.test(text.trim()) ? Number(text) : NaN;
    case "bool":
    case "switch":
      return TRUE.includes(text.toLowerCase())
        ? true
        : FALSE.includes(text.toLowerCase())
        ? false
        : text;
    case "ints":
      return text.split(/[\s,]+/).filter(Boolean).map((
        w,
      ) => (INT_SYNTAX.test(w) ? Number(w) : NaN));
    default:
      return text;
  }
}

/** What {@link parseFlags} returns: the given flags, typed and checked, and the positionals. */
export interface ParsedFlags {
  values: Record<string, unknown>;
  positionals: string[];
}

/**
 * Parses `args` against `table`. Only the flags given are in `values` (apply defaults with
 * {@link withDefaults}); positionals are allowed only when `positionals` is true. `command`
 * names the subcommand in errors. Each flag may be given once; a value that looks like a flag
 * (`--f --float64`) must be written `--f=--float64`; a text flag given as "" is an error.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const table = { epochs: { kind: "int", min: 1, help: "epochs" }, dry: { kind: "switch", help: "" } } as const;
 * console.log(parseFlags(["--epochs", "3", "--dry", "mnist"], table, "demo", true));
 * ```
 */
export function parseFlags(
  args: readonly string[],
  table: Record<string, FlagSpec>,
  command: string,
  positionals = false,
): ParsedFlags {
  const values: Record<string, unknown> = {};
  const rest: string[] = [];
  const byShort = new Map(
    Object.entries(table).filter(([, s]) => s.short).map(([n, s]) => [s.short!, n]),
  );
  for (let i = 0; i < args.length; i++) {
    const token = args[i];
    let name: string;
    let value: string | undefined;
    if (token.startsWith("--")) {
      [name, value] = token.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    } else if (/^-[a-zA-Z]$/.test(token) && byShort.has(token[1])) {
      name = byShort.get(token[1])!;
    } else if (positionals && !token.startsWith("-")) {
      rest.push(token);
      continue;
    } else {
      throw new SgnError(
        `${command}: unexpected argument "${token}" (flags start with --; see ${command} --help)`,
      );
    }
    if (!Object.hasOwn(table, name)) {
      throw new SgnError(`${command}: unknown flag --${name} (see ${command} --help)`);
    }
    if (Object.hasOwn(values, name)) {
      throw new SgnError(
        `${command}: --${name} is given twice: give each flag once (see ${command} --help)`,
      );
    }
    const spec = table[name];
    if (value === undefined) {
      if (spec.kind === "ints") {
        const words: string[] = [];
        while (i + 1 < args.length && !args[i + 1].startsWith("--")) words.push(args[++i]);
        value = words.join(" ");
      } else if (
        spec.kind === "switch" ||
        (spec.kind === "bool" && (i + 1 >= args.length || args[i + 1].startsWith("--")))
      ) {
        value = "true";
      } else {
        if (i + 1 >= args.length) throw new SgnError(`${command}: flag --${name} needs a value`);
        value = args[++i];
        if (value.startsWith("--")) {
          throw new SgnError(
            `${command}: flag --${name} needs a value, got the flag ${value} (to give a value ` +
              `that starts with --, write --${name}=${value})`,
          );
        }
      }
    }
    if (value === "" && spec.kind === "string") {
      throw new SgnError(
        `${command}: --${name} is empty: give it a value, or leave the flag out for its ` +
          "default (an unset shell variable?)",
      );
    }
    values[name] = checkFlag(name, spec, fromText(spec, value), `"${value}"`);
  }
  return { values, positionals: rest };
}

/**
 * `defaults` (flags, each followed by its values) less the flags that `args` gives, then `args`:
 * a command line whose own defaults the user's flags override, each flag given once.
 *
 * @example
 * ```ts
 * import { overriding } from "./flags.ts";
 * console.log(overriding(["--epochs", "5", "--layers", "20", "20"], ["--epochs=1"]));
 * // ["--layers", "20", "20", "--epochs=1"]
 * ```
 */
export function overriding(defaults: readonly string[], args: readonly string[]): string[] {
  const given = new Set(
    args.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=", 1)[0]),
  );
  const out: string[] = [];
  let keep = true;
  for (const token of defaults) {
    if (token.startsWith("--")) keep = !given.has(token.slice(2).split("=", 1)[0]);
    if (keep) out.push(token);
  }
  return [...out, ...args];
}

/** The values given, with every other flag's default. */
export function withDefaults(
  table: Record<string, FlagSpec>,
  given: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    const d = spec.default;
    out[name] = Object.hasOwn(given, name) ? given[name] : Array.isArray(d) ? [...d] : d;
  }
  return out;
}

/** How every command reads its flags (see {@link parseFlags}); the last line of each --help. */
export const FLAG_RULES =
  "Each flag is given once; a value that starts with -- is written --flag=value; an empty value " +
  "is an error (leave the flag out for its default).";

/**
 * One line per flag, `--name  help (default: d)`, then {@link FLAG_RULES}, for --help texts.
 */
export function flagHelp(table: Record<string, FlagSpec>, width = 13): string[] {
  return [...flagLines(table, width), "", FLAG_RULES];
}

function flagLines(table: Record<string, FlagSpec>, width: number): string[] {
  return Object.entries(table).map(([name, s]) => {
    const d = s.default;
    const shown = d === undefined ? "" : Array.isArray(d) ? d.join(" ") : String(d);
    const flag = `--${name}${s.short ? `, -${s.short}` : ""}`;
    return `  ${flag.padEnd(width + 2)} ${s.help}${
      shown !== "" && s.kind !== "switch" ? ` (default: ${shown})` : ""
    }`;
  });
}
