// The dedicated worker the engine lives in by default: runs LocalEngine and answers the page's
// proxy (index.js). Messages in: {id, method, args} or {type: "abort", id}. Messages out:
// {id, type: "progress" | "piece" | "result" | "error", ...}.

import { LocalEngine, dispatch } from "./core.js";
import { PocketLMError } from "./errors.js";

let engine = null;
const controllers = new Map();

const post = (m) => self.postMessage(m);

async function handle(id, method, args, signal) {
  if (method === "create") {
    engine?.unload();
    engine = null;
    engine = await LocalEngine.create({ ...args, signal, onProgress: (progress) => post({ id, type: "progress", progress }) });
    return engine.info();
  }
  if (!engine) throw new PocketLMError("INVALID_ARGUMENT", "no model is loaded (the engine was unloaded)");
  if (method === "unload") {
    engine.unload();
    engine = null;
    return null;
  }
  return dispatch(engine, method, args, { onPiece: (text) => post({ id, type: "piece", text }), signal });
}

self.onmessage = async ({ data }) => {
  if (data.type === "abort") {
    controllers.get(data.id)?.abort();
    return;
  }
  const controller = new AbortController();
  controllers.set(data.id, controller);
  try {
    const result = await handle(data.id, data.method, data.args ?? {}, controller.signal);
    post({ id: data.id, type: "result", result });
  } catch (e) {
    post({ id: data.id, type: "error", error: PocketLMError.from(e).toJSON() });
  } finally {
    controllers.delete(data.id);
  }
};
