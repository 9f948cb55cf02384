//! GGUF-embedded vocabularies converted into `tokenizers` pipelines that tokenize as llama.cpp does.


use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::Replace;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::spm::SpmModel;

use super::Tokenizer;
use crate::error::{Error, Result};
use crate::format::gguf::{GgufFile, StringArray, Value};

const TOKEN_TYPE_CONTROL: u64 = 3;
const TOKEN_TYPE_USER_DEFINED: u64 = 4;

/// The pre-tokenizer regexes llama.cpp uses for each `tokenizer.ggml.pre`, applied in order.
pub(super) fn pre_tokenizer_regexes(pre: &str) -> Option<&'static [&'static str]> {
    const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    Some(match pre {
        "gpt-2" | "gpt2" | "phi-2" | "olmo" | "jais" => &[GPT2],
        "default" => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => &[LLAMA3],
        "qwen2" | "deepseek-r1-qwen" | "qwen35" => &[QWEN2],
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => &[r"\p{N}", GPT2],
        _ => return None,
    })
}

/// A byte-level pre-tokenizer: regex splits (isolated), then bytes mapped to printable characters.
pub(super) fn byte_level_pre_tokenizer(file: &str, regexes: &[&str]) -> Result<PreTokenizerWrapper> {
    let mut parts: Vec<PreTokenizerWrapper> = Vec::new();
    for r in regexes {
        let split = Split::new(SplitPattern::Regex(r.to_string()), SplitDelimiterBehavior::Isolated, false).map_err(|e| Error::Tokenizer { file: file.to_string(), msg: format!("pre-tokenizer regex: {e}") })?;
        parts.push(split.into());
    }
    parts.push(tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, false).into());
    Ok(PreSequence::new(parts).into())
}

/// A metadata array of strings, taken out of `g`.
fn take_strings(g: &mut GgufFile, key: &str, err: &dyn Fn(String) -> Error) -> Result<Option<StringArray>> {
    match g.take(key) {
        None => Ok(None),
        Some(Value::Strings(a)) => Ok(Some(*a)),
        Some(Value::Array(a)) if a.is_empty() => Ok(Some(StringArray::default())),
        Some(_) => Err(err(format!("{key} is not an array of strings"))),
    }
}

/// Builds the tokenizer from `g`'s `tokenizer.*` metadata, taking its vocabulary and merges out
/// of `g` (a 150k vocabulary's copies are what a model's load peaks on: each string is made
/// once, where the tokenizer keeps it).
pub(super) fn from_gguf(g: &mut GgufFile) -> Result<Tokenizer> {
    let file = g.file.clone();
    let file = file.as_str();
    let err = |msg: String| Error::Tokenizer { file: file.to_string(), msg };
    let model = g.get("tokenizer.ggml.model").and_then(Value::as_str).ok_or_else(|| err("tokenizer.ggml.model is missing".into()))?.to_string();
    let model = model.as_str();
    let tokens = take_strings(g, "tokenizer.ggml.tokens", &err)?.ok_or_else(|| err("tokenizer.ggml.tokens is missing".into()))?;
    let types: Vec<u8> = g.take("tokenizer.ggml.token_type").as_ref().and_then(Value::as_array).map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1) as u8).collect()).unwrap_or_default();
    let n_tokens = tokens.len();
    let meta_id = |k: &str| g.get(k).and_then(Value::as_u64).map(|v| v as u32).filter(|&id| (id as usize) < n_tokens);
    let (bos, eos_id, unk) = (meta_id("tokenizer.ggml.bos_token_id"), meta_id("tokenizer.ggml.eos_token_id"), meta_id("tokenizer.ggml.unknown_token_id"));
    let mut eos: Vec<u32> = eos_id.into_iter().collect();
    // Chat models end a turn with an end-of-turn token that differs from EOS.
    for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        if let Some(id) = meta_id(key) {
            if !eos.contains(&id) {
                eos.push(id);
            }
        }
    }
    let token = |i: u32| tokens.get(i as usize).unwrap_or_default();
    let token_str = |id: Option<u32>| id.map(|i| token(i).to_string());
    let (bos_token, eos_token, unk_token) = (token_str(bos), token_str(eos_id), token_str(unk));
    let special_ids: Vec<u32> = (0..n_tokens as u32).filter(|&i| matches!(types.get(i as usize).map(|&t| t as u64), Some(TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))).collect();
    let specials: Vec<AddedToken> = special_ids.iter().map(|&i| AddedToken::from(token(i).to_string(), types[i as usize] as u64 == TOKEN_TYPE_CONTROL).normalized(false)).collect();
    // The SentencePiece encoder's special tokens, longest first.
    let mut spm_specials: Vec<(String, u32)> = special_ids.iter().map(|&i| (token(i).to_string(), i)).filter(|(s, _)| !s.is_empty()).collect();
    spm_specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    // The SentencePiece encoder reads the strings once more at the end; BPE needs them no longer.
    let spm_tokens = (model == "llama").then_some(tokens);
    let add_space_prefix = g.get("tokenizer.ggml.add_space_prefix").and_then(Value::as_bool).unwrap_or(true);

    let mut inner = match model {
        "llama" => {
            // Decoding only: encoding goes through `SpmEncoder`, set below.
            let mut bpe = BPE::builder().vocab_and_merges(vocab, Vec::new()).byte_fallback(true);
            if let Some(unk) = unk_token {
                bpe = bpe.unk_token(unk);
            }
            let bpe = bpe.build().map_err(|e| err(format!("building the SentencePiece model: {e}")))?;
            let mut t = tokenizers::Tokenizer::new(bpe);
            let mut decs: Vec<DecoderWrapper> = vec![Replace::new("▁", " ").map_err(|e| err(e.to_string()))?.into(), ByteFallback::default().into(), Fuse::default().into()];
            if add_space_prefix {
                decs.push(Strip::new(' ', 1, 0).into());
            }
            t.with_decoder(Some(DecoderSequence::new(decs)));
            t
        }
        "gpt2" => {
            let lines = take_strings(g, "tokenizer.ggml.merges", &err)?.ok_or_else(|| err("tokenizer.ggml.merges is missing".into()))?;
            // Exactly as many pairs as lines: a collect through `Result` cannot know its length
            // and doubles its way up (25 MB for Qwen2.5's 151k merges, once the load's peak).
            let mut merges: Vec<(String, String)> = Vec::with_capacity(lines.len());
            for m in lines.iter() {
                let (a, b) = m.split_once(' ').ok_or_else(|| err(format!("merge '{m}' is not two tokens")))?;
                merges.push((a.to_string(), b.to_string()));
            }
            drop(lines);
            let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
            let regexes = pre_tokenizer_regexes(pre).ok_or_else(|| err(format!("pre-tokenizer '{pre}' is not supported")))?;
            let bpe = BPE::builder().vocab_and_merges(vocab, merges).ignore_merges(matches!(pre, "llama3" | "llama-v3" | "llama-bpe")).build().map_err(|e| err(format!("building the BPE model: {e}")))?;
            let mut t = tokenizers::Tokenizer::new(bpe);
            t.with_pre_tokenizer(Some(byte_level_pre_tokenizer(file, regexes)?));
            t.with_decoder(Some(ByteLevel::default()));
            t
        }
        other => return Err(err(format!("tokenizer model '{other}' is not supported (llama and gpt2 are)"))),
    };
    // Control and user-defined tokens are matched whole in the text, as llama.cpp's parse_special does.
    inner.add_special_tokens(&specials);
    let spm = (model == "llama").then(|| {
        let scores: Vec<f32> = g.get("tokenizer.ggml.scores").and_then(Value::as_array).map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect()).unwrap_or_default();
        let tokens = spm_tokens.unwrap_or_default();
        let tokens: Vec<&str> = tokens.iter().collect();
        super::SpmEncoder { model: SpmModel::new(&tokens, scores, unk), add_space_prefix, specials: spm_specials }
    });

    let add_bos = g.get("tokenizer.ggml.add_bos_token").and_then(Value::as_bool).unwrap_or(model == "llama");
    Ok(Tokenizer {
        inner,
        spm,
        bos,
        add_bos: add_bos && bos.is_some(),
        eos,
        bos_token,
        eos_token,
    })
}
