/** Placeholder: the property tests of the kernel layer come next. */
Deno.test("property: kernel placeholder", () => {});
