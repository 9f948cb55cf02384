// The test server: serves the repository (pkg/, www/, models/, tests/browser/) on localhost with
// HTTP Range and HEAD, COOP/COEP (cross-origin isolation, for threads), and faults the browser
// tests switch on through /__ctl:
//   /__ctl?fail_from=N     range requests starting at byte >= N of a model file: the connection drops
//   /__ctl?lie=N           HEAD and Content-Range report N extra bytes
//   /__ctl?offline=1       every request under /models/ or /hf-chat/ drops (network off for weights)
//   /__ctl?reset=1         all off, request log cleared;  /__log: the model requests seen
// /hf-chat/ is TinyStories-656K's Hugging Face directory with a chat template added.
import { createServer } from "node:http";
import { readFileSync, statSync, existsSync, openSync, readSync, closeSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const hfDir = join(root, "../shared/models/tinystories-656k-hf");
const TYPES = { ".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html", ".css": "text/css", ".json": "application/json", ".wasm": "application/wasm", ".png": "image/png", ".svg": "image/svg+xml", ".webmanifest": "application/manifest+json" };
const CHAT_TEMPLATE = "{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token }}{{ m['content'] }}{% else %}{{ m['content'] }}{% endif %}{% endfor %}";

function fileFor(path) {
  if (path.startsWith("/hf-chat/")) {
    const name = path.slice("/hf-chat/".length);
    if (name === "tokenizer_config.json") {
      const cfg = JSON.parse(readFileSync(join(hfDir, name), "utf8"));
      cfg.chat_template = CHAT_TEMPLATE;
      return { body: Buffer.from(JSON.stringify(cfg)) };
    }
    const p = join(hfDir, normalize(name));
    return p.startsWith(hfDir) && existsSync(p) && statSync(p).isFile() ? { path: p } : null;
  }
  const p = join(root, normalize(decodeURIComponent(path)));
  if (!p.startsWith(root)) return null;
  if (existsSync(p) && statSync(p).isDirectory()) return existsSync(join(p, "index.html")) ? { path: join(p, "index.html") } : null;
  return existsSync(p) ? { path: p } : null;
}

/** Bytes start..=end of a file (or of an in-memory body), without reading the rest. */
function slice(f, start, end) {
  if (f.body) return f.body.subarray(start, end + 1);
  const buf = Buffer.alloc(Math.max(0, end - start + 1));
  const fd = openSync(f.path, "r");
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  return buf;
}

export async function startServer({ port = 0 } = {}) {
  const state = { failFrom: null, lie: 0, offline: false, log: [] };
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
    res.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
    res.setHeader("Cache-Control", "no-store");
    if (url.pathname === "/__ctl") {
      const q = url.searchParams;
      if (q.has("reset")) Object.assign(state, { failFrom: null, lie: 0, offline: false, log: [] });
      if (q.has("fail_from")) state.failFrom = Number(q.get("fail_from"));
      if (q.has("lie")) state.lie = Number(q.get("lie"));
      if (q.has("offline")) state.offline = q.get("offline") === "1";
      return res.end("ok");
    }
    if (url.pathname === "/__log") {
      res.setHeader("Content-Type", "application/json");
      return res.end(JSON.stringify(state.log));
    }
    const weights = url.pathname.startsWith("/models/") || url.pathname.startsWith("/hf-chat/");
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (weights) {
      state.log.push({ method: req.method, path: url.pathname, start: range ? Number(range[1]) : null, end: range && range[2] ? Number(range[2]) : null });
      if (state.offline) return req.socket.destroy();
    }
    const f = fileFor(url.pathname);
    if (!f) {
      res.statusCode = 404;
      return res.end("not found");
    }
    const length = f.body ? f.body.length : statSync(f.path).size;
    const size = length + (weights ? state.lie : 0);
    res.setHeader("Content-Type", TYPES[extname(f.path ?? url.pathname)] ?? "application/octet-stream");
    res.setHeader("Accept-Ranges", "bytes");
    if (req.method === "HEAD") {
      res.setHeader("Content-Length", size);
      return res.end();
    }
    if (range) {
      const start = Number(range[1]);
      const end = Math.min(range[2] ? Number(range[2]) : size - 1, length - 1);
      if (weights && state.failFrom != null && start >= state.failFrom) {
        // Half a response, then the connection drops.
        res.writeHead(206, { "Content-Range": `bytes ${start}-${end}/${size}`, "Content-Length": end - start + 1 });
        res.write(slice(f, start, start + Math.floor((end - start + 1) / 2) - 1));
        return setTimeout(() => req.socket.destroy(), 20);
      }
      res.writeHead(206, { "Content-Range": `bytes ${start}-${end}/${size}`, "Content-Length": Math.max(0, end - start + 1) });
      return res.end(slice(f, start, end));
    }
    res.setHeader("Content-Length", length);
    res.end(f.body ?? readFileSync(f.path));
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await startServer({ port: Number(process.env.PORT ?? 8080) });
  console.log(`pocketlm: serving the repository at ${url}/www/`);
}
