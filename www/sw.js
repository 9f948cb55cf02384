// The demo's service worker: keeps the app shell (pages, scripts, wasm, registry) so the demo
// opens offline. Model weights are not its business: pocketlm keeps them in IndexedDB and
// fetches them with Range requests, which pass through untouched.
const CACHE = "pocketlm-shell-v4";
const SHELL = [
  "./", "index.html", "style.css", "app.js", "manifest.webmanifest",
  "pkg/index.js", "pkg/core.js", "pkg/errors.js", "pkg/store.js", "pkg/reader.js", "pkg/worker.js", "pkg/registry.json",
  "pkg/wasm/simd/pocketlm.js", "pkg/wasm/simd/pocketlm_bg.wasm",
  "pkg/wasm/relaxed/pocketlm.js", "pkg/wasm/relaxed/pocketlm_bg.wasm",
  "pkg/wasm/threads/pocketlm.js", "pkg/wasm/threads/pocketlm_bg.wasm",
];
// Also kept once fetched: anything else under the wasm builds.
const KEPT_PREFIX = "pkg/wasm/";

// The modules a build's JS imports from `./snippets/` (the threaded build's worker helper, whose
// path carries a hash): read from the cached JS, so they are kept at install too. Kept only once
// fetched, they could be missing offline: a worker started before this service worker took the
// page fetches past it.
async function snippetsOf(cache, path) {
  const js = await cache.match(path);
  const base = new URL(path, self.registration.scope);
  const text = js ? await js.text() : "";
  return [...text.matchAll(/from\s*['"](\.\/snippets\/[^'"]+)['"]/g)].map((m) => new URL(m[1], base).href);
}

self.addEventListener("install", (e) => {
  e.waitUntil(
    caches
      .open(CACHE)
      .then(async (c) => {
        await c.addAll(SHELL);
        const snippets = await Promise.all(SHELL.filter((p) => p.endsWith("/pocketlm.js")).map((p) => snippetsOf(c, p)));
        await c.addAll(snippets.flat());
      })
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (e) => {
  e.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))).then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || e.request.headers.has("range") || url.origin !== location.origin) return;
  const inShell = SHELL.some((p) => new URL(p, self.registration.scope).href === url.href) || url.href.startsWith(new URL(KEPT_PREFIX, self.registration.scope).href);
  if (!inShell) return;
  // Network first (fresh code when online), the cache when offline.
  e.respondWith(
    fetch(e.request)
      .then((r) => {
        if (r.ok) {
          const copy = r.clone();
          caches.open(CACHE).then((c) => c.put(e.request, copy));
        }
        return r;
      })
      .catch(() => caches.match(e.request)),
  );
});
