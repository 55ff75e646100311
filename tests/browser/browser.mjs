// What the browser scripts share: Debian's headless Chromium through playwright-core, and a
// static file server on an ephemeral loopback port.
import { createServer } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, extname, join, normalize, sep } from "node:path";

// Through CommonJS resolution, so that NODE_PATH finds a playwright-core installed elsewhere.
const { chromium } = createRequire(import.meta.url)("playwright-core");

/**
 * Headless Chromium (CHROMIUM, default /usr/bin/chromium) with the flags this machine needs:
 * no background networking (its connections are refused here), no GPU, no sandbox (root).
 */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

/**
 * Serves files on 127.0.0.1 at an ephemeral port: `mounts` is a list of [URL prefix ending
 * in "/", directory or single file]; a single file is served as prefix + its name. `pages`
 * maps exact paths to HTML text. Anything else is 404. Resolves to { server, base }.
 */
export async function serveFiles(mounts, pages = {}) {
  const resolve = (url) => {
    const path = decodeURIComponent(new URL(url, "http://x").pathname);
    if (path in pages) return { page: pages[path] };
    for (const [prefix, target] of mounts) {
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      let isFile = false;
      try {
        isFile = statSync(target).isFile();
      } catch {}
      if (isFile) return rest === basename(target) ? { file: target } : null;
      const file = normalize(join(target, rest));
      return file.startsWith(target + sep) ? { file } : null;
    }
    return null;
  };
  const server = createServer((req, res) => {
    const found = resolve(req.url);
    if (found?.page !== undefined) {
      res.writeHead(200, { "content-type": "text/html" }).end(found.page);
      return;
    }
    let ok = false;
    try {
      ok = found !== null && statSync(found.file).isFile();
    } catch {}
    if (!ok) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(found.file)] ?? "application/octet-stream" });
    createReadStream(found.file).pipe(res);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, base: `http://127.0.0.1:${server.address().port}` };
}
