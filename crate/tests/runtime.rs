//! The session on a real model (TinyStories-656K): streamed pieces, stop strings, abort, seeds,
//! KV-cache reuse across turns and the step-by-step generator the browser drives.

mod common;

use pocketlm::model::forward::CPU_PREFILL_CHUNK;
use pocketlm::sampling::SamplingParams;
use pocketlm::{FinishReason, GenerateOptions, LoadOptions, Model, Session};

fn model() -> Model {
    Model::open(&common::shared_models().join("tinystories-656k-q8_0/TinyStories-656K-Q8_0.gguf"), &LoadOptions::default()).unwrap()
}

fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions { max_tokens: n, ..Default::default() }
}

#[test]
fn streamed_pieces_make_the_whole_text_and_stop_strings_never_leak() {
    let m = model();
    let prompt = m.tokenizer.encode("Once upon a time", true).unwrap();
    let mut s = Session::new(&m, 256).unwrap();
    let mut pieces = Vec::new();
    let free = s.generate(&prompt, &greedy(60), |p| {
        pieces.push(p.to_string());
        true
    })
    .unwrap();
    assert_eq!(free.finish_reason, FinishReason::Length);
    assert_eq!(free.ids.len(), 60);
    assert_eq!(pieces.concat(), free.text);
    assert!(pieces.len() > 10, "text streamed in {} pieces", pieces.len());

    // A stop string taken from the middle of the free text: the output ends right before its
    // first occurrence, and no streamed piece carries any of it.
    let words: Vec<&str> = free.text.split(' ').collect();
    let stop = format!("{} {}", words[words.len() / 2], words[words.len() / 2 + 1]);
    let cut = free.text.find(&stop).unwrap();
    let mut streamed = String::new();
    let g = s
        .generate(&prompt, &GenerateOptions { stop: vec!["never appears".into(), stop.clone()], ..greedy(60) }, |p| {
            streamed.push_str(p);
            true
        })
        .unwrap();
    assert_eq!(g.finish_reason, FinishReason::Stop);
    assert_eq!(g.text, free.text[..cut]);
    assert_eq!(streamed, g.text);
    assert_eq!(g.ids, free.ids[..g.ids.len()]);
}

#[test]
fn abort_keeps_what_was_streamed_and_the_session_generates_again() {
    let m = model();
    let prompt = m.tokenizer.encode("The little dog", true).unwrap();
    let mut s = Session::new(&m, 256).unwrap();
    let mut calls = 0;
    let mut streamed = String::new();
    let g = s
        .generate(&prompt, &greedy(50), |p| {
            calls += 1;
            streamed.push_str(p);
            calls < 3
        })
        .unwrap();
    assert_eq!(g.finish_reason, FinishReason::Aborted);
    assert_eq!(calls, 3);
    assert_eq!(g.text, streamed);
    assert!(g.ids.len() < 50);

    let again = s.generate(&prompt, &greedy(20), |_| true).unwrap();
    let fresh = Session::new(&m, 256).unwrap().generate(&prompt, &greedy(20), |_| true).unwrap();
    assert_eq!(again.ids, fresh.ids);
    assert!(again.text.starts_with(&g.text));
}

#[test]
fn same_seed_same_text_other_seed_other_text() {
    let m = model();
    let prompt = m.tokenizer.encode("Lily went", true).unwrap();
    let sampled = |seed| {
        let sampling = SamplingParams { temperature: 1.0, top_p: 0.95, seed, ..Default::default() };
        Session::new(&m, 256).unwrap().generate(&prompt, &GenerateOptions { sampling, ..greedy(40) }, |_| true).unwrap().ids
    };
    let a = sampled(7);
    assert_eq!(a, sampled(7));
    let others: Vec<_> = (8..12).map(sampled).collect();
    assert!(others.iter().any(|o| *o != a), "five seeds gave the same 40 tokens at temperature 1");
}

#[test]
fn a_second_turn_reuses_the_cache_and_matches_a_fresh_session() {
    let m = model();
    let mut s = Session::new(&m, 256).unwrap();
    let first = m.tokenizer.encode("Tom had a red ball.", true).unwrap();
    let g1 = s.generate(&first, &greedy(10), |_| true).unwrap();
    assert_eq!(g1.cached_prompt_tokens, 0);

    let mut second = first.clone();
    second.extend(&g1.ids);
    second.extend(m.tokenizer.encode(" Then", false).unwrap());
    let g2 = s.generate(&second, &greedy(15), |_| true).unwrap();
    assert_eq!(g2.cached_prompt_tokens, first.len() + g1.ids.len() - 1, "every token already in the cache but the last generated one is reused");
    let fresh = Session::new(&m, 256).unwrap().generate(&second, &greedy(15), |_| true).unwrap();
    assert_eq!(fresh.cached_prompt_tokens, 0);
    assert_eq!(g2.ids, fresh.ids);
}

#[test]
fn the_step_by_step_generator_equals_generate() {
    let m = model();
    let prompt = m.tokenizer.encode("One day", true).unwrap();
    let want = Session::new(&m, 256).unwrap().generate(&prompt, &greedy(30), |_| true).unwrap();
    let mut s = Session::new(&m, 256).unwrap();
    let mut g = s.start(&prompt, &greedy(30)).unwrap();
    let mut text = String::new();
    while let Some(piece) = s.next_text(&mut g).unwrap() {
        text.push_str(&piece);
    }
    assert!(g.is_done());
    assert!(s.next_text(&mut g).unwrap().is_none());
    let got = g.finish();
    assert_eq!(got.ids, want.ids);
    assert_eq!(got.text, want.text);
    assert_eq!(text, want.text);
}

#[test]
fn a_full_context_ends_generation_with_its_own_reason() {
    let m = model();
    let prompt = m.tokenizer.encode("Once upon a time", true).unwrap();
    let mut s = Session::new(&m, prompt.len() + 5).unwrap();
    let g = s.generate(&prompt, &greedy(100), |_| true).unwrap();
    assert_eq!(g.finish_reason, FinishReason::ContextFull);
    assert_eq!(g.ids.len(), 6, "5 free cache slots hold 5 generated tokens; the 6th comes from the last logits");
}

#[test]
fn cpu_prefill_in_chunks_gives_the_logits_of_token_by_token_steps() {
    // Two whole chunks of CPU_PREFILL_CHUNK prompt tokens through the mat-mat tiles, a partial
    // chunk of 13 at the end; each token's arithmetic is that of a lone step, so the logits are
    // equal.
    let m = model();
    let n = 2 * CPU_PREFILL_CHUNK as u32 + 13;
    let prompt: Vec<u32> = (0..n).map(|i| (i * 7919 + 13) % m.spec.vocab_size as u32).collect();
    let mut chunked = Session::new(&m, prompt.len() + 16).unwrap();
    chunked.prefill(&prompt).unwrap();
    let a = chunked.step(5, true).unwrap().unwrap().to_vec();
    let mut stepwise = Session::new(&m, prompt.len() + 16).unwrap();
    for &t in &prompt {
        stepwise.step(t, false).unwrap();
    }
    let b = stepwise.step(5, true).unwrap().unwrap().to_vec();
    assert_eq!(a, b, "chunked and stepwise prefill differ");
}
