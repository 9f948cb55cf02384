//! tiktoken rank files (Llama 3's `tokenizer.model`, Qwen's `qwen.tiktoken`) as byte-level BPE.

use std::collections::HashMap;

use base64::Engine;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::BPE;
use tokenizers::AddedToken;

use super::gguf::{byte_level_pre_tokenizer, pre_tokenizer_regexes};
use super::Tokenizer;
use crate::error::{Error, Result};

/// GPT-2's map from bytes to printable characters, the alphabet of byte-level BPE vocabularies.
fn bytes_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        map[b as usize] = if printable {
            b as char
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    map
}

/// Builds a tokenizer from a tiktoken file (`base64-token rank` per line). `pre` names the
/// pre-tokenizer as GGUF's `tokenizer.ggml.pre` does (`llama-bpe`, `qwen2`); `specials` are the
/// special tokens with their ids, which tiktoken files leave out.
pub fn from_tiktoken(file: &str, text: &str, pre: &str, specials: &[(&str, u32)]) -> Result<Tokenizer> {
    let err = |msg: String| Error::Tokenizer { file: file.to_string(), msg };
    let alphabet = bytes_to_unicode();
    let mut vocab: HashMap<String, u32> = HashMap::new();
    let mut by_rank: Vec<(u32, Vec<u8>)> = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let (b64, rank) = line.split_once(' ').ok_or_else(|| err(format!("line {}: expected 'token rank'", n + 1)))?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| err(format!("line {}: {e}", n + 1)))?;
        let rank: u32 = rank.trim().parse().map_err(|e| err(format!("line {}: rank: {e}", n + 1)))?;
        vocab.insert(bytes.iter().map(|&b| alphabet[b as usize]).collect(), rank);
        by_rank.push((rank, bytes));
    }
    by_rank.sort();
    let enc = |b: &[u8]| -> String { b.iter().map(|&x| alphabet[x as usize]).collect() };
    let mut merges = Vec::new();
    for (_, bytes) in by_rank.iter().filter(|(_, b)| b.len() > 1) {
        for split in 1..bytes.len() {
            let (a, b) = (enc(&bytes[..split]), enc(&bytes[split..]));
            if vocab.contains_key(&a) && vocab.contains_key(&b) {
                merges.push((a, b));
            }
        }
    }
    let regexes = pre_tokenizer_regexes(pre).ok_or_else(|| err(format!("pre-tokenizer '{pre}' is not supported")))?;
    // tiktoken takes a pre-token that is itself in the vocabulary whole, before any merge.
    let bpe = BPE::builder().vocab_and_merges(vocab.into_iter().collect::<tokenizers::models::bpe::Vocab>(), merges).ignore_merges(true).build().map_err(|e| err(e.to_string()))?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(byte_level_pre_tokenizer(file, regexes)?));
    inner.with_decoder(Some(ByteLevel::default()));
    let added: Vec<AddedToken> = specials.iter().map(|(s, _)| AddedToken::from(s.to_string(), true)).collect();
    inner.add_special_tokens(&added);
    for (s, id) in specials {
        if inner.token_to_id(s) != Some(*id) {
            return Err(err(format!("special token {s} would get id {:?}, not {id}: list specials in id order after the ranks", inner.token_to_id(s))));
        }
    }
    Ok(Tokenizer { inner, spm: None, bos: None, add_bos: false, eos: Vec::new(), bos_token: None, eos_token: None })
}
