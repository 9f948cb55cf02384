// The demo: pocketlm used as a web developer would use it (the package copied into ./pkg by
// scripts/build-www.sh). Model picker, progress, streaming chat with a stop button, backend and
// speed shown, the weight cache managed; the app shell works offline through sw.js.
import { createEngine, cache, registry } from "./pkg/index.js";

const $ = (id) => document.getElementById(id);
let engine = null;
let modelInfo = null;
let recommended = {};
let messages = [];
let controller = null;

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = `msg ${role}`;
  div.textContent = text;
  $("log").append(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

const fmtBytes = (n) => (n == null ? "?" : n > 1 << 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n > 1 << 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`);

async function refreshCache() {
  const list = await cache.list().catch(() => []);
  $("cache-list").replaceChildren(
    ...list.map((m) => {
      const li = document.createElement("li");
      li.textContent = `${m.model.split("/").pop()} — ${fmtBytes(m.bytes)}`;
      const del = document.createElement("button");
      del.textContent = "delete";
      del.onclick = async () => {
        await cache.delete(m.model);
        refreshCache();
      };
      li.append(del);
      return li;
    }),
  );
  if (!list.length) $("cache-list").innerHTML = "<li>none yet</li>";
  const u = await cache.usage().catch(() => null);
  $("cache-usage").textContent = u ? `models ${fmtBytes(u.models)} · site storage ${fmtBytes(u.usage)} of ${fmtBytes(u.quota)}` : "";
}

async function fillPicker() {
  const reg = await registry();
  for (const m of reg.models) {
    const o = document.createElement("option");
    o.value = m.id;
    o.textContent = `${m.name}${m.files[0].size ? ` · ${fmtBytes(m.files[0].size)}` : ""}`;
    o.selected = m.id === reg.default;
    $("model-select").append(o);
  }
  return reg;
}

async function load(reg) {
  const file = $("model-file").files[0];
  const id = $("model-select").value;
  const entry = reg.models.find((m) => m.id === id);
  recommended = file ? {} : entry?.recommended ?? {};
  $("load").disabled = true;
  $("progress").hidden = false;
  $("load-status").textContent = "starting…";
  await engine?.unload().catch(() => {});
  engine = null;
  try {
    engine = await createEngine({
      model: file ?? id,
      backend: $("backend").value,
      contextSize: recommended.context_size,
      onProgress: (p) => {
        $("progress").value = p.total ? p.loaded / p.total : 0;
        $("load-status").textContent = `${p.phase} ${p.file ?? ""} ${fmtBytes(p.loaded)} / ${fmtBytes(p.total)}`;
      },
    });
    modelInfo = await engine.info();
    messages = [];
    $("log").replaceChildren();
    $("load-status").textContent = `${modelInfo.architecture}, ${(modelInfo.parameters / 1e6).toFixed(1)}M parameters (${modelInfo.weight_types.join(", ")}) on ${modelInfo.backend} (${modelInfo.wasm}): ${modelInfo.backendReason}. Loaded in ${(modelInfo.loadMs / 1000).toFixed(2)} s.`;
    $("input").disabled = $("send").disabled = false;
    $("input").placeholder = modelInfo.has_chat_template ? "Write a message" : "This model writes stories: give it a beginning";
  } catch (e) {
    $("load-status").textContent = `Could not load: ${e.message} (${e.code})`;
  } finally {
    $("load").disabled = false;
    $("progress").hidden = true;
    refreshCache();
  }
}

async function send(text) {
  const chat = modelInfo.has_chat_template;
  addMessage("user", text);
  const out = addMessage("assistant", "");
  controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  const params = { max_tokens: recommended.max_tokens ?? 256, temperature: recommended.temperature ?? 0.7, top_p: recommended.top_p, top_k: recommended.top_k, stop: recommended.stop, stream: true, signal: controller.signal };
  let reply = "";
  try {
    const stream = chat
      ? await engine.chat.completions.create({ ...params, messages: [...messages, { role: "user", content: text }] })
      : await engine.completions.create({ ...params, prompt: text });
    for await (const chunk of stream) {
      reply += chat ? chunk.choices[0].delta.content ?? "" : chunk.choices[0].text;
      out.textContent = chat ? reply : text + reply;
      if (chunk.usage) {
        const u = chunk.usage;
        $("stats").textContent = `${modelInfo.backend} · prefill ${u.prefill_tokens_per_second.toFixed(1)} tok/s · decode ${u.decode_tokens_per_second.toFixed(1)} tok/s · first token ${u.time_to_first_token_ms.toFixed(0)} ms · ${u.completion_tokens} tokens`;
      }
    }
    if (chat) messages.push({ role: "user", content: text }, { role: "assistant", content: reply });
  } catch (e) {
    if (e.code === "ABORTED") {
      out.textContent += " [stopped]";
      if (chat) messages.push({ role: "user", content: text }, { role: "assistant", content: reply });
    } else addMessage("error", `${e.message} (${e.code})`);
  } finally {
    controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

const reg = await fillPicker();
refreshCache();
$("load").onclick = () => load(reg);
$("stop").onclick = () => controller?.abort();
$("cache-clear").onclick = async () => {
  await cache.clear();
  refreshCache();
};
$("chat-form").onsubmit = (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || !engine || controller) return;
  $("input").value = "";
  send(text);
};
if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js").catch((e) => console.warn("no service worker:", e));
document.body.dataset.ready = "1";
