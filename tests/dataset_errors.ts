/**
 * How the data set tests (tests/datasets_test.ts, datasets_idx_test.ts) hold a reader's errors to
 * their promise: an SgnError that starts with the file's name and says what was wrong.
 */

import assert from "node:assert/strict";
import { SgnError } from "../errors.ts";

/** The escaped text of `s` for a RegExp. */
export function literal(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Asserts that `run` rejects with an SgnError that starts with `file` and matches `why`. */
export async function rejectsNaming(
  run: () => Promise<unknown>,
  file: string,
  why: RegExp,
  what: string,
) {
  let error: unknown;
  try {
    await run();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof SgnError, `${what}: expected an SgnError, got ${error}`);
  assert.ok(
    error.message.startsWith(`${file}: `),
    `${what}: the error does not start with the file ${file}: ${error.message}`,
  );
  assert.match(error.message, why, `${what}: the error does not name the field`);
}
