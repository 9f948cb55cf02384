//! The wasm-bindgen surface the JS glue (`crate/js/`) drives: a [`ModelLoader`] that receives a
//! model's files chunk by chunk (no JS buffer ever holds a whole model), and an [`Engine`] that
//! tokenizes, renders chat templates and generates a piece of text per call, so the caller's
//! event loop runs between tokens (streaming, abort). Every failure reaches JS as an `Error`
//! with a `code` property ([`crate::Error::code`]); nothing panics on bad input.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::backend::gpu::{AdapterSummary, GpuOptions, GpuStats};
use crate::chat::Message;
use crate::error::Error;
use crate::model::{GgufHeader, LoadOptions, Model};
use crate::quant::GgmlType;
use crate::runtime::{BackendChoice, GenerateOptions, Generator, Session};
use crate::sampling::SamplingParams;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Starts `n` Web Workers on this module's shared memory and splits the CPU backend's mat-vecs
/// across them (the threaded build only: it needs atomics, and a cross-origin isolated page).
/// Resolves to the thread count in use. Call it once, before loading a model, from a worker
/// (the calling thread waits on the pool, which the page's main thread may not do).
#[cfg(feature = "threads")]
#[wasm_bindgen(js_name = startThreads)]
pub async fn start_threads(n: usize) -> Result<usize, JsValue> {
    if n < 1 {
        return Err(bad_argument("threads must be at least 1"));
    }
    if crate::backend::cpu::threads::threads() == 1 {
        wasm_bindgen_futures::JsFuture::from(wasm_bindgen_rayon::init_thread_pool(n)).await?;
    }
    Ok(crate::backend::cpu::threads::set_threads(n))
}

/// This module's memory (a `WebAssembly.Memory`), which [`ModelLoader::chunk_target`]'s offsets
/// index.
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

fn wasm_memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65536) as f64
}

/// A JS `Error` with the message and `code` of `e`.
fn js_error(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&err, &"code".into(), &e.code().into());
    err.into()
}

fn bad_argument(msg: impl Into<String>) -> JsValue {
    js_error(Error::InvalidArgument(msg.into()))
}

fn from_js<T: for<'de> Deserialize<'de> + Default>(v: JsValue, what: &str) -> Result<T, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(v).map_err(|e| bad_argument(format!("{what}: {e}")))
}

fn to_js<T: Serialize>(v: &T) -> JsValue {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL)
}

/// `n` zero bytes, or `None` when memory cannot grow so far. Zeroed by the allocator, which
/// takes fresh pages of wasm memory (already zero) without writing them again.
fn zeroed_bytes(n: usize) -> Option<Vec<u8>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(n).ok()?;
    // SAFETY: a non-zero layout; a null result is handled.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    // SAFETY: `p` was allocated by the global allocator with `Vec<u8>`'s layout for `n`
    // elements, all initialized (zero).
    (!p.is_null()).then(|| unsafe { Vec::from_raw_parts(p, n, n) })
}

struct LoaderFile {
    name: String,
    /// A buffer of the file's announced size, zeroed at first; the first `filled` bytes are the file's.
    bytes: Vec<u8>,
    filled: usize,
    /// A GGUF file's header, read as soon as it arrived (see [`LoaderFile::read_header_early`]).
    header: Option<GgufHeader>,
    /// `filled` when the header was last tried.
    header_tried_at: usize,
}

impl LoaderFile {
    /// Reads a GGUF file's header (and builds its tokenizer) from the bytes arrived so far,
    /// while the rest of the file is still coming: tried again whenever the bytes have doubled
    /// since the last try, so a header longer than a chunk costs a few tries. A failure is
    /// left to [`ModelLoader::finish`], which reads the header again from the whole file and
    /// reports what is wrong.
    fn read_header_early(&mut self, model: &str) {
        if !self.name.ends_with(".gguf") || self.header.is_some() || self.filled == self.bytes.len() || self.filled < 2 * self.header_tried_at {
            return;
        }
        self.header_tried_at = self.filled;
        self.header = GgufHeader::parse(&format!("{model}/{}", self.name), &self.bytes[..self.filled], self.bytes.len()).ok();
    }
}

/// Receives a model's files chunk by chunk into wasm memory, then builds an [`Engine`].
/// A GGUF model is one file (`*.gguf`); a Hugging Face model is `config.json`,
/// `tokenizer.json`, `model.safetensors` and optionally `tokenizer_config.json`.
#[wasm_bindgen]
pub struct ModelLoader {
    name: String,
    files: Vec<LoaderFile>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct EngineOptions {
    /// Tokens the KV cache holds (default 2048, capped at the model's context).
    context_size: Option<usize>,
    /// What safetensors weights are quantized to at load: "q4_0" (default), "q8_0" or "none".
    quantize: Option<String>,
    /// "auto" (default: WebGPU when an adapter exists and the model fits it), "webgpu" or "cpu".
    backend: Option<String>,
}

#[wasm_bindgen]
impl ModelLoader {
    /// `name` names the model in messages (its URL or file name).
    #[wasm_bindgen(constructor)]
    pub fn new(name: &str) -> ModelLoader {
        ModelLoader { name: name.to_string(), files: Vec::new() }
    }

    /// Announces a file of `size` bytes and allocates its memory at once, so a model that
    /// cannot fit fails before any byte is copied.
    #[wasm_bindgen(js_name = beginFile)]
    pub fn begin_file(&mut self, file: &str, size: f64) -> Result<(), JsValue> {
        if !(size >= 0.0 && size.fract() == 0.0 && size <= usize::MAX as f64) {
            return Err(js_error(Error::OutOfMemory { what: format!("{}/{file}", self.name), bytes: size as u64 }));
        }
        if self.files.iter().any(|f| f.name == file) {
            return Err(bad_argument(format!("file {file} was already begun")));
        }
        let size = size as usize;
        let bytes = zeroed_bytes(size).ok_or_else(|| js_error(Error::OutOfMemory { what: format!("{}/{file}", self.name), bytes: size as u64 }))?;
        self.files.push(LoaderFile { name: file.to_string(), bytes, filled: 0, header: None, header_tried_at: 0 });
        Ok(())
    }

    /// `file`, when `len` more bytes fit in what it announced.
    fn room_for(&mut self, file: &str, len: usize) -> Result<&mut LoaderFile, JsValue> {
        let name = &self.name;
        let f = self.files.iter_mut().find(|f| f.name == file).ok_or_else(|| bad_argument(format!("{file} was not begun (beginFile)")))?;
        if f.filled + len > f.bytes.len() {
            return Err(js_error(Error::format(&format!("{name}/{file}"), format!("more bytes than the {} announced", f.bytes.len()))));
        }
        Ok(f)
    }

    /// Where the next `len` bytes of `file` go: a byte offset into this module's memory
    /// ([`wasm_memory`]) that JS fills before [`ModelLoader::commit`], so a chunk crosses into wasm
    /// with one copy and no temporary buffer. Nothing may run in wasm between the two calls.
    #[wasm_bindgen(js_name = chunkTarget)]
    pub fn chunk_target(&mut self, file: &str, len: usize) -> Result<usize, JsValue> {
        let f = self.room_for(file, len)?;
        Ok(f.bytes[f.filled..].as_ptr() as usize)
    }

    /// The `len` bytes at [`ModelLoader::chunk_target`]'s place are written. Once a GGUF
    /// file's header is among them, this also reads it and builds the tokenizer (a few hundred
    /// ms for a large vocabulary), while the JS side's reads of later chunks go on.
    pub fn commit(&mut self, file: &str, len: usize) -> Result<(), JsValue> {
        let model = self.name.clone();
        let f = self.room_for(file, len)?;
        f.filled += len;
        f.read_header_early(&model);
        Ok(())
    }

    /// Parses the files and builds the engine on the backend asked for (uploading the weights
    /// to the GPU for WebGPU). `options`: `{ context_size?, quantize?, backend? }`.
    pub async fn finish(self, options: JsValue) -> Result<Engine, JsValue> {
        let opts: EngineOptions = from_js(options, "engine options")?;
        let quantize = match opts.quantize.as_deref() {
            None | Some("q4_0") => Some(GgmlType::Q4_0),
            Some("q8_0") => Some(GgmlType::Q8_0),
            Some("none") => None,
            Some(q) => return Err(bad_argument(format!("quantize must be \"q4_0\", \"q8_0\" or \"none\", not {q:?}"))),
        };
        let name = self.name;
        let mut files = self.files;
        for f in &files {
            if f.filled != f.bytes.len() {
                return Err(js_error(Error::format(&format!("{name}/{}", f.name), format!("truncated: {} of {} bytes", f.filled, f.bytes.len()))));
            }
        }
        let model = if let Some(i) = files.iter().position(|f| f.name.ends_with(".gguf")) {
            let f = files.swap_remove(i);
            match f.header {
                Some(header) => Model::from_gguf_header(header, f.bytes),
                None => Model::from_gguf(&format!("{name}/{}", f.name), f.bytes),
            }
        } else {
            let mut take = |file: &str| files.iter().position(|f| f.name == file).map(|i| files.swap_remove(i).bytes);
            let missing = |file: &str| js_error(Error::format(&name, format!("a Hugging Face model needs {file}")));
            let config = take("config.json").ok_or_else(|| missing("config.json"))?;
            let tokenizer = take("tokenizer.json").ok_or_else(|| missing("tokenizer.json"))?;
            let weights = take("model.safetensors").ok_or_else(|| missing("model.safetensors"))?;
            let tok_config = take("tokenizer_config.json");
            Model::from_hf(&name, &config, &tokenizer, tok_config.as_deref(), weights, &LoadOptions { quantize })
        }
        .map_err(js_error)?;
        let load_peak = wasm_memory_bytes();
        let context = opts.context_size.unwrap_or(2048);
        let choice = BackendChoice::parse(opts.backend.as_deref().unwrap_or("auto")).map_err(js_error)?;
        if choice != BackendChoice::Cpu && !has_webgpu() {
            if choice == BackendChoice::Gpu {
                return Err(js_error(Error::gpu(crate::error::GpuFailure::NoAdapter, "this browser has no WebGPU (navigator.gpu)")));
            }
            let mut session = Session::new(model, context).map_err(js_error)?;
            session.set_fallback_reason("no WebGPU in this browser (navigator.gpu): wasm SIMD on the CPU");
            return Ok(Engine::new(session, None, load_peak));
        }
        let (session, adapter) = Session::open(model, context, choice, &GpuOptions::default()).await.map_err(js_error)?;
        Ok(Engine::new(session, adapter, load_peak))
    }
}

/// Whether this global (window or worker) has `navigator.gpu`.
fn has_webgpu() -> bool {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"navigator".into()).ok().filter(|n| !n.is_undefined()).and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()).ok()).is_some_and(|g| !g.is_undefined() && !g.is_null())
}

struct EngineState {
    session: Session<Model>,
    generator: Option<Generator>,
}

/// A loaded model with its KV cache: one conversation at a time. Generation calls return
/// promises (a GPU step reads its token back asynchronously); one call runs at a time, and a
/// call made while another is running fails with a clear error instead of waiting.
#[wasm_bindgen]
pub struct Engine {
    state: Rc<RefCell<EngineState>>,
    adapter: Option<AdapterSummary>,
    /// The device, outside the state so that a loss can be signalled during a call.
    gpu: Option<std::sync::Arc<crate::backend::gpu::GpuContext>>,
    /// wasm memory once the model was built, before its session (KV cache, scratch): the peak
    /// of loading, as wasm memory never shrinks.
    load_peak_bytes: f64,
}

fn busy() -> JsValue {
    bad_argument("the engine is busy with another call: await it first")
}

/// Generation options in the OpenAI request's names.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RequestOptions {
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    min_p: Option<f32>,
    repetition_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    seed: Option<f64>,
    stop: Option<StopStrings>,
    ignore_eos: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopStrings {
    One(String),
    Many(Vec<String>),
}

impl RequestOptions {
    fn into_generate_options(self) -> Result<GenerateOptions, JsValue> {
        let d = SamplingParams::default();
        let seed = match self.seed {
            Some(s) if s.is_finite() && s >= 0.0 => s as u64,
            Some(s) => return Err(bad_argument(format!("seed must be a non-negative integer, not {s}"))),
            None => (js_sys::Math::random() * 9007199254740991.0) as u64,
        };
        let sampling = SamplingParams {
            // OpenAI's default temperature is 1; pocketlm's requests default to greedy only when asked.
            temperature: self.temperature.unwrap_or(1.0),
            top_k: self.top_k.unwrap_or(d.top_k),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            seed,
            ..d
        };
        sampling.validate().map_err(js_error)?;
        let stop = match self.stop {
            None => Vec::new(),
            Some(StopStrings::One(s)) => vec![s],
            Some(StopStrings::Many(v)) => v,
        };
        Ok(GenerateOptions { max_tokens: self.max_tokens.unwrap_or(256), sampling, stop, ignore_eos: self.ignore_eos.unwrap_or(false) })
    }
}

#[derive(Serialize)]
struct Info {
    name: String,
    architecture: String,
    parameters: u64,
    vocab_size: usize,
    layers: usize,
    dim: usize,
    heads: usize,
    kv_heads: usize,
    context_length: usize,
    context_size: usize,
    weight_types: Vec<String>,
    has_chat_template: bool,
    wasm_memory_bytes: f64,
    /// wasm memory when the model was built, before the session: the peak of loading.
    load_peak_bytes: f64,
    /// The KV cache's bytes (on the CPU: in wasm memory; on the GPU: device memory).
    kv_cache_bytes: f64,
    relaxed_simd: bool,
    /// CPU threads in use (more than 1 only in the threaded build, started by `startThreads`).
    threads: usize,
    /// Mat-vecs run split across threads so far.
    parallel_sections: f64,
    /// "webgpu" or "cpu".
    backend: &'static str,
    /// Why the CPU runs though WebGPU was wanted (no adapter, a limit, a lost device).
    backend_reason: Option<String>,
    adapter: Option<AdapterSummary>,
    gpu_stats: Option<GpuStats>,
}

#[derive(Serialize)]
struct Finished {
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
    text: String,
    finish_reason: &'static str,
    prompt_tokens: usize,
    completion_tokens: usize,
    cached_prompt_tokens: usize,
    prefill_ms: f64,
    decode_ms: f64,
    prefill_tok_s: f64,
    decode_tok_s: f64,
}

impl Engine {
    fn new(session: Session<Model>, adapter: Option<AdapterSummary>, load_peak_bytes: f64) -> Engine {
        let gpu = session.gpu().map(|g| g.model().ctx().clone());
        Engine { state: Rc::new(RefCell::new(EngineState { session, generator: None })), adapter, gpu, load_peak_bytes }
    }

    fn with<T>(&self, f: impl FnOnce(&mut EngineState) -> Result<T, JsValue>) -> Result<T, JsValue> {
        let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
        f(&mut st)
    }

    /// Runs `f` on the state as a promise; the state stays borrowed until it settles.
    fn promise<F, Fut>(&self, f: F) -> js_sys::Promise
    where
        F: FnOnce(Rc<RefCell<EngineState>>) -> Fut,
        Fut: std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
    {
        if self.state.try_borrow_mut().is_err() {
            return js_sys::Promise::reject(&busy());
        }
        wasm_bindgen_futures::future_to_promise(f(self.state.clone()))
    }
}

#[wasm_bindgen]
impl Engine {
    /// What is loaded: `{name, architecture, parameters, vocab_size, layers, context_size,
    /// backend, backend_reason, adapter, gpu_stats, ...}`.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        self.with(|st| {
            let session = &st.session;
            let m = session.model();
            let w = &m.weights;
            let mut types: Vec<String> = std::iter::once(&w.token_embd).chain(w.layers.iter().flat_map(|l| [&l.wq, &l.w_gate, &l.w_down])).map(|q| q.ty.name().to_string()).collect();
            types.sort();
            types.dedup();
            let s = &m.spec;
            let parameters: usize = w.matrices().map(|q| q.rows * q.cols).sum();
            let on_gpu = session.backend() == "gpu";
            Ok(to_js(&Info {
                name: m.name.clone(),
                architecture: format!("{:?}", s.arch).to_lowercase(),
                parameters: parameters as u64,
                vocab_size: s.vocab_size,
                layers: s.n_layers,
                dim: s.dim,
                heads: s.n_heads,
                kv_heads: s.n_kv_heads,
                context_length: s.context_length,
                context_size: session.capacity(),
                weight_types: types,
                has_chat_template: m.chat_template.is_some(),
                wasm_memory_bytes: wasm_memory_bytes(),
                load_peak_bytes: self.load_peak_bytes,
                kv_cache_bytes: session.kv_cache_bytes() as f64,
                relaxed_simd: cfg!(target_feature = "relaxed-simd"),
                threads: crate::backend::cpu::threads::threads(),
                parallel_sections: crate::backend::cpu::threads::parallel_sections() as f64,
                backend: if on_gpu { "webgpu" } else { "cpu" },
                backend_reason: session.fallback_reason().map(str::to_string),
                adapter: if on_gpu { self.adapter.clone() } else { None },
                gpu_stats: session.gpu_stats(),
            }))
        })
    }

    /// Token ids of `text`; `add_special` adds BOS when the model wants one.
    pub fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<u32>, JsValue> {
        self.with(|st| st.session.model().tokenizer.encode(text, add_special).map_err(js_error))
    }

    /// The text of `ids`; `skip_special` drops special tokens such as BOS/EOS.
    pub fn detokenize(&self, ids: Vec<u32>, skip_special: bool) -> Result<String, JsValue> {
        self.with(|st| {
            let vocab = st.session.model().spec.vocab_size;
            if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
                return Err(bad_argument(format!("token id {bad} is outside the vocabulary of {vocab}")));
            }
            st.session.model().tokenizer.decode(&ids, skip_special).map_err(js_error)
        })
    }

    /// The prompt text of `messages` (`[{role, content}]`) through the model's chat template.
    #[wasm_bindgen(js_name = applyChatTemplate)]
    pub fn apply_chat_template(&self, messages: JsValue, add_generation_prompt: bool) -> Result<String, JsValue> {
        let messages: Vec<Message> = serde_wasm_bindgen::from_value(messages).map_err(|e| bad_argument(format!("messages must be [{{role, content}}]: {e}")))?;
        self.with(|st| st.session.model().apply_chat_template(&messages, add_generation_prompt).map_err(js_error))
    }

    /// Starts a chat completion: renders `messages`, prefills (reusing the cache of the previous
    /// turn when the conversation extends it). Resolves when ready; then await
    /// [`Engine::next_text`] until it gives `undefined`.
    #[wasm_bindgen(js_name = startChat)]
    pub fn start_chat(&self, messages: JsValue, options: JsValue) -> js_sys::Promise {
        let ids = self.apply_chat_template(messages, true).and_then(|text| self.tokenize(&text, false));
        // The template writes BOS itself when the model wants one.
        self.start_ids(ids, options)
    }

    /// Starts a raw completion of `prompt` (BOS added when the model wants one).
    #[wasm_bindgen(js_name = startCompletion)]
    pub fn start_completion(&self, prompt: &str, options: JsValue) -> js_sys::Promise {
        let ids = self.tokenize(prompt, true);
        self.start_ids(ids, options)
    }

    fn start_ids(&self, ids: Result<Vec<u32>, JsValue>, options: JsValue) -> js_sys::Promise {
        let opts = from_js::<RequestOptions>(options, "request options").and_then(RequestOptions::into_generate_options);
        self.promise(move |state| async move {
            let (ids, opts) = (ids?, opts?);
            let mut st = state.borrow_mut();
            st.generator = None;
            let g = st.session.start_async(&ids, &opts).await.map_err(js_error)?;
            st.generator = Some(g);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Generates one token; resolves with the text it completes (possibly empty), or
    /// `undefined` when the generation has ended.
    #[wasm_bindgen(js_name = nextText)]
    pub fn next_text(&self) -> js_sys::Promise {
        self.promise(|state| async move {
            let mut st = state.borrow_mut();
            let EngineState { session, generator } = &mut *st;
            let g = generator.as_mut().ok_or_else(|| bad_argument("no generation in progress"))?;
            Ok(session.next_text_async(g).await.map_err(js_error)?.map_or(JsValue::UNDEFINED, JsValue::from))
        })
    }

    /// Stops the generation in progress; [`Engine::finish`] then reports `finish_reason: "aborted"`.
    pub fn abort(&self) -> Result<(), JsValue> {
        self.with(|st| {
            if let Some(g) = st.generator.as_mut() {
                g.abort();
            }
            Ok(())
        })
    }

    /// Ends the generation and returns `{ids, text, finish_reason, prompt_tokens,
    /// completion_tokens, cached_prompt_tokens, prefill_ms, decode_ms, prefill_tok_s, decode_tok_s}`.
    pub fn finish(&self) -> Result<JsValue, JsValue> {
        let g = self.with(|st| st.generator.take().ok_or_else(|| bad_argument("no generation in progress")))?.finish();
        Ok(to_js(&Finished {
            prefill_tok_s: g.prefill_tok_s(),
            decode_tok_s: g.decode_tok_s(),
            prompt_tokens: g.prompt_ids.len(),
            completion_tokens: g.ids.len(),
            cached_prompt_tokens: g.cached_prompt_tokens,
            finish_reason: g.finish_reason.as_str(),
            prefill_ms: g.prefill_ms,
            decode_ms: g.decode_ms,
            prompt_ids: g.prompt_ids,
            ids: g.ids,
            text: g.text,
        }))
    }

    /// Forgets the cached conversation.
    pub fn reset(&self) -> Result<(), JsValue> {
        self.with(|st| {
            st.generator = None;
            st.session.reset();
            Ok(())
        })
    }

    /// Simulates the loss of the GPU device (what a driver reset does), for tests of recovery:
    /// the next step moves the session to the CPU. No effect on the CPU.
    #[wasm_bindgen(js_name = simulateDeviceLoss)]
    pub fn simulate_device_loss(&self) {
        if let Some(ctx) = &self.gpu {
            ctx.simulate_loss();
        }
    }
}
