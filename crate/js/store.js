// The IndexedDB weight store: models are downloaded in chunks with HTTP Range, each chunk kept
// with its SHA-256, and a manifest written last, so a model is present only when every chunk
// arrived. An interrupted download resumes from the chunks that are missing; a chunk that no
// longer matches its hash is dropped and fetched again when the model is read.

import { PocketLMError, throwIfAborted } from "./errors.js";

const DB_NAME = "pocketlm";
export const DEFAULT_CHUNK_SIZE = 16 << 20;
const RETRIES = 3;

let dbPromise = null;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function openDb() {
  if (!dbPromise) {
    if (typeof indexedDB === "undefined") return Promise.reject(new PocketLMError("NO_STORAGE", "IndexedDB is not available here"));
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => {
      const db = open.result;
      db.createObjectStore("chunks", { keyPath: ["model", "file", "index"] });
      db.createObjectStore("manifests", { keyPath: "model" });
    };
    dbPromise = req(open);
  }
  return dbPromise;
}

async function tx(stores, mode, fn) {
  const db = await openDb();
  const t = db.transaction(stores, mode);
  const done = new Promise((resolve, reject) => {
    t.oncomplete = resolve;
    t.onerror = () => reject(PocketLMError.from(t.error));
    t.onabort = () => reject(PocketLMError.from(t.error ?? new Error("transaction aborted")));
  });
  const result = await fn(t);
  await done;
  return result;
}

/** How many chunks a file of `size` bytes takes (an empty file still has one). */
const chunkCount = (size, chunkSize) => Math.max(1, Math.ceil(size / chunkSize));
/** Bytes `[start, end)` of chunk `i`. */
const chunkBounds = (size, chunkSize, i) => [i * chunkSize, Math.min(size, (i + 1) * chunkSize)];

const modelRange = (model) => IDBKeyRange.bound([model], [model, []]);
const fileRange = (model, file) => IDBKeyRange.bound([model, file], [model, file, []]);

export async function sha256Hex(data) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function getManifest(model) {
  return tx(["manifests"], "readonly", (t) => req(t.objectStore("manifests").get(model)));
}

/** The indices of the chunks of `file` already stored. */
async function storedChunks(model, file) {
  const keys = await tx(["chunks"], "readonly", (t) => req(t.objectStore("chunks").getAllKeys(fileRange(model, file))));
  return new Set(keys.map((k) => k[2]));
}

/** Size of a remote file: HEAD's Content-Length, else a one-byte Range request's Content-Range. */
async function remoteSize(url, signal) {
  try {
    const head = await fetch(url, { method: "HEAD", signal });
    const len = head.ok && head.headers.get("content-length");
    if (len) return Number(len);
  } catch {
    throwIfAborted(signal);
  }
  const r = await fetchOrThrow(url, { headers: { Range: "bytes=0-0" }, signal });
  const total = /\/(\d+)$/.exec(r.headers.get("content-range") ?? "");
  await r.body?.cancel();
  if (!total) throw new PocketLMError("NETWORK", `${url}: the server reports no size (no Content-Length or Content-Range)`);
  return Number(total[1]);
}

async function fetchOrThrow(url, init) {
  let r;
  try {
    r = await fetch(url, init);
  } catch (e) {
    throwIfAborted(init.signal);
    throw new PocketLMError("NETWORK", `${url}: ${e.message ?? e}`);
  }
  if (!r.ok) throw new PocketLMError("NETWORK", `${url}: HTTP ${r.status}`);
  return r;
}

/** Bytes `start..end` of `url`, exactly `end - start` of them, or a typed error. */
async function fetchRange(url, start, end, size, signal) {
  const whole = start === 0 && end === size;
  const r = await fetchOrThrow(url, { headers: whole ? {} : { Range: `bytes=${start}-${end - 1}` }, signal });
  if (!whole && r.status !== 206) throw new PocketLMError("NETWORK", `${url}: the server ignored the Range request (HTTP ${r.status})`);
  let data;
  try {
    data = new Uint8Array(await r.arrayBuffer());
  } catch (e) {
    throwIfAborted(signal);
    throw new PocketLMError("NETWORK", `${url}: the connection dropped: ${e.message ?? e}`);
  }
  if (data.length !== end - start) {
    throw new PocketLMError("SIZE_MISMATCH", `${url}: bytes ${start}-${end - 1} came back as ${data.length} bytes, expected ${end - start}: the server's size (${size}) is wrong or the file changed`);
  }
  return data;
}

async function fetchChunkWithRetry(url, start, end, size, signal) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchRange(url, start, end, size, signal);
    } catch (e) {
      if (e.code !== "NETWORK" || attempt >= RETRIES || signal?.aborted) throw e;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

async function putChunk(model, file, index, data) {
  const sha256 = await sha256Hex(data);
  await tx(["chunks"], "readwrite", (t) => req(t.objectStore("chunks").put({ model, file, index, size: data.length, sha256, data })));
}

/**
 * Makes `model` present in the store: downloads the chunks that are missing, then writes the
 * manifest. `files`: [{name, url, size?, optional?}]. Two tabs share one download (Web Locks).
 */
export async function ensureModel(model, files, { onProgress, signal, chunkSize = DEFAULT_CHUNK_SIZE } = {}) {
  const present = await getManifest(model);
  if (present?.complete) return present;
  const run = () => download(model, files, { onProgress, signal, chunkSize });
  if (typeof navigator !== "undefined" && navigator.locks) {
    return navigator.locks.request(`pocketlm:${model}`, { signal }, async () => {
      // Another tab may have finished the download while this one waited for the lock.
      const m = await getManifest(model);
      return m?.complete ? m : run();
    });
  }
  return run();
}

async function download(model, files, { onProgress, signal, chunkSize }) {
  // (chunkSize may be replaced by the one of an interrupted download of the same files.)
  const sized = [];
  for (const f of files) {
    let size = f.size;
    try {
      const remote = await remoteSize(f.url, signal);
      if (size != null && remote !== size) {
        throw new PocketLMError("SIZE_MISMATCH", `${f.url}: the server says ${remote} bytes, the registry ${size}`);
      }
      size = remote;
    } catch (e) {
      if (f.optional && e.code === "NETWORK") continue;
      throw e;
    }
    sized.push({ name: f.name, url: f.url, size });
  }
  const total = sized.reduce((a, f) => a + f.size, 0);
  // A partial manifest, written before the first chunk, pins the chunk size and the file sizes
  // of an interrupted download; chunks of a download whose files have changed are dropped.
  const partial = await getManifest(model);
  const sameFiles = partial && partial.files.length === sized.length && partial.files.every((f, i) => f.name === sized[i].name && f.size === sized[i].size);
  if (partial && !sameFiles) await cache.delete(model);
  else if (partial) chunkSize = partial.chunkSize;
  const manifest = {
    model,
    files: sized.map((f) => ({ ...f, chunkSize, chunks: chunkCount(f.size, chunkSize) })),
    bytes: total,
    chunkSize,
    complete: false,
    created: Date.now(),
  };
  const stored = [];
  let have = 0;
  for (const f of manifest.files) {
    const s = await storedChunks(model, f.name);
    stored.push(s);
    for (const i of s) {
      const [start, end] = chunkBounds(f.size, chunkSize, i);
      have += end - start;
    }
  }
  if (typeof navigator !== "undefined" && navigator.storage?.estimate) {
    const { quota = Infinity, usage = 0 } = await navigator.storage.estimate();
    const need = total - have;
    if (need > quota - usage) {
      throw new PocketLMError("QUOTA_EXCEEDED", `${model} needs ${need} more bytes of storage, the browser allows ${Math.max(0, quota - usage)} more`);
    }
    await navigator.storage.persist?.().catch(() => false);
  }
  await tx(["manifests"], "readwrite", (t) => req(t.objectStore("manifests").put(manifest)));
  let loaded = have;
  for (const [k, f] of manifest.files.entries()) {
    for (let i = 0; i < f.chunks; i++) {
      throwIfAborted(signal);
      if (stored[k].has(i)) continue;
      const [start, end] = chunkBounds(f.size, chunkSize, i);
      const data = await fetchChunkWithRetry(f.url, start, end, f.size, signal);
      await putChunk(model, f.name, i, data);
      loaded += data.length;
      onProgress?.({ phase: "download", loaded, total, file: f.name });
    }
  }
  // Written last: from here on the model is present.
  manifest.complete = true;
  await tx(["manifests"], "readwrite", (t) => req(t.objectStore("manifests").put(manifest)));
  return manifest;
}

/** Stored chunks read and verified ahead of the one being copied into wasm (16 MiB each). */
const READ_AHEAD = 3;

/**
 * Reads a present model's files chunk by chunk, verifying each chunk's SHA-256; a chunk that
 * fails is dropped and fetched again from its URL. Calls `begin(fileName, size)` before a file
 * and `push(fileName, bytes)` for each chunk, in order.
 */
export async function readModel(manifest, { begin, push, onProgress, signal }) {
  let loaded = 0;
  // A stored chunk and whether it verifies (IndexedDB and SubtleCrypto work off this thread).
  const read = async (f, i) => {
    const rec = await tx(["chunks"], "readonly", (t) => req(t.objectStore("chunks").get([manifest.model, f.name, i])));
    const [start, end] = chunkBounds(f.size, f.chunkSize, i);
    const ok = !!rec && rec.data.byteLength === end - start && (await sha256Hex(rec.data)) === rec.sha256;
    return { rec, ok, start, end };
  };
  for (const f of manifest.files) {
    begin(f.name, f.size);
    // Reads (and hashes) in flight ahead of the chunk being copied: SubtleCrypto hashes them
    // on its own threads, so several at once go faster than one.
    const ahead = [];
    let unread = 0;
    const readAhead = (upTo) => {
      while (ahead.length < upTo && unread < f.chunks) {
        const p = read(f, unread++);
        // A failed read ahead is reported when its turn comes.
        p.catch(() => {});
        ahead.push(p);
      }
    };
    for (let i = 0; i < f.chunks; i++) {
      throwIfAborted(signal);
      readAhead(READ_AHEAD);
      let { rec, ok, start, end } = await ahead.shift();
      onProgress?.({ phase: "verify", loaded: loaded + (end - start), total: manifest.bytes, file: f.name, chunk: i, ok });
      if (!ok) {
        const data = await fetchChunkWithRetry(f.url, start, end, f.size, signal);
        await putChunk(manifest.model, f.name, i, data);
        rec = { data };
      }
      push(f.name, new Uint8Array(rec.data.buffer ?? rec.data, rec.data.byteOffset ?? 0, end - start));
      loaded += end - start;
      onProgress?.({ phase: "load", loaded, total: manifest.bytes, file: f.name });
      rec = null;
    }
  }
}

/** The cache API: what models are stored, how much space they take, and removal. */
export const cache = {
  async list() {
    const all = await tx(["manifests"], "readonly", (t) => req(t.objectStore("manifests").getAll()));
    return all.filter((m) => m.complete).map((m) => ({ model: m.model, bytes: m.bytes, files: m.files.map((f) => f.name), created: m.created }));
  },
  async has(model) {
    return !!(await getManifest(model))?.complete;
  },
  async delete(model) {
    await tx(["manifests", "chunks"], "readwrite", async (t) => {
      // The manifest goes first: a model without one is never read.
      await req(t.objectStore("manifests").delete(model));
      await req(t.objectStore("chunks").delete(modelRange(model)));
    });
  },
  async clear() {
    await tx(["manifests", "chunks"], "readwrite", async (t) => {
      await req(t.objectStore("manifests").clear());
      await req(t.objectStore("chunks").clear());
    });
  },
  async usage() {
    const models = await this.list();
    const est = typeof navigator !== "undefined" && navigator.storage?.estimate ? await navigator.storage.estimate() : {};
    return { models: models.reduce((a, m) => a + m.bytes, 0), usage: est.usage ?? null, quota: est.quota ?? null };
  },
};
