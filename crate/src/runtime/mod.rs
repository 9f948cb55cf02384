//! A generation session: prefill, the decode loop, the KV cache kept across turns, stop
//! conditions and streaming of whole UTF-8 characters.

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
/// cache reuse them.
pub struct Session<'m> {
    pub model: &'m Model,
    cache: KvCache,
    state: ForwardState,
    /// The tokens whose keys/values are in the cache, in order.
    tokens: Vec<u32>,
}

impl<'m> Session<'m> {
    /// A session holding up to `context_size` tokens (capped at the model's trained context).
    pub fn new(model: &'m Model, context_size: usize) -> Result<Session<'m>> {
        if context_size == 0 {
            return Err(Error::InvalidArgument("context size must be at least 1".into()));
        }
        let capacity = context_size.min(model.spec.context_length);
        Ok(Session { model, cache: KvCache::new(&model.spec, capacity), state: ForwardState::new(&model.spec), tokens: Vec::new() })
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
        forward(&self.model.spec, &self.model.weights, &mut self.state, &mut self.cache, token, want_logits)?;
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

    /// Generates from `prompt` (token ids, BOS included when wanted). `on_text` receives each
    /// piece of text as it is complete (never a split UTF-8 character, never text of a stop
    /// string) and returns `false` to abort.
    pub fn generate(&mut self, prompt: &[u32], opts: &GenerateOptions, mut on_text: impl FnMut(&str) -> bool) -> Result<Generation> {
        let mut sampler = Sampler::new(opts.sampling.clone())?;
        let t0 = now_ms();
        let cached = self.prefill(prompt)?;
        let t1 = now_ms();
        let tok = &self.model.tokenizer;
        let mut decode = DecodeState::default();
        let mut ids = Vec::new();
        let mut text = String::new();
        let mut emitted = 0;
        let mut history: Vec<u32> = prompt.to_vec();
        let mut finish = FinishReason::Length;
        while ids.len() < opts.max_tokens {
            let next = sampler.sample(&mut self.state.logits, &history);
            if !opts.ignore_eos && tok.eos.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            ids.push(next);
            history.push(next);
            if let Some(piece) = tok.decode_step(&mut decode, next)? {
                text.push_str(&piece);
            }
            if let Some(cut) = find_stop(&text, &opts.stop) {
                text.truncate(cut);
                finish = FinishReason::Stop;
                break;
            }
            let safe = text.len() - held_back(&text, &opts.stop);
            if safe > emitted {
                let keep_going = on_text(&text[emitted..safe]);
                emitted = safe;
                if !keep_going {
                    finish = FinishReason::Aborted;
                    break;
                }
            }
            if ids.len() == opts.max_tokens {
                break;
            }
            if self.cache.len >= self.cache.capacity {
                finish = FinishReason::ContextFull;
                break;
            }
            self.step(next, true)?;
        }
        if finish != FinishReason::Aborted && text.len() > emitted {
            on_text(&text[emitted..]);
        }
        let t2 = now_ms();
        Ok(Generation { prompt_ids: prompt.to_vec(), ids, text, finish_reason: finish, cached_prompt_tokens: cached, prefill_ms: t1 - t0, decode_ms: t2 - t1 })
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
