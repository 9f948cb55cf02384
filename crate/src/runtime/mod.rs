//! A generation session: prefill, the decode loop, the KV cache kept across turns, stop
//! conditions and streaming of whole UTF-8 characters.

use std::borrow::Borrow;

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::model::forward::{forward, ForwardState, KvCache};
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

/// A model with its KV cache. Consecutive calls whose prompt extends the tokens already in the
/// cache reuse them. `M` is how the session holds its model: `&Model`, `Arc<Model>` or `Model`.
pub struct Session<M: Borrow<Model>> {
    model: M,
    cache: KvCache,
    state: ForwardState,
    /// The tokens whose keys/values are in the cache, in order.
    tokens: Vec<u32>,
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
    /// A session holding up to `context_size` tokens (capped at the model's trained context).
    pub fn new(model: M, context_size: usize) -> Result<Session<M>> {
        if context_size == 0 {
            return Err(Error::InvalidArgument("context size must be at least 1".into()));
        }
        let spec = &model.borrow().spec;
        let capacity = context_size.min(spec.context_length);
        let (cache, state) = (KvCache::new(spec, capacity), ForwardState::new(spec));
        Ok(Session { model, cache, state, tokens: Vec::new() })
    }

    pub fn model(&self) -> &Model {
        self.model.borrow()
    }

    pub fn capacity(&self) -> usize {
        self.cache.capacity
    }

    /// Tokens now in the cache.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn reset(&mut self) {
        self.tokens.clear();
        self.cache.len = 0;
    }

    /// Runs one token; returns the next-token logits when asked.
    pub fn step(&mut self, token: u32, want_logits: bool) -> Result<Option<&[f32]>> {
        if self.cache.len >= self.cache.capacity {
            return Err(Error::ContextFull { needed: self.cache.len + 1, capacity: self.cache.capacity });
        }
        let model = self.model.borrow();
        forward(&model.spec, &model.weights, &mut self.state, &mut self.cache, token, want_logits)?;
        self.tokens.push(token);
        Ok(want_logits.then_some(&self.state.logits[..]))
    }

    /// Puts `prompt` in the cache, reusing the longest prefix already there; leaves the logits
    /// after its last token in the state. Returns how many tokens came from the cache.
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<usize> {
        if prompt.is_empty() {
            return Err(Error::InvalidArgument("the prompt has no tokens".into()));
        }
        if prompt.len() > self.cache.capacity {
            return Err(Error::ContextFull { needed: prompt.len(), capacity: self.cache.capacity });
        }
        let common = self.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        // The last prompt token always runs, to produce the logits.
        let keep = common.min(prompt.len() - 1);
        self.tokens.truncate(keep);
        self.cache.len = keep;
        for (i, &t) in prompt[keep..].iter().enumerate() {
            self.step(t, keep + i + 1 == prompt.len())?;
        }
        Ok(keep)
    }

    /// Prefills `prompt` (token ids, BOS included when wanted) and returns the generation, ready
    /// for [`Session::next_text`].
    pub fn start(&mut self, prompt: &[u32], opts: &GenerateOptions) -> Result<Generator> {
        let sampler = Sampler::new(opts.sampling.clone())?;
        let t0 = now_ms();
        let cached = self.prefill(prompt)?;
        let t1 = now_ms();
        Ok(Generator {
            opts: opts.clone(),
            sampler,
            decode: DecodeState::default(),
            prompt_ids: prompt.to_vec(),
            ids: Vec::new(),
            text: String::new(),
            emitted: 0,
            history: prompt.to_vec(),
            finish: if opts.max_tokens == 0 { Some(FinishReason::Length) } else { None },
            cached,
            prefill_ms: t1 - t0,
            decode_start: t1,
            decode_end: t1,
        })
    }

    /// Samples one token and returns the text it completes (empty while a UTF-8 character or a
    /// possible stop string is incomplete; at the end, whatever was held back), or `None` once
    /// the generation has ended. Text of a stop string is never returned.
    pub fn next_text(&mut self, g: &mut Generator) -> Result<Option<String>> {
        if g.finish.is_some() {
            return Ok(None);
        }
        let tok = &self.model.borrow().tokenizer;
        let next = g.sampler.sample(&mut self.state.logits, &g.history);
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
        if self.cache.len >= self.cache.capacity {
            return Ok(g.end(FinishReason::ContextFull));
        }
        self.step(next, true)?;
        let safe = g.text.len() - held_back(&g.text, &g.opts.stop);
        let piece = g.text[g.emitted..safe.max(g.emitted)].to_string();
        g.emitted = safe.max(g.emitted);
        Ok(Some(piece))
    }

    /// Generates from `prompt` (token ids, BOS included when wanted). `on_text` receives each
    /// piece of text as it is complete (never a split UTF-8 character, never text of a stop
    /// string) and returns `false` to abort.
    pub fn generate(&mut self, prompt: &[u32], opts: &GenerateOptions, mut on_text: impl FnMut(&str) -> bool) -> Result<Generation> {
        let mut g = self.start(prompt, opts)?;
        while let Some(piece) = self.next_text(&mut g)? {
            if !piece.is_empty() && !on_text(&piece) {
                g.abort();
            }
        }
        Ok(g.finish())
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
