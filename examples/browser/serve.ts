/**
 * A small static file server for the browser demo: Chromium does not load ES modules from
 * file:// pages, so the demo needs HTTP. It serves the repository root, so that `/dist/` (the
 * bundles) and `/examples/browser/` (the page) both resolve, on 127.0.0.1 only.
 *
 * ```sh
 * deno task bundle && deno run -A examples/browser/serve.ts [--port 8000]
 * ```
 *
 * The tests use {@link serveStatic} too, and its request log: the URL-import test serves the
 * `.ts` sources with a TypeScript content type, as a web host of the module would.
 *
 * @module
 */

import { parseArgs } from "node:util";

/**
 * Options of {@link serveStatic}.
 *
 * @example
 * ```ts
 * import { serveStatic, type StaticOptions } from "./serve.ts";
 * const options: StaticOptions = { root: "/tmp", port: 0 };
 * await serveStatic(options).shutdown();
 * ```
 */
export interface StaticOptions {
  /** Folder to serve; default the repository root. */
  root?: string;
  /** Port; 0 (the default) lets the system choose a free one. */
  port?: number;
}

/**
 * A running server.
 *
 * @example
 * ```ts
 * import { serveStatic, type StaticServer } from "./serve.ts";
 * const server: StaticServer = serveStatic();
 * await (await fetch(`${server.url}README.md`)).body?.cancel();
 * console.log(server.requests); // ["/README.md"]
 * await server.shutdown();
 * ```
 */
export interface StaticServer {
  /** `http://127.0.0.1:PORT/` */
  readonly url: string;
  readonly port: number;
  /** Path of every request received, in order (for tests). */
  readonly requests: string[];
  /** Stops listening and waits for open requests to finish. */
  shutdown(): Promise<void>;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  // Deno decides how to load a remote module from its content type, not from its extension.
  ts: "application/typescript; charset=utf-8",
  mts: "application/typescript; charset=utf-8",
  json: "application/json; charset=utf-8",
  map: "application/json; charset=utf-8",
  css: "text/css; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  txt: "text/plain; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  wasm: "application/wasm",
};

/**
 * The content type of a file name, by its extension.
 *
 * @example
 * ```ts
 * import { contentType } from "./serve.ts";
 * console.log(contentType("mod.ts")); // "application/typescript; charset=utf-8"
 * ```
 */
export function contentType(name: string): string {
  const dot = name.lastIndexOf(".");
  return (dot >= 0 && TYPES[name.slice(dot + 1).toLowerCase()]) || "application/octet-stream";
}

const DEFAULT_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

function text(status: number, body: string, headers: HeadersInit = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

async function handle(root: string, req: Request): Promise<Response> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return text(405, "only GET and HEAD", { allow: "GET, HEAD" });
  }
  const url = new URL(req.url);
  if (url.pathname === "/") return Response.redirect(new URL("/examples/browser/", url), 302);
  let segments: string[];
  try {
    segments = url.pathname.split("/").slice(1).map(decodeURIComponent);
  } catch {
    return text(400, "malformed path");
  }
  // No way out of the root (an encoded "..") and nothing hidden (.git, .env, ...).
  if (segments.some((s) => s.startsWith(".") || s.includes("/") || s.includes("\0"))) {
    return text(404, "not found");
  }
  let path = `${root.replace(/\/$/, "")}/${segments.join("/")}`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
    if (info.isDirectory) {
      // Relative URLs in an index page resolve against the folder only with the slash.
      if (!url.pathname.endsWith("/")) {
        return Response.redirect(new URL(`${url.pathname}/${url.search}`, url), 301);
      }
      path = `${path.replace(/\/$/, "")}/index.html`;
      info = await Deno.stat(path);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return text(404, "not found");
    throw e;
  }
  const headers = {
    "content-type": contentType(path),
    "content-length": String(info.size),
    // A rebuilt bundle must be seen on reload.
    "cache-control": "no-store",
  };
  if (req.method === "HEAD") return new Response(null, { headers });
  const file = await Deno.open(path, { read: true });
  return new Response(file.readable, { headers });
}

/**
 * Serves `root` over HTTP on 127.0.0.1.
 *
 * @example
 * ```ts
 * import { serveStatic } from "./serve.ts";
 * const server = serveStatic({ port: 0 });
 * const res = await fetch(new URL("mod.ts", server.url));
 * console.log(res.headers.get("content-type"), (await res.text()).length);
 * await server.shutdown();
 * ```
 */
export function serveStatic(options: StaticOptions = {}): StaticServer {
  const root = options.root ?? DEFAULT_ROOT;
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => {} },
    (req) => {
      requests.push(new URL(req.url).pathname);
      return handle(root, req);
    },
  );
  const port = server.addr.port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    requests,
    shutdown: () => server.shutdown(),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string", default: "8000" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log("Usage: deno run -A examples/browser/serve.ts [--port 8000]");
    Deno.exit(0);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`error: --port must be an integer in 0..65535, got "${values.port}"`);
    Deno.exit(2);
  }
  const server = serveStatic({ port });
  console.log(`serving ${DEFAULT_ROOT} at ${server.url}`);
  console.log(`demo: ${server.url}examples/browser/ (run \`deno task bundle\` first)`);
}
