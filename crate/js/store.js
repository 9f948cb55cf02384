// The IndexedDB weight store: models are downloaded in chunks with HTTP Range, each chunk kept
// with its SHA-256, and a manifest written last, so a model is present only when every chunk
// arrived. An interrupted download resumes from the chunks that are missing; a chunk that no
// longer matches its hash is dropped and fetched again when the model is read.

import { PocketLMError, abortError, throwIfAborted } from "./errors.js";

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

// A chunk's bytes are stored as a Blob: Chromium keeps a Blob in a file of its own and reads it
// back at ~1 GB/s, where a stored Uint8Array is deserialized at ~270 MB/s (287 MB: 0.3 s vs
// 1.1 s). Chunks stored as Uint8Array by earlier versions are still read.
async function putChunk(model, file, index, data) {
  const sha256 = await sha256Hex(data);
  await tx(["chunks"], "readwrite", (t) => req(t.objectStore("chunks").put({ model, file, index, size: data.length, sha256, data: new Blob([data]) })));
}

/** A stored chunk's bytes (a Blob read, or the Uint8Array of earlier versions); null when
 * they cannot be read (the browser lost the Blob's file). */
async function chunkBytes(rec) {
  if (!rec) return null;
  if (!(rec.data instanceof Blob)) return new Uint8Array(rec.data.buffer ?? rec.data, rec.data.byteOffset ?? 0, rec.data.byteLength);
  try {
    return new Uint8Array(await rec.data.arrayBuffer());
  } catch {
    return null;
  }
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

/** Stored chunks read and verified ahead of the one handed over (16 MiB each). */
const READ_AHEAD = 3;
/** Chunks a reader worker hands over before the engine's context has taken them: enough to
 * go on reading through the third of a second that context spends building a 150k-token
 * tokenizer once the header is in (16 MiB each, with READ_AHEAD more being read). */
const READER_WINDOW = 6;

/**
 * A present model's chunks in file order, `{file, index, data, ok}`, each verified against its
 * SHA-256; one that fails (`ok` false) is dropped, fetched again from its URL and stored anew,
 * and `data` is then the fetched bytes.
 */
export async function* verifiedChunks(manifest, signal) {
  // A stored chunk and whether it verifies (IndexedDB and SubtleCrypto work off this thread).
  const read = async (f, i) => {
    const rec = await tx(["chunks"], "readonly", (t) => req(t.objectStore("chunks").get([manifest.model, f.name, i])));
    const [start, end] = chunkBounds(f.size, f.chunkSize, i);
    const data = await chunkBytes(rec);
    const ok = !!data && data.byteLength === end - start && (await sha256Hex(data)) === rec.sha256;
    return { data, ok, start, end };
  };
  for (const f of manifest.files) {
    // Reads (and hashes) in flight ahead of the chunk handed over: SubtleCrypto hashes them
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
      let { data, ok, start, end } = await ahead.shift();
      if (!ok) {
        data = await fetchChunkWithRetry(f.url, start, end, f.size, signal);
        await putChunk(manifest.model, f.name, i, data);
      }
      yield { file: f.name, index: i, data, ok };
    }
  }
}

/** The reader worker could not start (a script blocked by the page's policy, say). */
class ReaderUnavailable extends Error {}

/**
 * `verifiedChunks` run in a reader worker (reader.js). Reading a stored Blob busies the thread
 * that asks for it; in a worker of its own, the reads overlap what this thread does with the
 * chunks: copying them into wasm memory and building the tokenizer once the header is in.
 * Started before the model is asked for (`ChunkReader.start`), so that the worker's start-up
 * overlaps the wasm module's.
 */
export class ChunkReader {
  #worker;
  #inbox = [];
  #failure = null;
  #wake = null;

  /** A started reader, or null where this context cannot start workers. */
  static start() {
    if (typeof Worker === "undefined") return null;
    try {
      return new ChunkReader(new Worker(new URL("./reader.js", import.meta.url), { type: "module", name: "pocketlm-reader" }));
    } catch {
      return null;
    }
  }

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      this.#inbox.push(data);
      this.#wakeUp();
    };
    // Also a script that fails to load, which may happen before `chunks` is called.
    worker.onerror = (e) => {
      e.preventDefault?.();
      this.#failure ??= new ReaderUnavailable(e.message ?? "the reader worker failed");
      this.#wakeUp();
    };
  }

  #wakeUp() {
    this.#wake?.();
    this.#wake = null;
  }

  /** The manifest's chunks, as `verifiedChunks` yields them; the reader is closed after.
   * The reading starts here, not at the first `next()`. */
  chunks(manifest, signal) {
    this.#worker.postMessage({ manifest, window: READER_WINDOW });
    return this.#received(signal);
  }

  async *#received(signal) {
    const onAbort = () => {
      this.#failure ??= abortError();
      this.#wakeUp();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        while (!this.#inbox.length && !this.#failure) await new Promise((resolve) => (this.#wake = resolve));
        if (this.#failure) throw this.#failure;
        const m = this.#inbox.shift();
        if (m.type === "done") return;
        if (m.type === "error") throw new PocketLMError(m.error.code, m.error.message);
        yield { file: m.file, index: m.index, ok: m.ok, data: new Uint8Array(m.buffer, m.byteOffset, m.byteLength) };
        this.#worker.postMessage({ ack: true });
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.close();
    }
  }

  close() {
    this.#worker.terminate();
  }
}

/**
 * Reads a present model's files chunk by chunk (through `reader`, a ChunkReader, when there is
 * one), verifying each chunk's SHA-256; a chunk that fails is dropped and fetched again from its
 * URL. Calls `begin(fileName, size)` before a file and `push(fileName, bytes)` for each chunk,
 * in order.
 */
export async function readModel(manifest, { begin, push, onProgress, signal }, reader = null) {
  let chunks = reader ? reader.chunks(manifest, signal) : verifiedChunks(manifest, signal);
  let received = 0;
  const next = async () => {
    try {
      const { value } = await chunks.next();
      received++;
      return value;
    } catch (e) {
      if (!(e instanceof ReaderUnavailable) || received) throw e;
      chunks = verifiedChunks(manifest, signal);
      return next();
    }
  };
  let loaded = 0;
  try {
    for (const f of manifest.files) {
      begin(f.name, f.size);
      for (let i = 0; i < f.chunks; i++) {
        throwIfAborted(signal);
        const c = await next();
        const [start, end] = chunkBounds(f.size, f.chunkSize, i);
        if (c?.file !== f.name || c.index !== i || c.data.length !== end - start) throw new PocketLMError("INTERNAL", `${manifest.model}: chunk ${i} of ${f.name} came out of order`);
        onProgress?.({ phase: "verify", loaded: loaded + (end - start), total: manifest.bytes, file: f.name, chunk: i, ok: c.ok });
        push(f.name, c.data);
        loaded += end - start;
        onProgress?.({ phase: "load", loaded, total: manifest.bytes, file: f.name });
      }
    }
  } finally {
    // Ends the reader worker (a no-op when the chunks ended in an error).
    await chunks.return().catch(() => {});
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
