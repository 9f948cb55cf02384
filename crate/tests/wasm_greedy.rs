//! In wasm (Node, through wasm-bindgen-test with the SIMD dot products): greedy generation on
//! TinyStories-656K in Q8_0 and Q4_0 equals llama.cpp's tokens, by the rule of
//! `greedy_parity.rs` (all tokens up to llama.cpp's first near-tie, where its top two logits are
//! closer than `NEAR_TIE`).
#![cfg(target_arch = "wasm32")]

use pocketlm::{GenerateOptions, Model, Session};
use wasm_bindgen_test::wasm_bindgen_test;

const NEAR_TIE: f64 = 0.1;

const FIXTURE: &str = include_str!("../../tests/fixtures/greedy_llama_cpp.json");

async fn check(file: &str, bytes: &[u8]) {
    let fx: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let model = Model::from_gguf(file, bytes.to_vec()).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
    let mut cases = 0;
    for case in fx["cases"].as_array().unwrap().iter().filter(|c| c["model"].as_str().unwrap().ends_with(file)) {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = model.tokenizer.encode(prompt, true).unwrap();
        assert_eq!(prompt_ids, ids(&case["prompt_ids"]), "{file}: prompt ids of {prompt:?}");
        let want = ids(&case["ids"]);
        let first_tie = case["top2_margins"].as_array().unwrap().iter().position(|m| m.as_f64().unwrap() < NEAR_TIE).unwrap_or(want.len());
        let got = Session::new(&model, 256).unwrap().generate_async(&prompt_ids, &GenerateOptions { max_tokens: want.len(), ..Default::default() }, |_| true).await.unwrap().ids;
        let agree = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        assert!(agree >= first_tie, "{file} after {prompt:?}: differs from llama.cpp at {agree}, before its first near-tie at {first_tie}\n got {got:?}\nwant {want:?}");
        cases += 1;
    }
    assert_eq!(cases, 3, "{file}: fixture cases");
}

#[wasm_bindgen_test]
async fn greedy_q8_0_matches_llama_cpp_in_wasm() {
    check("TinyStories-656K-Q8_0.gguf", include_bytes!("../../../shared/models/tinystories-656k-q8_0/TinyStories-656K-Q8_0.gguf")).await;
}

#[wasm_bindgen_test]
async fn greedy_q4_0_matches_llama_cpp_in_wasm() {
    check("TinyStories-656K-Q4_0.gguf", include_bytes!("../../tests/fixtures/models/TinyStories-656K-Q4_0.gguf")).await;
}

#[wasm_bindgen_test]
async fn prefill_in_chunks_equals_token_by_token_steps_in_wasm() {
    // The SIMD mat-mat tiles (several tokens per weight row read) give each token the result
    // of its lone mat-vec step, bit for bit: 45 tokens cross two chunk boundaries.
    for (file, bytes) in [
        ("TinyStories-656K-Q8_0.gguf", &include_bytes!("../../../shared/models/tinystories-656k-q8_0/TinyStories-656K-Q8_0.gguf")[..]),
        ("TinyStories-656K-Q4_0.gguf", &include_bytes!("../../tests/fixtures/models/TinyStories-656K-Q4_0.gguf")[..]),
    ] {
        let model = Model::from_gguf(file, bytes.to_vec()).unwrap();
        let prompt: Vec<u32> = (0..45u32).map(|i| (i * 7919 + 13) % model.spec.vocab_size as u32).collect();
        let mut chunked = Session::new(&model, 128).unwrap();
        chunked.prefill_async(&prompt).await.unwrap();
        let a = chunked.step_async(5, true).await.unwrap().unwrap().to_vec();
        let mut stepwise = Session::new(&model, 128).unwrap();
        for &t in &prompt {
            stepwise.step_async(t, false).await.unwrap();
        }
        let b = stepwise.step_async(5, true).await.unwrap().unwrap().to_vec();
        assert_eq!(a, b, "{file}: chunked and stepwise prefill differ");
    }
}
