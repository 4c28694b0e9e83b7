/** Placeholder: filled in by the next commits (issue 19). */
Deno.test("placeholder", () => {});
