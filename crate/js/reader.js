// The chunk reader: a worker that reads a present model's chunks out of IndexedDB and verifies
// them (store.js's verifiedChunks), handing each to the engine's context as a transferred
// buffer. Reading a stored Blob busies the thread that asks for it; here that is not the thread
// that copies the chunks into wasm memory and builds the tokenizer, so the two overlap.
// Messages in: {manifest, window} (at most `window` chunks handed over and not yet taken), then
// {ack: true} for each chunk taken. Out: {type: "chunk" | "done" | "error", ...}.

import { PocketLMError } from "./errors.js";
import { verifiedChunks } from "./store.js";

let credit = 0;
let wake = null;

self.onmessage = async ({ data }) => {
  if (data.ack) {
    credit++;
    wake?.();
    wake = null;
    return;
  }
  credit = data.window;
  try {
    for await (const c of verifiedChunks(data.manifest)) {
      while (credit === 0) await new Promise((resolve) => (wake = resolve));
      credit--;
      const { buffer, byteOffset, byteLength } = c.data;
      self.postMessage({ type: "chunk", file: c.file, index: c.index, ok: c.ok, buffer, byteOffset, byteLength }, [buffer]);
    }
    self.postMessage({ type: "done" });
  } catch (e) {
    self.postMessage({ type: "error", error: PocketLMError.from(e).toJSON() });
  }
};
