//! Token ids equal to the references for every case of every vocabulary in
//! `../shared/models/tokenizers/`: llama.cpp's own test vectors (llama-spm, phi-3, gpt-2, qwen2,
//! llama3) and, for SmolLM2's tokenizer.json, Hugging Face's Python `tokenizers`.

mod common;

use pocketlm::format::gguf::GgufFile;
use pocketlm::tokenizer::{from_tiktoken, Tokenizer};

/// The texts of a `.inp` file and the ids of its `.out` file, pairwise.
fn vectors(dir: &str, stem: &str) -> Vec<(String, Vec<u32>)> {
    let base = common::shared_models().join("tokenizers").join(dir);
    let inp = std::fs::read_to_string(base.join(format!("{stem}.inp"))).unwrap();
    let out = std::fs::read_to_string(base.join(format!("{stem}.out"))).unwrap();
    let mut texts: Vec<String> = inp.split("\n__ggml_vocab_test__\n").map(str::to_string).collect();
    if texts.last().is_some_and(|t| t.is_empty()) {
        texts.pop();
    }
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "{stem}: texts and expected ids pair up");
    texts.into_iter().zip(ids).collect()
}

fn check(name: &str, tok: &Tokenizer, cases: &[(String, Vec<u32>)]) {
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = tok.encode(text, false).unwrap();
        if &got != want {
            failures.push(format!("{text:?}\n   got {got:?}\n  want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{name}: {} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

fn gguf_vocab(dir: &str) -> Tokenizer {
    let path = common::shared_models().join("tokenizers").join(dir).join(format!("ggml-vocab-{dir}.gguf"));
    let bytes = std::fs::read(&path).unwrap();
    let mut g = GgufFile::parse(&path.display().to_string(), &bytes, bytes.len()).unwrap();
    Tokenizer::from_gguf(&mut g).unwrap()
}

#[test]
fn llama_spm_vocab_matches_llama_cpp() {
    check("llama-spm", &gguf_vocab("llama-spm"), &vectors("llama-spm", "ggml-vocab-llama-spm.gguf"));
}

#[test]
fn phi3_vocab_matches_llama_cpp() {
    check("phi-3", &gguf_vocab("phi-3"), &vectors("phi-3", "ggml-vocab-phi-3.gguf"));
}

#[test]
fn gpt2_vocab_matches_llama_cpp() {
    check("gpt-2", &gguf_vocab("gpt-2"), &vectors("gpt-2", "ggml-vocab-gpt-2.gguf"));
}

#[test]
fn qwen2_tiktoken_matches_llama_cpp() {
    let path = common::shared_models().join("tokenizers/qwen2/qwen.tiktoken");
    let text = std::fs::read_to_string(&path).unwrap();
    let tok = from_tiktoken("qwen.tiktoken", &text, "qwen2", &[("<|endoftext|>", 151643), ("<|im_start|>", 151644), ("<|im_end|>", 151645)]).unwrap();
    check("qwen2", &tok, &vectors("qwen2", "ggml-vocab-qwen2.gguf"));
}

#[test]
fn llama3_tiktoken_matches_llama_cpp() {
    let path = common::shared_models().join("tokenizers/llama3/tokenizer.model");
    let text = std::fs::read_to_string(&path).unwrap();
    let specials = [
        ("<|begin_of_text|>", 128000),
        ("<|end_of_text|>", 128001),
        ("<|reserved_special_token_0|>", 128002),
        ("<|reserved_special_token_1|>", 128003),
        ("<|finetune_right_pad_id|>", 128004),
        ("<|reserved_special_token_2|>", 128005),
        ("<|start_header_id|>", 128006),
        ("<|end_header_id|>", 128007),
        ("<|eom_id|>", 128008),
        ("<|eot_id|>", 128009),
    ];
    let tok = from_tiktoken("tokenizer.model", &text, "llama-bpe", &specials).unwrap();
    check("llama3", &tok, &vectors("llama3", "ggml-vocab-llama-bpe.gguf"));
}

#[test]
fn smollm2_tokenizer_json_matches_hugging_face() {
    let path = common::shared_models().join("tokenizers/smollm2-135m/tokenizer.json");
    let tok = Tokenizer::from_json("tokenizer.json", &std::fs::read(&path).unwrap(), None).unwrap();
    let fx = common::fixture("tokenizer_smollm2.json");
    let cases: Vec<(String, Vec<u32>)> = fx["cases"].as_array().unwrap().iter().map(|c| (c["text"].as_str().unwrap().to_string(), common::ids(&c["ids"]))).collect();
    assert!(cases.len() > 40);
    check("smollm2", &tok, &cases);
}

#[test]
fn decoding_round_trips_and_streams_whole_characters() {
    let tok = gguf_vocab("llama-spm");
    let text = "Hello world, this is 🦙.cpp — ünïcödé";
    let ids = tok.encode(text, false).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), text);
    let mut state = pocketlm::tokenizer::DecodeState::default();
    let mut streamed = String::new();
    for &id in &ids {
        if let Some(piece) = tok.decode_step(&mut state, id).unwrap() {
            assert!(!piece.contains('\u{FFFD}'), "a piece split a character: {piece:?}");
            streamed.push_str(&piece);
        }
    }
    assert_eq!(streamed, text);
}
