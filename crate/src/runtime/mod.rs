//! A generation session: prefill, the decode loop, the KV cache kept across turns, stop
//! conditions and streaming of whole UTF-8 characters.

use std::borrow::Borrow;
use std::sync::Arc;

use crate::backend::gpu::{AdapterSummary, GpuContext, GpuModel, GpuOptions, GpuSession, GpuStats, StepOutput, Want};
use crate::clock::now_ms;
use crate::error::{Error, GpuFailure, Result};
use crate::model::forward::{forward, forward_tokens, ForwardState, KvCache};
use crate::model::Model;
use crate::sampling::{Sampler, SamplingParams};
use crate::tokenizer::DecodeState;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation stops before the first occurrence of any of these strings.
    pub stop: Vec<String>,
    /// Keep going past end-of-sequence tokens.
    pub ignore_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { max_tokens: 128, sampling: SamplingParams::default(), stop: Vec::new(), ignore_eos: false }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The KV cache is full: nothing more fits in this session's context.
    ContextFull,
    /// The caller asked to stop.
    Aborted,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ContextFull => "context_full",
            FinishReason::Aborted => "aborted",
        }
    }
}

/// What one call to [`Session::generate`] produced.
#[derive(Debug, Clone)]
pub struct Generation {
    pub prompt_ids: Vec<u32>,
    pub ids: Vec<u32>,
    pub text: String,
    pub finish_reason: FinishReason,
    /// Prompt tokens served from the KV cache of an earlier turn.
    pub cached_prompt_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
}

impl Generation {
    pub fn prefill_tok_s(&self) -> f64 {
        let n = (self.prompt_ids.len() - self.cached_prompt_tokens) as f64;
        if self.prefill_ms > 0.0 { n * 1000.0 / self.prefill_ms } else { 0.0 }
    }
    pub fn decode_tok_s(&self) -> f64 {
        // The first generated token comes out of prefill's logits; decode covers the rest.
        let n = self.ids.len().saturating_sub(1) as f64;
        if self.decode_ms > 0.0 { n * 1000.0 / self.decode_ms } else { 0.0 }
    }
}

/// Where a session computes: its KV cache and scratch live on that backend.
enum Compute {
    Cpu { cache: KvCache, state: ForwardState },
    Gpu(GpuSession),
}

/// A model with its KV cache. Consecutive calls whose prompt extends the tokens already in the
/// cache reuse them. `M` is how the session holds its model: `&Model`, `Arc<Model>` or `Model`.
///
/// The methods are `async` because the GPU backend reads its results back asynchronously in a
/// browser; on the CPU they complete at once. Natively, the same methods without `_async` block.
pub struct Session<M: Borrow<Model>> {
    model: M,
    compute: Compute,
    /// The tokens whose keys/values are in the cache, in order.
    tokens: Vec<u32>,
    /// The last logits a GPU step read back (the CPU keeps them in its state).
    gpu_logits: Vec<f32>,
    /// Why the session runs on the CPU when the GPU was asked for or lost.
    fallback: Option<String>,
}

/// The backend a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    Cpu,
    Gpu,
    /// The GPU when an adapter exists and the model fits it, else the CPU.
    Auto,
}

impl BackendChoice {
    pub fn parse(s: &str) -> Result<BackendChoice> {
        match s {
            "cpu" => Ok(BackendChoice::Cpu),
            "gpu" | "webgpu" => Ok(BackendChoice::Gpu),
            "auto" => Ok(BackendChoice::Auto),
            _ => Err(Error::InvalidArgument(format!("backend must be \"auto\", \"webgpu\" (or \"gpu\") or \"cpu\", not \"{s}\""))),
        }
    }
}

/// One generation in progress, advanced a piece of text at a time by [`Session::next_text`]
/// (so a caller can yield between tokens: a browser's event loop, an abort signal).
pub struct Generator {
    opts: GenerateOptions,
    sampler: Sampler,
    decode: DecodeState,
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
    text: String,
    /// Bytes of `text` already handed out.
    emitted: usize,
    history: Vec<u32>,
    /// The next token, already sampled on the GPU with the step that produced its logits.
    pending: Option<u32>,
    finish: Option<FinishReason>,
    cached: usize,
    prefill_ms: f64,
    decode_start: f64,
    decode_end: f64,
}

impl Generator {
    /// Whether generation has ended; [`Generator::finish`] then gives the result.
    pub fn is_done(&self) -> bool {
        self.finish.is_some()
    }

    /// Stops the generation: what was already handed out stays, the rest is dropped.
    pub fn abort(&mut self) {
        if self.finish.is_none() {
            self.finish = Some(FinishReason::Aborted);
            self.decode_end = now_ms();
        }
    }

    /// Ends the generation; returns the text not yet handed out (held back for a stop string
    /// that never came), `None` when there is none.
    fn end(&mut self, reason: FinishReason) -> Option<String> {
        self.finish = Some(reason);
        self.decode_end = now_ms();
        let rest = (self.text.len() > self.emitted).then(|| self.text[self.emitted..].to_string());
        self.emitted = self.text.len();
        rest
    }

    /// The result. Text still held back (a possible stop-string prefix) is part of it unless
    /// the generation was aborted.
    pub fn finish(mut self) -> Generation {
        self.abort();
        let finish_reason = self.finish.unwrap_or(FinishReason::Aborted);
        let mut text = self.text;
        if finish_reason == FinishReason::Aborted {
            text.truncate(self.emitted);
        }
        Generation {
            prompt_ids: self.prompt_ids,
            ids: self.ids,
            text,
            finish_reason,
            cached_prompt_tokens: self.cached,
            prefill_ms: self.prefill_ms,
            decode_ms: self.decode_end - self.decode_start,
        }
    }
}

impl<M: Borrow<Model>> Session<M> {
    /// A CPU session holding up to `context_size` tokens (capped at the model's trained context).
    pub fn new(model: M, context_size: usize) -> Result<Session<M>> {
        let capacity = Self::capacity_for(model.borrow(), context_size)?;
        let spec = &model.borrow().spec;
        let compute = Compute::Cpu { cache: KvCache::new(spec, capacity), state: ForwardState::new(spec) };
        Ok(Session { model, compute, tokens: Vec::new(), gpu_logits: Vec::new(), fallback: None })
    }

    /// A session on the backend `choice` names. `Auto` tries the GPU and runs on the CPU when
    /// there is no adapter or the model does not fit it; the reason is then in
    /// [`Session::fallback_reason`]. Returns the adapter when the GPU was opened.
    pub async fn open(model: M, context_size: usize, choice: BackendChoice, gpu: &GpuOptions) -> Result<(Session<M>, Option<AdapterSummary>)> {
        if choice == BackendChoice::Cpu {
            return Ok((Session::new(model, context_size)?, None));
        }
        let opened = async {
            let ctx = GpuContext::new(gpu).await?;
            let summary = ctx.summary.clone();
            let weights = GpuModel::load(ctx, model.borrow()).await?;
            Ok::<_, Error>((weights, summary))
        }
        .await;
        match opened {
            Ok((weights, summary)) => Ok((Session::new_gpu(model, weights, context_size)?, Some(summary))),
            Err(e) if choice == BackendChoice::Auto && matches!(e, Error::Gpu { .. } | Error::OutOfMemory { .. }) => {
                let mut s = Session::new(model, context_size)?;
                s.fallback = Some(format!("{} ({})", e, e.code()));
                Ok((s, None))
            }
            Err(e) => Err(e),
        }
    }

    /// Records why the session runs on the CPU (for a caller that chose the CPU itself).
    pub fn set_fallback_reason(&mut self, reason: &str) {
        self.fallback = Some(reason.to_string());
    }

    /// Why this session runs on the CPU though the GPU was wanted (no adapter, a limit, a
    /// lost device), if it does.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Moves the session to the CPU (after a lost device): the tokens in the GPU's cache are
    /// run again on the CPU, so the conversation goes on.
    pub fn move_to_cpu(&mut self, reason: &str) -> Result<()> {
        let model = self.model.borrow();
        let spec = &model.spec;
        let (mut cache, mut state) = (KvCache::new(spec, self.capacity()), ForwardState::new(spec));
        forward_tokens(spec, &model.weights, &mut state, &mut cache, &self.tokens, false)?;
        self.compute = Compute::Cpu { cache, state };
        self.fallback = Some(reason.to_string());
        Ok(())
    }

    /// A session on the GPU, with `gpu` the model's weights uploaded by [`GpuModel::load`].
    pub fn new_gpu(model: M, gpu: Arc<GpuModel>, context_size: usize) -> Result<Session<M>> {
        let capacity = Self::capacity_for(model.borrow(), context_size)?;
        let compute = Compute::Gpu(GpuSession::new(gpu, capacity)?);
        Ok(Session { model, compute, tokens: Vec::new(), gpu_logits: Vec::new(), fallback: None })
    }

    fn capacity_for(model: &Model, context_size: usize) -> Result<usize> {
        if context_size == 0 {
            return Err(Error::InvalidArgument("context size must be at least 1".into()));
        }
        Ok(context_size.min(model.spec.context_length))
    }

    pub fn model(&self) -> &Model {
        self.model.borrow()
    }

    /// "cpu" or "gpu".
    pub fn backend(&self) -> &'static str {
        match self.compute {
            Compute::Cpu { .. } => "cpu",
            Compute::Gpu(_) => "gpu",
        }
    }

    /// The GPU's per-token counters (`None` on the CPU).
    pub fn gpu_stats(&self) -> Option<GpuStats> {
        self.gpu().map(|g| g.stats)
    }

    /// The GPU session, for callers that inspect the device (`None` on the CPU).
    pub fn gpu(&self) -> Option<&GpuSession> {
        match &self.compute {
            Compute::Gpu(g) => Some(g),
            Compute::Cpu { .. } => None,
        }
    }

    pub fn capacity(&self) -> usize {
        match &self.compute {
            Compute::Cpu { cache, .. } => cache.capacity,
            Compute::Gpu(g) => g.capacity,
        }
    }

    /// Bytes of the KV cache: f16 keys and values of every layer for `capacity()` positions
    /// (both backends keep them so).
    pub fn kv_cache_bytes(&self) -> usize {
        let spec = &self.model().spec;
        2 * spec.n_layers * self.capacity() * spec.kv_dim() * std::mem::size_of::<half::f16>()
    }

    /// Tokens now in the cache.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn reset(&mut self) {
        self.truncate(0);
    }

    fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
        if let Compute::Cpu { cache, .. } = &mut self.compute {
            cache.len = self.tokens.len();
        }
    }

    /// An error for the first token id outside the vocabulary, if any.
    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let vocab = self.model.borrow().spec.vocab_size;
        match tokens.iter().find(|&&t| t as usize >= vocab) {
            Some(bad) => Err(Error::InvalidArgument(format!("token id {bad} is outside the vocabulary of {vocab}"))),
            None => Ok(()),
        }
    }

    /// After a GPU error: a lost device moves the session to the CPU (and the caller goes on
    /// there); any other error is returned.
    fn move_to_cpu_if_lost(&mut self, e: Error) -> Result<()> {
        match e {
            Error::Gpu { failure: GpuFailure::DeviceLost, .. } => self.move_to_cpu(&format!("{e} (DEVICE_LOST): moved to the CPU")),
            e => Err(e),
        }
    }

    /// Runs one token; leaves what `want` asks for (the GPU's sampled token is returned). A
    /// GPU lost on the way moves the session to the CPU, which runs the token instead.
    async fn run(&mut self, token: u32, want: Want<'_>) -> Result<Option<u32>> {
        let pos = self.tokens.len();
        if pos >= self.capacity() {
            return Err(Error::ContextFull { needed: pos + 1, capacity: self.capacity() });
        }
        self.check_tokens(&[token])?;
        if let Compute::Gpu(g) = &mut self.compute {
            match g.step(token, pos, want).await {
                Ok(out) => {
                    self.tokens.push(token);
                    return Ok(match out {
                        StepOutput::Token(t) => Some(t),
                        StepOutput::Logits(l) => {
                            self.gpu_logits = l;
                            None
                        }
                        StepOutput::Nothing => None,
                    });
                }
                Err(e) => self.move_to_cpu_if_lost(e)?,
            }
        }
        let model = self.model.borrow();
        let Compute::Cpu { cache, state } = &mut self.compute else { unreachable!("the GPU case returned or moved to the CPU") };
        forward(&model.spec, &model.weights, state, cache, token, !matches!(want, Want::Nothing))?;
        self.tokens.push(token);
        Ok(None)
    }

    fn logits_mut(&mut self) -> &mut [f32] {
        match &mut self.compute {
            Compute::Cpu { state, .. } => &mut state.logits,
            Compute::Gpu(_) => &mut self.gpu_logits,
        }
    }

    /// Runs one token; returns the next-token logits when asked.
    pub async fn step_async(&mut self, token: u32, want_logits: bool) -> Result<Option<&[f32]>> {
        self.run(token, if want_logits { Want::Logits } else { Want::Nothing }).await?;
        Ok(if want_logits { Some(self.logits_mut()) } else { None })
    }

    /// Puts all of `prompt` but its last token in the cache, reusing the longest prefix already
    /// there. Returns how many tokens came from the cache.
    async fn prefill_all_but_last(&mut self, prompt: &[u32]) -> Result<usize> {
        if prompt.is_empty() {
            return Err(Error::InvalidArgument("the prompt has no tokens".into()));
        }
        if prompt.len() > self.capacity() {
            return Err(Error::ContextFull { needed: prompt.len(), capacity: self.capacity() });
        }
        let common = self.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        // The last prompt token always runs, to produce the logits.
        let keep = common.min(prompt.len() - 1);
        self.truncate(keep);
        let rest = &prompt[keep..prompt.len() - 1];
        self.check_tokens(rest)?;
        if let Compute::Gpu(g) = &mut self.compute {
            // The GPU runs the prompt in chunks through its mat-mat kernels.
            if g.prefill_chunk > 1 && !rest.is_empty() {
                match g.prefill(rest, keep) {
                    Ok(()) => {
                        self.tokens.extend_from_slice(rest);
                        return Ok(keep);
                    }
                    Err(e) => self.move_to_cpu_if_lost(e)?,
                }
            }
        }
        if let Compute::Cpu { cache, state } = &mut self.compute {
            // The CPU runs the prompt in chunks through its mat-mat tiles.
            let model = self.model.borrow();
            forward_tokens(&model.spec, &model.weights, state, cache, rest, false)?;
            self.tokens.extend_from_slice(rest);
            return Ok(keep);
        }
        for &t in rest {
            self.run(t, Want::Nothing).await?;
        }
        Ok(keep)
    }

    /// Puts `prompt` in the cache, reusing the longest prefix already there; leaves the logits
    /// after its last token. Returns how many tokens came from the cache.
    pub async fn prefill_async(&mut self, prompt: &[u32]) -> Result<usize> {
        let keep = self.prefill_all_but_last(prompt).await?;
        self.run(prompt[prompt.len() - 1], Want::Logits).await?;
        Ok(keep)
    }

    /// Runs `token` so that the next one can be chosen: the CPU keeps the logits for the
    /// sampler; the GPU samples on the device in the same submit and reads back only the id.
    async fn run_for_next(&mut self, token: u32, g: &mut Generator) -> Result<()> {
        if matches!(self.compute, Compute::Cpu { .. }) {
            self.run(token, Want::Logits).await?;
            return Ok(());
        }
        let penalties = g.sampler.penalty_counts(&g.history);
        let draw = if g.sampler.params.temperature > 0.0 { g.sampler.next_draw() } else { 0.0 };
        let params = g.sampler.params.clone();
        g.pending = self.run(token, Want::Token { params: &params, draw, penalties: &penalties }).await?;
        Ok(())
    }

    /// Prefills `prompt` (token ids, BOS included when wanted) and returns the generation, ready
    /// for [`Session::next_text_async`].
    pub async fn start_async(&mut self, prompt: &[u32], opts: &GenerateOptions) -> Result<Generator> {
        let sampler = Sampler::new(opts.sampling.clone())?;
        let t0 = now_ms();
        let cached = self.prefill_all_but_last(prompt).await?;
        let mut g = Generator {
            opts: opts.clone(),
            sampler,
            decode: DecodeState::default(),
            prompt_ids: prompt.to_vec(),
            ids: Vec::new(),
            text: String::new(),
            emitted: 0,
            history: prompt.to_vec(),
            pending: None,
            finish: if opts.max_tokens == 0 { Some(FinishReason::Length) } else { None },
            cached,
            prefill_ms: 0.0,
            decode_start: 0.0,
            decode_end: 0.0,
        };
        self.run_for_next(prompt[prompt.len() - 1], &mut g).await?;
        let t1 = now_ms();
        (g.prefill_ms, g.decode_start, g.decode_end) = (t1 - t0, t1, t1);
        Ok(g)
    }

    /// Samples one token and returns the text it completes (empty while a UTF-8 character or a
    /// possible stop string is incomplete; at the end, whatever was held back), or `None` once
    /// the generation has ended. Text of a stop string is never returned.
    pub async fn next_text_async(&mut self, g: &mut Generator) -> Result<Option<String>> {
        if g.finish.is_some() {
            return Ok(None);
        }
        let next = match g.pending.take() {
            Some(t) => t,
            None => {
                let history = std::mem::take(&mut g.history);
                let t = g.sampler.sample(self.logits_mut(), &history);
                g.history = history;
                t
            }
        };
        let tok = &self.model.borrow().tokenizer;
        if !g.opts.ignore_eos && tok.eos.contains(&next) {
            return Ok(g.end(FinishReason::Stop));
        }
        g.ids.push(next);
        g.history.push(next);
        if let Some(piece) = tok.decode_step(&mut g.decode, next)? {
            g.text.push_str(&piece);
        }
        if let Some(cut) = find_stop(&g.text, &g.opts.stop) {
            g.text.truncate(cut.max(g.emitted));
            return Ok(g.end(FinishReason::Stop));
        }
        if g.ids.len() == g.opts.max_tokens {
            return Ok(g.end(FinishReason::Length));
        }
        if self.tokens.len() >= self.capacity() {
            return Ok(g.end(FinishReason::ContextFull));
        }
        self.run_for_next(next, g).await?;
        let safe = g.text.len() - held_back(&g.text, &g.opts.stop);
        let piece = g.text[g.emitted..safe.max(g.emitted)].to_string();
        g.emitted = safe.max(g.emitted);
        Ok(Some(piece))
    }

    /// Generates from `prompt` (token ids, BOS included when wanted). `on_text` receives each
    /// piece of text as it is complete (never a split UTF-8 character, never text of a stop
    /// string) and returns `false` to abort.
    pub async fn generate_async(&mut self, prompt: &[u32], opts: &GenerateOptions, mut on_text: impl FnMut(&str) -> bool) -> Result<Generation> {
        let mut g = self.start_async(prompt, opts).await?;
        while let Some(piece) = self.next_text_async(&mut g).await? {
            if !piece.is_empty() && !on_text(&piece) {
                g.abort();
            }
        }
        Ok(g.finish())
    }
}

/// The blocking forms of the session's methods (native: the GPU's futures finish when polled).
#[cfg(not(target_arch = "wasm32"))]
impl<M: Borrow<Model>> Session<M> {
    pub fn step(&mut self, token: u32, want_logits: bool) -> Result<Option<&[f32]>> {
        crate::backend::gpu::context::block_on(self.step_async(token, want_logits))
    }

    pub fn prefill(&mut self, prompt: &[u32]) -> Result<usize> {
        crate::backend::gpu::context::block_on(self.prefill_async(prompt))
    }

    pub fn start(&mut self, prompt: &[u32], opts: &GenerateOptions) -> Result<Generator> {
        crate::backend::gpu::context::block_on(self.start_async(prompt, opts))
    }

    pub fn next_text(&mut self, g: &mut Generator) -> Result<Option<String>> {
        crate::backend::gpu::context::block_on(self.next_text_async(g))
    }

    pub fn generate(&mut self, prompt: &[u32], opts: &GenerateOptions, on_text: impl FnMut(&str) -> bool) -> Result<Generation> {
        crate::backend::gpu::context::block_on(self.generate_async(prompt, opts, on_text))
    }
}

/// Byte index where the first stop string starts, if any occurs.
fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min()
}

/// Bytes at the end of `text` that could be the start of a stop string, kept back from the stream.
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for s in stops {
        for (i, _) in s.char_indices().skip(1) {
            if i > hold && text.ends_with(&s[..i]) {
                hold = i;
            }
        }
    }
    hold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_are_found_and_their_prefixes_held_back() {
        let stops = vec!["\nUser:".to_string(), "END".to_string()];
        assert_eq!(find_stop("hello\nUser: hi", &stops), Some(5));
        assert_eq!(find_stop("hello", &stops), None);
        assert_eq!(held_back("hello\nUs", &stops), 3);
        assert_eq!(held_back("hello E", &stops), 1);
        assert_eq!(held_back("hello", &stops), 0);
    }
}
