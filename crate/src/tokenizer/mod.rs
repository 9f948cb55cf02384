//! Text ↔ token ids. One type, built from a Hugging Face `tokenizer.json` or from the vocabulary
//! a GGUF file embeds (SentencePiece `llama` or byte-level BPE `gpt2`), both run by the
//! `tokenizers` crate.

mod gguf;
mod spm;
mod tiktoken;

pub use tiktoken::from_tiktoken;

use crate::error::{Error, Result};

/// A tokenizer with the special tokens the runtime needs.
pub struct Tokenizer {
    /// Decodes every vocabulary, and encodes all but SentencePiece ones.
    pub(crate) inner: tokenizers::Tokenizer,
    /// Encoder of GGUF `llama` (SentencePiece) vocabularies.
    pub(crate) spm: Option<SpmEncoder>,
    /// Beginning-of-sequence token, and whether prompts start with it.
    pub bos: Option<u32>,
    pub add_bos: bool,
    /// Tokens that end generation.
    pub eos: Vec<u32>,
    /// Token strings that chat templates refer to (`bos_token`, `eos_token`).
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
}

/// llama.cpp's encoding of SentencePiece vocabularies: special tokens split out first (longest
/// first), a `▁` prefix at the start and after each special token, spaces escaped as `▁`.
pub(crate) struct SpmEncoder {
    pub model: spm::SpmModel,
    pub add_space_prefix: bool,
    /// Special token texts and ids, longest first.
    pub specials: Vec<(String, u32)>,
}

enum Fragment<'a> {
    Text(&'a str),
    Special(u32),
}

impl SpmEncoder {
    fn encode(&self, text: &str, out: &mut Vec<u32>) {
        let mut frags = vec![Fragment::Text(text)];
        for (st, id) in &self.specials {
            let mut next = Vec::with_capacity(frags.len());
            for f in frags {
                match f {
                    Fragment::Text(t) => {
                        let mut rest = t;
                        while let Some(i) = rest.find(st.as_str()) {
                            if i > 0 {
                                next.push(Fragment::Text(&rest[..i]));
                            }
                            next.push(Fragment::Special(*id));
                            rest = &rest[i + st.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    special => next.push(special),
                }
            }
            frags = next;
        }
        let mut prev_special = true;
        for f in frags {
            match f {
                Fragment::Special(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    let mut escaped = String::with_capacity(t.len() + 3);
                    if self.add_space_prefix && prev_special {
                        escaped.push('▁');
                    }
                    escaped.push_str(&t.replace(' ', "▁"));
                    self.model.encode(&escaped, out);
                    prev_special = false;
                }
            }
        }
    }
}

/// Incremental detokenization state: text comes out only in whole UTF-8 characters.
#[derive(Default, Debug, Clone)]
pub struct DecodeState {
    ids: Vec<u32>,
    prefix: String,
    prefix_index: usize,
}

impl Tokenizer {
    /// From the bytes of a `tokenizer.json`; `tokenizer_config` (tokenizer_config.json) supplies
    /// the BOS/EOS settings when present.
    pub fn from_json(file: &str, json: &[u8], tokenizer_config: Option<&serde_json::Value>) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| Error::Tokenizer { file: file.to_string(), msg: e.to_string() })?;
        let token_str = |key: &str| -> Option<String> {
            let v = tokenizer_config?.get(key)?;
            v.as_str().map(str::to_string).or_else(|| v.get("content").and_then(|c| c.as_str()).map(str::to_string))
        };
        let bos_token = token_str("bos_token");
        let eos_token = token_str("eos_token");
        let bos = bos_token.as_deref().and_then(|t| inner.token_to_id(t));
        let add_bos = tokenizer_config.and_then(|c| c.get("add_bos_token")).and_then(|v| v.as_bool()).unwrap_or(false);
        let eos = eos_token.as_deref().and_then(|t| inner.token_to_id(t)).into_iter().collect();
        let mut t = Tokenizer { inner, spm: None, bos, add_bos, eos, bos_token, eos_token };
        // tokenizer.json may carry a post-processor that adds BOS itself; pocketlm adds it explicitly.
        t.inner.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
        Ok(t)
    }

    /// From the `tokenizer.*` metadata of a GGUF file, which it takes out of `g` (the
    /// vocabulary's strings move into the tokenizer).
    pub fn from_gguf(g: &mut crate::format::gguf::GgufFile) -> Result<Tokenizer> {
        gguf::from_gguf(g)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) are parsed as
    /// such; `add_bos` puts the model's BOS first when the model wants one.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos && self.add_bos {
            ids.extend(self.bos);
        }
        match &self.spm {
            Some(spm) => spm.encode(text, &mut ids),
            None => {
                let enc = self.inner.encode_fast(text, false).map_err(|e| Error::Tokenizer { file: "tokenizer".into(), msg: e.to_string() })?;
                ids.extend_from_slice(enc.get_ids());
            }
        }
        Ok(ids)
    }

    /// The text of `ids`; special tokens are left out when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| Error::Tokenizer { file: "tokenizer".into(), msg: e.to_string() })
    }

    /// Feeds one generated id; returns the text it completes, if any.
    pub fn decode_step(&self, state: &mut DecodeState, id: u32) -> Result<Option<String>> {
        tokenizers::step_decode_stream(&self.inner, vec![id], true, &mut state.ids, &mut state.prefix, &mut state.prefix_index)
            .map_err(|e| Error::Tokenizer { file: "tokenizer".into(), msg: e.to_string() })
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}
