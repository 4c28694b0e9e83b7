/**
 * The command line's flag rules and the run-folder claim parser, on generated cases: any two sets
 * of train settings written as flags (`settingsToArgs`) combine with `overriding` into a command
 * line that parses to the second set over the first; written one after the other they parse only
 * when no flag repeats; and a claim file is accepted exactly when each of its fields is valid.
 */
import assert from "node:assert/strict";
import { fc, property } from "./property.ts";
import { overriding } from "../train/flags.ts";
import { parseTrainArgs, resolveSettings, settingsToArgs } from "../train/settings.ts";
import { parseClaim } from "../train/run_folder.ts";

/** A few settings of every kind of flag, each from values the table accepts. */
const settings = fc.record(
  {
    epochs: fc.integer({ min: 1, max: 500 }),
    seed: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    rho: fc.constantFrom(0, 1e-4, 0.5, 3),
    layers: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 4 }),
    solver: fc.constantFrom("SGN" as const, "SGD" as const, "Adam" as const),
    TR: fc.boolean(),
    f: fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/),
    dataset: fc.constantFrom("mnist" as const, "boston" as const, "sine_10" as const),
  },
  { requiredKeys: [] },
);

property(
  "flags: overriding(defaults, user) parses to the user's settings over the defaults",
  fc.tuple(settings, settings),
  200,
  ([a, b]) => {
    const merged = parseTrainArgs(overriding(settingsToArgs(a), settingsToArgs(b)));
    assert.deepEqual(merged, resolveSettings({ ...a, ...b }));
    // Written one after the other, a flag that both give is an error that names it.
    const shared = Object.keys(a).filter((k) => Object.hasOwn(b, k));
    const both = () => parseTrainArgs([...settingsToArgs(a), ...settingsToArgs(b)]);
    if (shared.length === 0) assert.deepEqual(both(), merged);
    else assert.throws(both, new RegExp(`--(${shared.join("|")}) is given twice`));
  },
);

const validStarted = fc.date({
  min: new Date("2000-01-01T00:00:00Z"),
  max: new Date("2100-01-01T00:00:00Z"),
  noInvalidDate: true,
}).map((d) => d.toISOString());

property(
  "claims: a claim file is accepted exactly when host, pid and start time are all valid",
  fc.record({
    host: fc.oneof(fc.stringMatching(/^[a-z0-9.-]{1,30}$/), fc.constantFrom("", 7, null)),
    pid: fc.oneof(
      fc.integer({ min: 1, max: 2 ** 22 }),
      fc.constantFrom(0, -3, 1.5, "123", "abc", NaN, null),
    ),
    started: fc.oneof(validStarted, fc.constantFrom("yesterday", "", 0, "2026-13-45T99:00:00Z")),
    extra: fc.boolean(),
  }),
  200,
  ({ host, pid, started, extra }) => {
    const text = JSON.stringify({ host, pid, started, ...(extra ? { note: "x" } : {}) });
    const ok = typeof host === "string" && host !== "" && typeof pid === "number" &&
      Number.isInteger(pid) && pid >= 1 && typeof started === "string" &&
      !Number.isNaN(Date.parse(started)) && started === new Date(started).toISOString();
    const parsed = parseClaim(text);
    if (ok) assert.deepEqual(parsed, { host, pid, started });
    else assert.equal(parsed, undefined, text);
    // Truncated claims (a writer that crashed mid-write) prove nothing either.
    if (text.length > 2) assert.equal(parseClaim(text.slice(0, -2)), undefined);
  },
);
